//! End to end: a corpus of malformed and misplaced messages, each answered with its error
//! code on a connection that keeps serving, while a witness stream on another connection
//! keeps getting exactly its own predictions.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use costream_continual::TemporalFill;
use costream_proto::v1::{
    client_message, frame, server_message::Msg, ClientMessage, ErrorCode, Features, Frame,
    PixelFormat, RawImage, Resume, Skeleton, Start, StreamOptions, Tensor,
};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

const SIZE: usize = 32;
const MAX_FRAME_BYTES: usize = 65_536;
/// The largest image the corpus's server decodes: 64 × 64.
const MAX_IMAGE_PIXELS: usize = 4096;

/// What a case must be answered with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// An error with this code.
    Error(ErrorCode),
    /// `state_lost`.
    StateLost,
}

/// A malformed or misplaced message and its answer.
struct Case {
    name: &'static str,
    message: Message,
    answer: Answer,
}

fn case(name: &'static str, message: Message, code: ErrorCode) -> Case {
    Case {
        name,
        message,
        answer: Answer::Error(code),
    }
}

fn proto(msg: client_message::Msg) -> Message {
    Message::Binary(ClientMessage { msg: Some(msg) }.encode_to_vec().into())
}

fn json(text: &str) -> Message {
    Message::Text(text.to_string().into())
}

fn start(model: &str, id: Option<&str>, options: StreamOptions) -> Message {
    proto(client_message::Msg::Start(Start {
        model: model.into(),
        stream_id: id.map(str::to_string),
        options: Some(options),
    }))
}

fn frame_with(seq: u64, payload: Option<frame::Payload>) -> Message {
    proto(client_message::Msg::Frame(Frame {
        seq,
        pts: 0,
        payload,
    }))
}

fn tensor(seq: u64, shape: &[u32], data: Vec<f32>) -> Message {
    frame_with(
        seq,
        Some(frame::Payload::Tensor(Tensor {
            shape: shape.to_vec(),
            data,
        })),
    )
}

fn good(seq: u64, stream: usize) -> Message {
    tensor(seq, &[3, 32, 32], frame_values(stream, seq as usize, SIZE))
}

fn raw(format: PixelFormat, width: u32, height: u32, bytes: usize) -> Option<frame::Payload> {
    Some(frame::Payload::Raw(RawImage {
        format: format as i32,
        width,
        height,
        data: vec![7; bytes],
    }))
}

fn resume(id: &str) -> Message {
    proto(client_message::Msg::Resume(Resume {
        stream_id: id.into(),
        last_seq: None,
    }))
}

