//! Voice activity through the real server: `costream serve --model-family vad` (Silero VAD
//! with its pretrained weights) against silero-vad 6.2.3's own outputs on the speech
//! recordings of Debian's `alsa-utils` (`crates/models/tests/data/silero_vad.json`, from
//! `tools/reference/silero_vad_reference.py`): `costream stream file.wav` gets each chunk's
//! speech probability, the streaming speech events and the recording's speech segments as the
//! package computes them, with every recording streamed at once (the engine batches them).
//! Audio frames are validated; a resumed stream continues its voice activity exactly.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use costream_models::resample::Resampler;
use costream_proto::v1::{
    client_message, frame, server_message::Msg, Audio, ErrorCode, Frame, StreamOptions,
};

use crate::common::{Client, Format, Server};

/// Probabilities are matched to the package's to this.
const TOLERANCE: f64 = 1e-4;

fn reference() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/data/silero_vad.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn alsa_sounds() -> PathBuf {
    std::env::var_os("COSTREAM_ALSA_SOUNDS")
        .map_or_else(|| PathBuf::from("/usr/share/sounds/alsa"), PathBuf::from)
}

/// The reference cases that are recordings, with their files.
fn recordings(reference: &serde_json::Value) -> Vec<(PathBuf, serde_json::Value)> {
    reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|case| {
            let name = case["name"].as_str()?.strip_prefix("alsa/")?;
            let path = alsa_sounds().join(name);
            assert!(
                path.exists(),
                "{} is missing: apt-get install alsa-utils (.ci/run does) or set \
                 COSTREAM_ALSA_SOUNDS",
                path.display()
            );
            Some((path, case.clone()))
        })
        .collect()
}

/// `[start, end]` pairs of a list of `{"start", "end"}` objects.
fn pairs(list: &serde_json::Value, start: &str, end: &str) -> Vec<[u64; 2]> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| [s[start].as_u64().unwrap(), s[end].as_u64().unwrap()])
        .collect()
}

/// Streaming events as `(is_start, sample)`.
fn reference_events(case: &serde_json::Value) -> Vec<(bool, u64)> {
    case["iterator_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match (e.get("start"), e.get("end")) {
            (Some(s), _) => (true, s.as_u64().unwrap()),
            (_, Some(s)) => (false, s.as_u64().unwrap()),
            _ => panic!("event {e}"),
        })
        .collect()
}

