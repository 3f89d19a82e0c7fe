//! Silero VAD against silero-vad 6.2.3's own model (`silero_vad.jit`) on real recordings:
//! the speech WAVs of Debian's `alsa-utils` (48 kHz, resampled to 16 kHz as the package's
//! `read_audio` does), its pink noise, silence and white noise. Chunk by chunk, the built-in
//! network's speech probabilities equal the package's to 1e-4, stepped one stream at a time
//! and all streams in one batch; the speech segments and streaming events equal
//! `get_speech_timestamps`' and `VADIterator`'s. The reference is
//! `crates/models/tests/data/silero_vad.json` from `tools/reference/silero_vad_reference.py`.
//!
//! The recordings are read from `/usr/share/sounds/alsa` (or `COSTREAM_ALSA_SOUNDS`): install
//! `alsa-utils` (`.ci/run` does). The package's own `silero_vad_16k.safetensors` (other
//! weights) is checked by an ignored test that needs that file.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{CoModule, Sequential, TemporalFill};
use costream_models::resample::Resampler;
use costream_models::vad::{
    builtin, load_silero_vad, speech_segments, DetectorParams, Segment, SegmentParams,
    SileroVadConfig, SpeechDetector, SpeechEvent,
};
use costream_testkit::values;
use serde_json::Value;

type B = TestBackend;

/// The package's chunk-by-chunk probabilities are matched to this.
const TOLERANCE: f32 = 1e-4;

struct Case {
    name: String,
    audio: Vec<f32>,
    reference: Value,
}

fn reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/silero_vad.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn alsa_sounds() -> PathBuf {
    std::env::var_os("COSTREAM_ALSA_SOUNDS")
        .map_or_else(|| PathBuf::from("/usr/share/sounds/alsa"), PathBuf::from)
}

/// A WAV as the package's `read_audio` reads it: 16-bit PCM / 32768, channels averaged,
/// resampled to `rate`.
fn read_wav(path: &Path, rate: u32) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. The recordings come with Debian's alsa-utils \
             (apt-get install alsa-utils; .ci/run installs it) or set COSTREAM_ALSA_SOUNDS",
            path.display()
        )
    });
    let spec = reader.spec();
    assert_eq!(spec.bits_per_sample, 16, "{}", path.display());
    let channels = usize::from(spec.channels);
    let pcm: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let mono: Vec<f32> = pcm
        .chunks_exact(channels)
        .map(|frame| frame.iter().map(|&s| f32::from(s) / 32768.0).sum::<f32>() / channels as f32)
        .collect();
    Resampler::new(spec.sample_rate, rate)
        .unwrap()
        .resample(&mono)
}

/// The reference script's `white_noise`: a 64-bit LCG, the top 24 bits of each state as the
/// unit value, scaled to `[-amplitude, amplitude)`.
fn white_noise(samples: usize, seed: u64, amplitude: f64) -> Vec<f32> {
    let mut state = seed;
    (0..samples)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 40) as f64 / f64::from(1u32 << 24);
            ((2.0 * unit - 1.0) * amplitude) as f32
        })
        .collect()
}

fn cases(reference: &Value) -> Vec<Case> {
    let rate = reference["sample_rate"].as_u64().unwrap() as u32;
    let noise = &reference["white_noise"];
    reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let name = case["name"].as_str().unwrap().to_string();
            let samples = case["samples"].as_u64().unwrap() as usize;
            let audio = match name.as_str() {
                "silence" => vec![0.0; samples],
                "white_noise" => white_noise(
                    noise["samples"].as_u64().unwrap() as usize,
                    noise["seed"].as_u64().unwrap(),
                    noise["amplitude"].as_f64().unwrap(),
                ),
                wav => read_wav(&alsa_sounds().join(wav.trim_start_matches("alsa/")), rate),
            };
            assert_eq!(audio.len(), samples, "{name}: samples after resampling");
            Case {
                name,
                audio,
                reference: case.clone(),
            }
        })
        .collect()
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// The audio cut in chunks as `get_speech_timestamps` cuts it, the last zero-padded.
fn chunks(audio: &[f32], chunk: usize) -> Vec<Vec<f32>> {
    audio
        .chunks(chunk)
        .map(|c| {
            let mut c = c.to_vec();
            c.resize(chunk, 0.0);
            c
        })
        .collect()
}

/// Each case's audio in chunks.
fn streams(cases: &[Case], chunk: usize) -> Vec<Vec<Vec<f32>>> {
    cases.iter().map(|c| chunks(&c.audio, chunk)).collect()
}

/// Steps `streams` together (one batch row each; a stream that has ended gets silence, its
/// outputs unused) and returns each stream's probabilities.
fn step_batch(network: &Sequential<B>, streams: &[Vec<Vec<f32>>], chunk: usize) -> Vec<Vec<f32>> {
    let device = Default::default();
    let rows = streams.len();
    let steps = streams.iter().map(Vec::len).max().unwrap();
    let mut state = network.init_state(rows, TemporalFill::Zeros, &device);
    let mut out = vec![Vec::new(); rows];
    for t in 0..steps {
        let mut data = Vec::with_capacity(rows * chunk);
        for stream in streams {
            match stream.get(t) {
                Some(c) => data.extend_from_slice(c),
                None => data.extend(std::iter::repeat_n(0.0, chunk)),
            }
        }
        let frame = Tensor::<B, 4>::from_data(TensorData::new(data, [rows, 1, chunk, 1]), &device);
        let probabilities = values(network.forward_step(frame, &mut state).unwrap());
        for (row, stream) in streams.iter().enumerate() {
            if t < stream.len() {
                out[row].push(probabilities[row]);
            }
        }
    }
    out
}