/// Cases for a connection without a stream.
fn before_start() -> Vec<Case> {
    use ErrorCode::*;
    let valid_start = ClientMessage {
        msg: Some(client_message::Msg::Start(Start {
            model: "cox3d-tiny".into(),
            stream_id: None,
            options: None,
        })),
    }
    .encode_to_vec();
    let opts = StreamOptions::default;
    let oversize = vec![0u8; MAX_FRAME_BYTES + 1];
    let mut cases = vec![
        case(
            "garbage bytes",
            Message::Binary(vec![0xff; 40].into()),
            BadMessage,
        ),
        case(
            "truncated protobuf",
            Message::Binary(valid_start[..valid_start.len() - 3].to_vec().into()),
            BadMessage,
        ),
        case(
            "empty protobuf",
            Message::Binary(Vec::new().into()),
            BadMessage,
        ),
        case(
            "wrong wire type",
            Message::Binary(vec![0x08, 0x01].into()),
            BadMessage,
        ),
        case("invalid JSON", json("{"), BadMessage),
        case(
            "JSON wrong type",
            json(r#"{"start": {"model": 5}}"#),
            BadMessage,
        ),
        case("JSON empty object", json("{}"), BadMessage),
        case("JSON array", json("[]"), BadMessage),
        case("JSON null", json("null"), BadMessage),
        case("JSON unknown kind", json(r#"{"bogus": {}}"#), BadMessage),
        case(
            "JSON bad base64",
            json(r#"{"frame": {"seq": "1", "encoded": "!!!"}}"#),
            BadMessage,
        ),
        case(
            "JSON negative seq",
            json(r#"{"frame": {"seq": -1}}"#),
            BadMessage,
        ),
        case(
            "JSON seq not a number",
            json(r#"{"frame": {"seq": "abc"}}"#),
            BadMessage,
        ),
        case("frame before start", good(0, 0), UnexpectedMessage),
        case(
            "flush before start",
            proto(client_message::Msg::Flush(Default::default())),
            UnexpectedMessage,
        ),
        case(
            "reset before start",
            proto(client_message::Msg::Reset(Default::default())),
            UnexpectedMessage,
        ),
        case(
            "end before start",
            proto(client_message::Msg::End(Default::default())),
            UnexpectedMessage,
        ),
        case(
            "unknown model",
            start("cox3d-huge", None, opts()),
            UnknownModel,
        ),
        case(
            "top_k beyond the classes",
            start("cox3d-tiny", None, StreamOptions { top_k: 6, ..opts() }),
            BadOptions,
        ),
        case(
            "sample stride too large",
            start(
                "cox3d-tiny",
                None,
                StreamOptions {
                    sample_stride: 5000,
                    ..opts()
                },
            ),
            BadOptions,
        ),
        case(
            "unknown fill",
            start("cox3d-tiny", None, StreamOptions { fill: 9, ..opts() }),
            BadOptions,
        ),
        case(
            "unknown fill in JSON",
            json(r#"{"start": {"model": "cox3d-tiny", "options": {"fill": "FILL_BOGUS"}}}"#),
            BadOptions,
        ),
        case(
            "stream id with a space",
            start("cox3d-tiny", Some("a b"), opts()),
            BadStreamId,
        ),
        case(
            "stream id too long",
            start("cox3d-tiny", Some(&"x".repeat(200)), opts()),
            BadStreamId,
        ),
        case(
            "stream id not ASCII",
            start("cox3d-tiny", Some("ünï"), opts()),
            BadStreamId,
        ),
        case(
            "stream id used before",
            start("cox3d-tiny", Some("done"), opts()),
            BadStreamId,
        ),
        case(
            "stream id of an open stream",
            start("cox3d-tiny", Some("witness"), opts()),
            BadStreamId,
        ),
        case("resume an open stream", resume("witness"), BadStreamId),
        case(
            "oversize message",
            Message::Binary(oversize.into()),
            FrameTooLarge,
        ),
    ];
    cases.push(Case {
        name: "resume an unknown stream",
        message: resume("nobody"),
        answer: Answer::StateLost,
    });
    cases.push(Case {
        name: "resume an ended stream",
        message: resume("done"),
        answer: Answer::StateLost,
    });
    cases
}

/// Cases for a connection whose stream has taken frame 0.
fn with_stream() -> Vec<Case> {
    use ErrorCode::*;
    let values = |n: usize, v: f32| vec![v; n];
    let mut nan = frame_values(1, 1, SIZE);
    nan[100] = f32::NAN;
    let mut inf = frame_values(1, 1, SIZE);
    inf[7] = f32::INFINITY;
    let encoded = |bytes: &[u8]| Some(frame::Payload::Encoded(bytes.to_vec()));
    let png_header = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
    let mut corrupt_jpeg = vec![0xff, 0xd8, 0xff, 0xe0];
    corrupt_jpeg.extend(std::iter::repeat_n(0x55, 300));
    let cut_jpeg = jpeg_cut_inside_its_scan();
    vec![
        case(
            "duplicate start",
            start("cox3d-tiny", None, StreamOptions::default()),
            UnexpectedMessage,
        ),
        case("frame without payload", frame_with(1, None), BadFrame),
        case(
            "tensor of another shape",
            tensor(1, &[3, 16, 16], values(768, 0.1)),
            BadFrame,
        ),
        case(
            "tensor shape and data disagree",
            tensor(1, &[3, 32, 32], values(100, 0.1)),
            BadFrame,
        ),
        case("tensor with NaN", tensor(1, &[3, 32, 32], nan), BadFrame),
        case(
            "tensor with infinity",
            tensor(1, &[3, 32, 32], inf),
            BadFrame,
        ),
        case(
            "tensor of rank 2",
            tensor(1, &[3, 1024], values(3072, 0.1)),
            BadFrame,
        ),
        case(
            "corrupt JPEG",
            frame_with(1, encoded(&corrupt_jpeg)),
            BadFrame,
        ),
        case(
            "JPEG cut inside its scan",
            frame_with(1, encoded(&cut_jpeg)),
            BadFrame,
        ),
        case(
            "truncated PNG",
            frame_with(1, encoded(&png_header)),
            BadFrame,
        ),
        case(
            "unknown encoding",
            frame_with(1, encoded(b"hello")),
            BadFrame,
        ),
        case("empty encoded image", frame_with(1, encoded(b"")), BadFrame),
        case(
            "raw pixels of the wrong length",
            frame_with(1, raw(PixelFormat::Rgb8, 8, 8, 100)),
            BadFrame,
        ),
        case(
            "raw pixels without a format",
            frame_with(1, raw(PixelFormat::Unspecified, 8, 8, 192)),
            BadFrame,
        ),
        case(
            "raw pixels zero wide",
            frame_with(1, raw(PixelFormat::Gray8, 0, 8, 0)),
            BadFrame,
        ),
        case(
            "a whole raw image over --max-image-pixels",
            frame_with(1, raw(PixelFormat::Gray8, 100, 100, 10_000)),
            BadFrame,
        ),
        case(
            "raw pixels too large",
            frame_with(1, raw(PixelFormat::Gray8, 100_000, 100_000, 16)),
            BadFrame,
        ),
        case(
            "skeleton to a video model",
            frame_with(
                1,
                Some(frame::Payload::Skeleton(Skeleton {
                    persons: 1,
                    joints: 2,
                    data: values(6, 0.5),
                })),
            ),
            BadFrame,
        ),
        case(
            "features to a video model",
            frame_with(
                1,
                Some(frame::Payload::Features(Features {
                    values: values(8, 1.0),
                })),
            ),
            BadFrame,
        ),
        case("repeated seq", good(0, 1), BadSeq),
        case("seq beyond 2^63", good(u64::MAX, 1), BadSeq),
        case(
            "oversize frame",
            tensor(1, &[3, 32, 32], values(MAX_FRAME_BYTES / 4 + 10, 0.5)),
            FrameTooLarge,
        ),
        case(
            "resume on a streaming connection",
            resume("done"),
            UnexpectedMessage,
        ),
    ]
}

/// Sends each case and checks its answer, then proves the connection still serves; frames
/// answered meanwhile are returned.
async fn run_cases(client: &mut Client, cases: Vec<Case>) -> Vec<Msg> {
    let mut stream_answers = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        client.send_raw(case.message).await;
        let answer = loop {
            match client.recv().await {
                Msg::Error(e) => break Answer::Error(e.code()),
                Msg::StateLost(_) => break Answer::StateLost,
                other @ (Msg::Filling(_) | Msg::Prediction(_) | Msg::Active(_)) => {
                    stream_answers.push(other);
                }
                other => panic!("case `{}`: unexpected {other:?}", case.name),
            }
        };
        assert_eq!(answer, case.answer, "case `{}`", case.name);
        stream_answers.extend(client.ping(i as u64).await);
    }
    stream_answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_error_and_other_streams_are_unaffected() {
    let server = Server::start(
        "bad-input",
        &[
            "--max-frame-bytes",
            &MAX_FRAME_BYTES.to_string(),
            "--max-image-pixels",
            &MAX_IMAGE_PIXELS.to_string(),
        ],
    );
    let model = &server.get_json("/info")["models"][0];
    assert_eq!(model["max_image_pixels"], MAX_IMAGE_PIXELS, "{model}");
    let network = reference_network("tiny");
    // Enough frames for a few predictions after the network's delay.
    let delay = server.get_json("/v1/models")["models"][0]["delay"]
        .as_u64()
        .unwrap();
    let frames = delay + 5;

    // An ended stream, whose id cannot be taken again.
    let mut done = Client::connect(&server, Format::Proto).await;
    done.start("cox3d-tiny", Some("done"), StreamOptions::default())
        .await;
    done.send(client_message::Msg::End(Default::default()))
        .await;
    while !matches!(done.recv().await, Msg::Summary(_)) {}

    // The witness streams throughout.
    let mut witness = Client::connect(&server, Format::Proto).await;
    let options = StreamOptions {
        top_k: 1,
        all_scores: true,
        ..StreamOptions::default()
    };
    witness.start("cox3d-tiny", Some("witness"), options).await;
    for seq in 0..frames / 2 {
        witness.send_raw(good(seq, 2)).await;
    }

    let mut idle = Client::connect(&server, Format::Proto).await;
    let before = before_start();
    let count_before = before.len();
    run_cases(&mut idle, before).await;
    for seq in frames / 2..frames {
        witness.send_raw(good(seq, 2)).await;
    }

    let mut victim = Client::connect(&server, Format::Proto).await;
    let ready = victim.start("cox3d-tiny", Some("victim"), options).await;
    assert_eq!(
        ready.limits.unwrap().max_image_pixels,
        MAX_IMAGE_PIXELS as u64
    );
    victim.send_raw(good(0, 1)).await;
    let during = with_stream();
    let count_with = during.len();
    let frame_cases = during
        .iter()
        .filter(|c| {
            matches!(
                c.answer,
                Answer::Error(ErrorCode::BadFrame | ErrorCode::BadSeq | ErrorCode::FrameTooLarge)
            )
        })
        .count() as u64;
    let mut victim_answers = run_cases(&mut victim, during).await;
    assert!(
        count_before + count_with >= 40,
        "{} cases",
        count_before + count_with
    );

    // The victim's stream goes on from frame 1 as if nothing bad had been sent.
    for seq in 1..frames {
        victim.send_raw(good(seq, 1)).await;
    }
    while victim_answers
        .iter()
        .filter(|m| matches!(m, Msg::Filling(_) | Msg::Prediction(_)))
        .count()
        < frames as usize
    {
        match victim.recv().await {
            Msg::Error(e) => panic!("the victim's valid frame was refused: {e:?}"),
            other => victim_answers.push(other),
        }
    }
    let victim_scores: Vec<Vec<f32>> = victim_answers
        .into_iter()
        .filter_map(|m| match m {
            Msg::Prediction(p) => Some(p.scores),
            _ => None,
        })
        .collect();
    let inputs: Vec<Vec<f32>> = (0..frames as usize)
        .map(|t| frame_values(1, t, SIZE))
        .collect();
    let expected = reference_steps(&network, &inputs, SIZE, TemporalFill::Zeros);
    let diff = max_diff(&victim_scores, &expected);
    assert!(diff <= 1e-5, "the victim's stream changed by {diff}");
    victim
        .send(client_message::Msg::End(Default::default()))
        .await;
    let summary = loop {
        if let Msg::Summary(s) = victim.recv().await {
            break s;
        }
    };
    assert_eq!(
        summary.rejected, frame_cases,
        "every refused frame is counted"
    );
    assert_eq!(summary.frames_in, frames);

    // The witness got exactly its own predictions.
    let mut witness_scores = Vec::new();
    let mut answered = 0;
    while answered < frames {
        match witness.recv().await {
            Msg::Prediction(p) => {
                witness_scores.push(p.scores);
                answered += 1;
            }
            Msg::Filling(_) => answered += 1,
            Msg::Active(_) => {}
            other => panic!("witness got {other:?}"),
        }
    }
    let inputs: Vec<Vec<f32>> = (0..frames as usize)
        .map(|t| frame_values(2, t, SIZE))
        .collect();
    let expected = reference_steps(&network, &inputs, SIZE, TemporalFill::Zeros);
    assert_eq!(witness_scores.len(), expected.len());
    let diff = max_diff(&witness_scores, &expected);
    assert!(diff <= 1e-5, "the witness stream changed by {diff}");
}

/// A JPEG of the model's frame size whose headers are whole and whose entropy-coded scan is
/// cut halfway: half a frame, which must not become a prediction.
fn jpeg_cut_inside_its_scan() -> Vec<u8> {
    let side = u16::try_from(SIZE).unwrap();
    let pixels: Vec<u8> = (0..SIZE * SIZE * 3).map(|i| (i * 37 % 251) as u8).collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(&pixels, side, side, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    let scan = sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
    jpeg.truncate((scan + jpeg.len()) / 2);
    jpeg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_past_the_hard_cap_closes_with_1009_and_keeps_the_stream_for_resume() {
    let server = Server::start(
        "hard-cap",
        &["--max-frame-bytes", &MAX_FRAME_BYTES.to_string()],
    );
    let cap = server.get_json("/info")["config"]["limits"]["max_frame_bytes"]
        .as_u64()
        .unwrap() as usize
        * 2
        + (1 << 20);
    let mut client = Client::connect(&server, Format::Proto).await;
    client
        .start("cox3d-tiny", Some("oversized"), StreamOptions::default())
        .await;
    client.send_raw(good(0, 1)).await;
    client
        .send_raw(Message::Binary(vec![0; cap + 1].into()))
        .await;
    let (code, message, _) = client.expect_error().await;
    assert_eq!(code, ErrorCode::FrameTooLarge, "{message}");
    let summary = loop {
        match client.recv().await {
            Msg::Summary(s) => break s,
            Msg::Filling(_) | Msg::Prediction(_) | Msg::Active(_) => {}
            other => panic!("expected the summary, got {other:?}"),
        }
    };
    assert_eq!(summary.reason, "disconnected");
    assert_eq!(summary.frames_in, 1);
    assert!(client.try_recv(ANSWER_TIMEOUT).await.is_none());
    let close = client.closed.clone().flatten().expect("a close frame");
    assert_eq!(u16::from(close.code), 1009, "{close:?}");

    // The stream's state was saved: it resumes after frame 0.
    let mut again = Client::connect(&server, Format::Proto).await;
    again.send_raw(resume("oversized")).await;
    match again.recv().await {
        Msg::Resumed(r) => assert_eq!(r.last_seq, Some(0)),
        other => panic!("expected resumed, got {other:?}"),
    }
}