#[test]
fn recordings_streamed_at_once_get_the_packages_probabilities_events_and_segments() {
    let server = Server::start_silero_vad("audio-recordings");
    let reference = reference();
    let recordings = recordings(&reference);
    assert!(!recordings.is_empty());
    let url = server.ws_url();
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = recordings
            .iter()
            .map(|(path, _)| {
                let url = url.clone();
                scope.spawn(move || {
                    Command::new(env!("CARGO_BIN_EXE_costream"))
                        .arg("stream")
                        .arg(path)
                        .args(["--url", &url, "--quiet", "--model", "silero-vad"])
                        .args(["--format", "json"])
                        .output()
                        .unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut largest_batch = 0;
    for ((path, case), output) in recordings.iter().zip(outputs) {
        let name = path.display();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (mut probabilities, mut events, mut segments) = (Vec::new(), Vec::new(), None);
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            let answer: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(p) = answer.get("prediction") {
                probabilities.push(p["scores"][0].as_f64().unwrap());
                largest_batch = largest_batch.max(p["batchSize"].as_u64().unwrap_or(1));
                let voice = &p["voice"];
                if let Some(at) = voice.get("speechStart") {
                    events.push((true, at.as_str().unwrap().parse::<u64>().unwrap()));
                }
                if let Some(at) = voice.get("speechEnd") {
                    events.push((false, at.as_str().unwrap().parse::<u64>().unwrap()));
                }
            } else if let Some(list) = answer.get("speechSegments") {
                segments = Some(pairs(list, "start", "end"));
            }
        }
        let expected: Vec<f64> = case["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(probabilities.len(), expected.len(), "{name}: chunks");
        let worst = probabilities
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst <= TOLERANCE, "{name}: max |Δp| {worst:e}");
        assert_eq!(events, reference_events(case), "{name}: speech events");
        assert_eq!(
            segments.unwrap_or_default(),
            pairs(&case["speech_timestamps"], "start", "end"),
            "{name}: speech segments"
        );
    }
    assert!(
        largest_batch > 1,
        "the recordings were streamed at once and some chunks stepped together"
    );
}

/// The first recording at 16 kHz, as float samples.
fn first_recording() -> Vec<f32> {
    let reference = reference();
    let (path, _) = recordings(&reference).remove(0);
    let mut reader = hound::WavReader::open(path).unwrap();
    let rate = reader.spec().sample_rate;
    let pcm: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    Resampler::new(rate, 16_000).unwrap().resample(&pcm)
}

fn audio_frame(seq: u64, audio: Audio) -> client_message::Msg {
    client_message::Msg::Frame(Frame {
        seq,
        pts: 0,
        payload: Some(frame::Payload::Audio(audio)),
    })
}

fn floats(samples: Vec<f32>) -> Audio {
    Audio {
        sample_rate: 16_000,
        pcm16: Vec::new(),
        samples,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_frames_and_voice_options_are_validated() {
    let server = Server::start_silero_vad("audio-validation");
    let mut client = Client::connect(&server, Format::Proto).await;
    let ready = client
        .start("silero-vad", None, StreamOptions::default())
        .await;
    let audio = ready.audio.expect("ready says what an audio frame is");
    assert_eq!((audio.sample_rate, audio.chunk_samples), (16_000, 512));
    let options = ready.options.unwrap();
    assert_eq!(
        (
            options.vad_threshold,
            options.vad_min_silence_ms,
            options.vad_speech_pad_ms
        ),
        (Some(0.5), Some(100), Some(30)),
        "the package's defaults are in effect"
    );

    let chunk = vec![0.01f32; 512];
    let refused: Vec<(Audio, &str)> = vec![
        (
            Audio {
                sample_rate: 48_000,
                ..floats(chunk.clone())
            },
            "512 samples at 48000 Hz: a frame is one chunk, 1536 samples at this rate",
        ),
        (
            Audio {
                sample_rate: 44_100,
                ..floats(vec![0.0; 1411])
            },
            "audio at 44100 Hz: a frame is one chunk (512 samples at 16000 Hz), which is no \
             whole number of samples at this rate",
        ),
        (
            floats(vec![0.0; 100]),
            "100 samples: a frame is one chunk of 512",
        ),
        (
            Audio {
                pcm16: vec![0; 1023],
                ..floats(Vec::new())
            },
            "1023 bytes",
        ),
        (
            Audio {
                pcm16: vec![0; 1024],
                ..floats(chunk.clone())
            },
            "set pcm16 or samples, not both",
        ),
        (floats(Vec::new()), "no samples"),
        (
            {
                let mut bad = chunk.clone();
                bad[7] = f32::NAN;
                floats(bad)
            },
            "value 7 is NaN",
        ),
    ];
    for (seq, (audio, message)) in refused.into_iter().enumerate() {
        client.send(audio_frame(seq as u64, audio)).await;
        let (code, text, frame) = client.expect_error().await;
        assert_eq!(code, ErrorCode::BadFrame, "{text}");
        assert!(text.contains(message), "{text} (wanted {message})");
        assert_eq!(frame, Some(seq as u64));
    }
    // 16-bit PCM is as good as floats: s / 32768.
    let pcm: Vec<u8> = (0..512).flat_map(|_| 328i16.to_le_bytes()).collect();
    client
        .send(audio_frame(
            100,
            Audio {
                pcm16: pcm,
                ..floats(Vec::new())
            },
        ))
        .await;
    match client.recv().await {
        Msg::Prediction(p) => {
            assert_eq!(p.seq, 100);
            assert!(
                p.voice.is_some(),
                "an audio model's prediction has voice activity"
            );
        }
        other => panic!("expected a prediction, got {other:?}"),
    }

    for (options, message) in [
        (
            StreamOptions {
                vad_threshold: Some(1.5),
                ..StreamOptions::default()
            },
            "vad_threshold = 1.5",
        ),
        (
            StreamOptions {
                vad_min_silence_ms: Some(600_000),
                ..StreamOptions::default()
            },
            "vad_min_silence_ms = 600000",
        ),
    ] {
        let mut other = Client::connect(&server, Format::Proto).await;
        other
            .send(client_message::Msg::Start(costream_proto::v1::Start {
                model: "silero-vad".into(),
                stream_id: None,
                options: Some(options),
            }))
            .await;
        let (code, text, _) = other.expect_error().await;
        assert_eq!(code, ErrorCode::BadOptions);
        assert!(text.contains(message), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_options_are_refused_for_a_video_model() {
    let server = Server::start("audio-options-video", &[]);
    let mut client = Client::connect(&server, Format::Json).await;
    client
        .send(client_message::Msg::Start(costream_proto::v1::Start {
            model: "cox3d-tiny".into(),
            stream_id: None,
            options: Some(StreamOptions {
                vad_speech_pad_ms: Some(10),
                ..StreamOptions::default()
            }),
        }))
        .await;
    let (code, text, _) = client.expect_error().await;
    assert_eq!(code, ErrorCode::BadOptions);
    assert!(
        text.contains("vad_speech_pad_ms applies to voice activity models"),
        "{text}"
    );
}

/// `(seq, probability, speech start, speech end)` of each answered chunk.
type Answer = (u64, f32, Option<u64>, Option<u64>);

async fn send_chunks(
    client: &mut Client,
    audio: &[f32],
    seqs: std::ops::Range<u64>,
) -> Vec<Answer> {
    for seq in seqs.clone() {
        let start = seq as usize * 512;
        let mut chunk = audio[start.min(audio.len())..(start + 512).min(audio.len())].to_vec();
        chunk.resize(512, 0.0);
        client.send(audio_frame(seq, floats(chunk))).await;
    }
    let mut answers = Vec::new();
    while answers.len() < seqs.clone().count() {
        if let Msg::Prediction(p) = client.recv().await {
            let voice = p.voice.unwrap();
            answers.push((p.seq, p.scores[0], voice.speech_start, voice.speech_end));
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_stream_continues_its_voice_activity() {
    let server = Server::start_silero_vad("audio-resume");
    let audio = first_recording();
    let chunks = audio.len().div_ceil(512) as u64;
    let options = StreamOptions {
        all_scores: true,
        ..StreamOptions::default()
    };
    let mut whole = Client::connect(&server, Format::Proto).await;
    whole.start("silero-vad", Some("whole"), options).await;
    let expected = send_chunks(&mut whole, &audio, 0..chunks).await;
    let ends = expected.iter().filter(|a| a.3.is_some()).count();
    assert!(ends > 0, "speech ends in the recording");

    // Cut while in speech (after the first start, before its end): the end is found after
    // the resume only if the detector's state was saved with the stream's.
    let first_start = expected.iter().position(|a| a.2.is_some()).unwrap() as u64;
    let cut = first_start + 2;
    let mut first = Client::connect(&server, Format::Proto).await;
    first.start("silero-vad", Some("cut"), options).await;
    let mut got = send_chunks(&mut first, &audio, 0..cut).await;
    first.drop_connection().await;
    let mut second = Client::connect(&server, Format::Json).await;
    loop {
        second
            .send(client_message::Msg::Resume(costream_proto::v1::Resume {
                stream_id: "cut".into(),
                last_seq: Some(cut - 1),
            }))
            .await;
        match second.recv().await {
            Msg::Resumed(r) => {
                assert_eq!(r.audio.map(|a| a.chunk_samples), Some(512));
                break;
            }
            Msg::Error(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            other => panic!("unexpected {other:?}"),
        }
    }
    got.extend(send_chunks(&mut second, &audio, cut..chunks).await);
    assert_eq!(got, expected);
}

/// `(seq, probability)` of each answered frame, after sending `frames`.
async fn probabilities(client: &mut Client, frames: Vec<Audio>) -> Vec<(u64, f32)> {
    let n = frames.len();
    for (seq, audio) in frames.into_iter().enumerate() {
        client.send(audio_frame(seq as u64, audio)).await;
    }
    let mut answers = Vec::new();
    while answers.len() < n {
        match client.recv().await {
            Msg::Prediction(p) => answers.push((p.seq, p.scores[0])),
            Msg::Error(e) => panic!("frame refused: {}", e.message),
            _ => {}
        }
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_at_48_khz_are_resampled_by_the_server() {
    let server = Server::start_silero_vad("audio-48k");
    let reference = reference();
    let (path, _) = recordings(&reference).remove(0);
    let mut reader = hound::WavReader::open(path).unwrap();
    assert_eq!(reader.spec().sample_rate, 48_000);
    let mut recording: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    recording.resize(recording.len().div_ceil(1536) * 1536, 0.0);
    let frames = recording.len() / 1536;
    let options = StreamOptions {
        all_scores: true,
        ..StreamOptions::default()
    };

    let mut at_48k = Client::connect(&server, Format::Proto).await;
    at_48k.start("silero-vad", None, options).await;
    let resampled_by_server = probabilities(
        &mut at_48k,
        recording
            .chunks(1536)
            .map(|c| Audio {
                sample_rate: 48_000,
                ..floats(c.to_vec())
            })
            .collect(),
    )
    .await;

    // The same audio resampled here, delayed by the resampler's look-ahead (7 samples at
    // 16 kHz, as the protocol document says), in 16 kHz chunks.
    let mut delayed = vec![0.0; 7];
    delayed.extend(Resampler::new(48_000, 16_000).unwrap().resample(&recording));
    let mut at_16k = Client::connect(&server, Format::Proto).await;
    at_16k.start("silero-vad", None, options).await;
    let resampled_here = probabilities(
        &mut at_16k,
        delayed
            .chunks(512)
            .take(frames)
            .map(|c| floats(c.to_vec()))
            .collect(),
    )
    .await;
    assert_eq!(resampled_by_server.len(), frames);
    for (a, b) in resampled_by_server.iter().zip(&resampled_here) {
        assert_eq!(a.0, b.0);
        assert!(
            (a.1 - b.1).abs() <= 1e-6,
            "frame {}: {} vs {}",
            a.0,
            a.1,
            b.1
        );
    }
    assert!(
        resampled_by_server.iter().any(|a| a.1 > 0.9),
        "the recording's speech is found"
    );
}