fn assert_matches(what: &str, ours: &[f32], reference: &[f32]) {
    assert_eq!(ours.len(), reference.len(), "{what}: chunks");
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= TOLERANCE,
        "{what}: max |Δp| {worst:e} over {TOLERANCE:e}\nours {ours:?}\nreference {reference:?}"
    );
}

fn segments(value: &Value) -> Vec<Segment> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Segment {
            start: s["start"].as_u64().unwrap(),
            end: s["end"].as_u64().unwrap(),
        })
        .collect()
}

fn events(value: &Value) -> Vec<SpeechEvent> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match (e.get("start"), e.get("end")) {
            (Some(s), None) => SpeechEvent::Start(s.as_u64().unwrap()),
            (None, Some(s)) => SpeechEvent::End(s.as_u64().unwrap()),
            _ => panic!("event {e}"),
        })
        .collect()
}

#[test]
fn speech_probabilities_segments_and_events_equal_the_packages_model() {
    let reference = reference();
    let config = SileroVadConfig::sixteen_khz();
    assert_eq!(reference["chunk"].as_u64().unwrap() as usize, config.chunk);
    let network = builtin::load::<B>(&Default::default()).unwrap();
    let cases = cases(&reference);
    let streams = streams(&cases, config.chunk);

    let batched = step_batch(&network, &streams, config.chunk);
    let rate = config.sample_rate;
    for (i, case) in cases.iter().enumerate() {
        let alone = step_batch(&network, &streams[i..=i], config.chunk);
        let expected = floats(&case.reference["probabilities"]);
        assert_matches(&format!("{} alone", case.name), &alone[0], &expected);
        assert_matches(&format!("{} in a batch", case.name), &batched[i], &expected);

        let found = speech_segments(
            &alone[0],
            case.audio.len() as u64,
            rate,
            config.chunk,
            &SegmentParams::default(),
        );
        assert_eq!(
            found,
            segments(&case.reference["speech_timestamps"]),
            "{}",
            case.name
        );

        let mut detector = SpeechDetector::new(DetectorParams::default(), rate);
        let streamed: Vec<_> = alone[0]
            .iter()
            .filter_map(|&p| detector.push(p, config.chunk))
            .collect();
        assert_eq!(
            streamed,
            events(&case.reference["iterator_events"]),
            "{}",
            case.name
        );
    }
    // The recordings hold speech and the reference finds it: the comparison is not vacuous.
    assert!(cases
        .iter()
        .any(|c| !segments(&c.reference["speech_timestamps"]).is_empty()));
}

#[test]
fn offline_over_a_recording_equals_its_steps() {
    let reference = reference();
    let config = SileroVadConfig::sixteen_khz();
    let network = builtin::load::<B>(&Default::default()).unwrap();
    let case = &cases(&reference)[0];
    let chunks = chunks(&case.audio, config.chunk);
    let steps = step_batch(&network, std::slice::from_ref(&chunks), config.chunk);
    let t = chunks.len();
    let clip = Tensor::<B, 5>::from_data(
        TensorData::new(chunks.concat(), [1, 1, t, config.chunk, 1]),
        &Default::default(),
    );
    let offline = values(network.forward(clip));
    assert_matches("offline", &offline, &steps[0]);
}

/// The package's own `silero_vad_16k.safetensors` (the weights `tinygrad_model.py` loads)
/// loads, and gives the probabilities of the reference script's PyTorch transcription of
/// `tinygrad_model.py` (checked there against tinygrad itself).
#[test]
#[ignore = "needs silero-vad's silero_vad_16k.safetensors: set COSTREAM_SILERO_VAD_SAFETENSORS \
            (pip install silero-vad==6.2.3; the file is under silero_vad/data/)"]
fn the_packages_safetensors_loads_and_matches_tinygrad_model() {
    let path = PathBuf::from(
        std::env::var_os("COSTREAM_SILERO_VAD_SAFETENSORS")
            .expect("COSTREAM_SILERO_VAD_SAFETENSORS names the package's safetensors file"),
    );
    let reference = reference();
    let config = SileroVadConfig::sixteen_khz();
    let network = load_silero_vad::<B>(&config, &path, &Default::default()).unwrap();
    let cases = cases(&reference);
    let streams = streams(&cases, config.chunk);
    let batched = step_batch(&network, &streams, config.chunk);
    for (case, ours) in cases.iter().zip(batched) {
        let expected = floats(&case.reference["package_safetensors_probabilities"]);
        assert_matches(&case.name, &ours, &expected);
    }
}

/// A checkpoint of another model is refused by name.
#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let dir = std::env::temp_dir().join(format!("costream-vad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x3d.safetensors");
    std::fs::write(&path, costream_models::builtin::WEIGHTS).unwrap();
    let err = load_silero_vad::<B>(&SileroVadConfig::sixteen_khz(), &path, &Default::default())
        .unwrap_err()
        .to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        err.contains("is not Silero VAD") && err.contains("stft_conv.weight"),
        "{err}"
    );
}
