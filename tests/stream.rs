//! End to end: streams through the real server give the numbers of the network run
//! in-process, many at once, across a disconnect, and their stored predictions are queryable.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::common::*;
use base64::Engine as _;
use costream_continual::TemporalFill;
use costream_models::x3d::X3dConfig;
use costream_proto::v1::{client_message, server_message::Msg, Fill, StreamOptions};

const SIZE: usize = 32;
const SHAPE: [u32; 3] = [3, 32, 32];

fn all_scores(top_k: u32) -> StreamOptions {
    StreamOptions {
        top_k,
        all_scores: true,
        ..StreamOptions::default()
    }
}

/// Reads the answers to `n` frames: the scores of each prediction by seq, and how many were
/// `filling`.
async fn answers(client: &mut Client, n: usize) -> (Vec<(u64, i64, Vec<f32>)>, usize) {
    let mut predictions = Vec::new();
    let mut filling = 0;
    let mut answered = 0;
    while answered < n {
        match client.recv().await {
            Msg::Prediction(p) => {
                predictions.push((p.seq, p.pts, p.scores));
                answered += 1;
            }
            Msg::Filling(_) => {
                filling += 1;
                answered += 1;
            }
            Msg::Active(_) | Msg::Waiting(_) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (predictions, filling)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_equals_the_offline_network_and_its_predictions_are_stored() {
    let server = Server::start("offline", &["--model-variant", "tiny-nose"]);
    let frames: Vec<Vec<f32>> = (0..12).map(|t| frame_values(0, t, SIZE)).collect();
    let offline = reference_offline(&reference_network("tiny-nose"), &frames, SIZE);

    let mut client = Client::connect(&server, Format::Proto).await;
    let ready = client
        .start("cox3d-tiny", Some("cam-1"), all_scores(5))
        .await;
    assert_eq!(ready.stream_id, "cam-1");
    assert_eq!(ready.stride, 1);
    let delay = ready.delay as usize;
    assert!(delay > 0 && delay < frames.len(), "delay {delay}");
    for (t, f) in frames.iter().enumerate() {
        client
            .send_tensor(t as u64, t as i64 * 40_000, f.clone(), SHAPE)
            .await;
    }
    let (predictions, filling) = answers(&mut client, frames.len()).await;
    assert_eq!(
        filling, delay,
        "frames consumed before the first prediction"
    );
    let seqs: Vec<u64> = predictions.iter().map(|p| p.0).collect();
    assert_eq!(
        seqs,
        (delay as u64..frames.len() as u64).collect::<Vec<_>>()
    );
    assert!(predictions
        .iter()
        .all(|(seq, pts, _)| *pts == *seq as i64 * 40_000));
    let streamed: Vec<Vec<f32>> = predictions.iter().map(|p| p.2.clone()).collect();
    let diff = max_diff(&streamed, &offline[..streamed.len()]);
    assert!(diff <= 2e-5, "streamed vs offline differ by {diff}");

    // The end padding gives the offline network's last outputs.
    client
        .send(client_message::Msg::Flush(Default::default()))
        .await;
    let Msg::Flushed(flushed) = client.recv().await else {
        panic!("expected flushed");
    };
    let tail: Vec<Vec<f32>> = flushed.predictions.into_iter().map(|p| p.scores).collect();
    let diff = max_diff(&tail, &offline[streamed.len()..]);
    assert!(diff <= 2e-5, "flushed vs offline tail differ by {diff}");

    client
        .send(client_message::Msg::End(Default::default()))
        .await;
    let Msg::Summary(summary) = client.recv().await else {
        panic!("expected the summary");
    };
    assert_eq!(summary.reason, "client");
    assert_eq!(summary.frames_in, 12);
    assert_eq!(summary.predicted, (12 - delay) as u64);
    assert_eq!(summary.filling, delay as u64);
    assert!(client.try_recv(ANSWER_TIMEOUT).await.is_none());
    assert_eq!(
        client.received[1], 0,
        "a protobuf client gets binary frames only"
    );
    assert_eq!(
        client.closed.clone().flatten().map(|c| u16::from(c.code)),
        Some(1000)
    );

    // Stored: the record, and every prediction with the labels the client received.
    let record = server.get_json("/v1/streams/cam-1");
    assert_eq!(record["state"], "stored");
    assert_eq!(record["end_reason"], "client");
    assert_eq!(record["counts"]["predicted"], (12 - delay) as u64);
    let stored = server.get_json("/v1/streams/cam-1/predictions");
    let stored = stored["predictions"].as_array().unwrap().clone();
    assert_eq!(stored.len(), predictions.len());
    for (row, (seq, pts, scores)) in stored.iter().zip(&predictions) {
        assert_eq!(row["seq"], *seq);
        assert_eq!(row["pts"], *pts);
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        assert_eq!(row["top_k"][0]["index"], best.0);
        assert_eq!(row["top_k"].as_array().unwrap().len(), 5);
        let score = row["top_k"][0]["score"].as_f64().unwrap() as f32;
        assert_eq!(score, *best.1);
    }
    let range = server.get_json(&format!(
        "/v1/streams/cam-1/predictions?from={}&to={}",
        delay + 1,
        delay + 2
    ));
    assert_eq!(range["predictions"].as_array().unwrap().len(), 2);
    assert_eq!(range["predictions"][0]["seq"], delay + 1);
    let (status, csv) = server.get_with("/v1/streams/cam-1/predictions", &[("Accept", "text/csv")]);
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "seq,pts,created_ms,queue_us,compute_us,batch_size,rank,index,label,score"
    );
    assert_eq!(lines.len(), 1 + 5 * predictions.len());
    assert!(
        lines[1].starts_with(&format!("{delay},{},", delay * 40_000)),
        "{}",
        lines[1]
    );
    let (status, _) = server.get("/v1/streams/cam-1/predictions?format=csv&from=3&to=1");
    assert_eq!(status, 400);
    let (status, _) = server.get("/v1/streams/nobody/predictions");
    assert_eq!(status, 404);
}

/// A PNG file of `width × height` RGB pixels, distinct per `t`.
fn png(t: usize, width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|i| ((i as usize * 7 + t * 31) % 251) as u8)
            .collect();
        writer.write_image_data(&pixels).unwrap();
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_clients_stream_png_frames_through_the_models_preprocessing() {
    let server = Server::start("png", &[]);
    let spec = X3dConfig::tiny().preprocessing(1);
    let images: Vec<Vec<u8>> = (0..14).map(|t| png(t, 48, 40)).collect();
    let inputs: Vec<Vec<f32>> = images
        .iter()
        .map(|b| {
            spec.apply(
                &costream_engine::image::decode(b, costream_engine::DEFAULT_MAX_IMAGE_PIXELS)
                    .unwrap(),
            )
        })
        .collect();
    let expected = reference_steps(
        &reference_network("tiny"),
        &inputs,
        SIZE,
        TemporalFill::Replicate,
    );

    let mut client = Client::connect(&server, Format::Json).await;
    let options = StreamOptions {
        fill: Fill::Replicate as i32,
        ..all_scores(2)
    };
    let ready = client.start("cox3d-tiny", None, options).await;
    assert_eq!(ready.stream_id.len(), 32, "a generated id");
    for (t, image) in images.iter().enumerate() {
        // Check the JSON mapping really carries base64 bytes.
        let text = format!(
            r#"{{"frame": {{"seq": "{t}", "pts": {t}, "encoded": "{}"}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(image)
        );
        client
            .send_raw(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await;
    }
    let (predictions, filling) = answers(&mut client, images.len()).await;
    assert_eq!(filling + predictions.len(), images.len());
    assert_eq!(client.received[0], 0, "a JSON client gets text frames only");
    let streamed: Vec<Vec<f32>> = predictions.into_iter().map(|p| p.2).collect();
    let diff = max_diff(&streamed, &expected);
    assert!(
        diff <= 1e-5,
        "server vs in-process pipeline differ by {diff}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_streams_each_get_their_own_predictions_in_order() {
    const STREAMS: usize = 50;
    const FRAMES: usize = 10;
    let server = Server::start(
        "fifty",
        &["--capacity", "64", "--max-batch", "16", "--max-wait", "5ms"],
    );
    let network = reference_network("tiny");
    // Different streams' frames give different outputs, so a mix-up cannot pass.
    let apart = |s: usize| {
        let frames: Vec<Vec<f32>> = (0..FRAMES).map(|t| frame_values(s, t, SIZE)).collect();
        reference_steps(&network, &frames, SIZE, TemporalFill::Zeros)
    };
    // A stream's answers must match its own frames to TOLERANCE; other streams' answers are
    // several times that far away.
    const TOLERANCE: f32 = 1e-5;
    let between = max_diff(&apart(0), &apart(1));
    assert!(
        between > 5.0 * TOLERANCE,
        "streams 0 and 1 differ by only {between}"
    );
    let mut tasks = Vec::new();
    for s in 0..STREAMS {
        let mut client = Client::connect(&server, Format::Proto).await;
        tasks.push(tokio::spawn(async move {
            let id = format!("s{s}");
            client.start("cox3d-tiny", Some(&id), all_scores(1)).await;
            for t in 0..FRAMES {
                client
                    .send_tensor(t as u64, t as i64, frame_values(s, t, SIZE), SHAPE)
                    .await;
            }
            answers(&mut client, FRAMES).await
        }));
    }
    for (s, task) in tasks.into_iter().enumerate() {
        let (predictions, filling) = task.await.unwrap();
        let seqs: Vec<u64> = predictions.iter().map(|p| p.0).collect();
        assert_eq!(
            seqs,
            (filling as u64..FRAMES as u64).collect::<Vec<_>>(),
            "stream {s} in order"
        );
        let expected = apart(s);
        let streamed: Vec<Vec<f32>> = predictions.into_iter().map(|p| p.2).collect();
        let diff = max_diff(&streamed, &expected);
        assert!(
            diff <= TOLERANCE,
            "stream {s} differs from itself stepped alone by {diff}"
        );
    }
    let models = server.get_json("/v1/models");
    assert_eq!(models["models"][0]["capacity"], 64);
}

/// Streams `frames[range]` on an open client and returns the scores of its predictions.
async fn stream_frames(
    client: &mut Client,
    stream: usize,
    range: std::ops::Range<usize>,
) -> Vec<(u64, i64, Vec<f32>)> {
    let n = range.len();
    for t in range {
        client
            .send_tensor(t as u64, t as i64, frame_values(stream, t, SIZE), SHAPE)
            .await;
    }
    answers(client, n).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_stream_continues_bit_identically_and_lost_state_is_said() {
    let server = Server::start("resume", &[]);
    // Uninterrupted.
    let mut whole = Client::connect(&server, Format::Proto).await;
    whole
        .start("cox3d-tiny", Some("whole"), all_scores(3))
        .await;
    let expected = stream_frames(&mut whole, 7, 0..16).await;

    // The same frames with a dropped connection after frame 9 (answers read).
    let mut first = Client::connect(&server, Format::Proto).await;
    first.start("cox3d-tiny", Some("cut"), all_scores(3)).await;
    let mut got = stream_frames(&mut first, 7, 0..10).await;
    first.drop_connection().await;

    // Resuming too early may find the stream still open; the state is saved within moments.
    let mut second = Client::connect(&server, Format::Proto).await;
    let resumed = loop {
        second
            .send(client_message::Msg::Resume(costream_proto::v1::Resume {
                stream_id: "cut".into(),
                last_seq: got.last().map(|p| p.0),
            }))
            .await;
        match second.recv().await {
            Msg::Resumed(r) => break r,
            // Still open on the dropped connection until the server notices.
            Msg::Error(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(resumed.last_seq, Some(9));
    assert!(!got.is_empty(), "predictions before the cut");
    assert_eq!(resumed.replayed, 0, "every answer had been read");
    got.extend(stream_frames(&mut second, 7, 10..16).await);
    assert_eq!(got.len(), expected.len());
    for (a, b) in got.iter().zip(&expected) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.2, b.2, "frame {} after the resume differs", a.0);
    }

    // Frames sent but answers never read: replayed on resume.
    let mut third = Client::connect(&server, Format::Json).await;
    third
        .start("cox3d-tiny", Some("unread"), all_scores(3))
        .await;
    for t in 0..12 {
        third
            .send_tensor(t, t as i64, frame_values(7, t as usize, SIZE), SHAPE)
            .await;
    }
    // Wait until the server has taken them (the stream's record shows them), then drop.
    let deadline = std::time::Instant::now() + ANSWER_TIMEOUT;
    while server.get_json("/v1/streams/unread")["counts"]["frames_in"] != 12 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    third.drop_connection().await;
    let mut fourth = Client::connect(&server, Format::Json).await;
    let replayed = loop {
        fourth
            .send(client_message::Msg::Resume(costream_proto::v1::Resume {
                stream_id: "unread".into(),
                last_seq: None,
            }))
            .await;
        let mut replayed = Vec::new();
        let resumed = loop {
            match fourth.recv().await {
                // As stored (docs/protocol.md): the top-k labels, no scores.
                Msg::Prediction(p) => {
                    assert_eq!(p.top_k.len(), 3, "replayed {} keeps its top k", p.seq);
                    assert!(p.scores.is_empty(), "replayed {} has scores", p.seq);
                    replayed.push(p.seq);
                }
                Msg::Resumed(r) => break Some(r),
                // Still open on the dropped connection until the server notices.
                Msg::Error(_) => break None,
                other => panic!("unexpected {other:?}"),
            }
        };
        if let Some(resumed) = resumed {
            assert_eq!(resumed.last_seq, Some(11));
            assert_eq!(resumed.replayed as usize, replayed.len());
            break replayed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let unread: Vec<u64> = expected.iter().map(|p| p.0).filter(|&s| s <= 11).collect();
    assert!(!unread.is_empty());
    assert_eq!(replayed, unread, "the unread answers are sent again");

    // A stream that ended after its resume, or never existed, has no state to resume.
    fourth
        .send(client_message::Msg::End(Default::default()))
        .await;
    loop {
        if let Msg::Summary(summary) = fourth.recv().await {
            assert_eq!(summary.frames_in, 12, "counts of both connections");
            break;
        }
    }
    for id in ["unread", "never-was"] {
        let mut client = Client::connect(&server, Format::Proto).await;
        client
            .send(client_message::Msg::Resume(costream_proto::v1::Resume {
                stream_id: id.into(),
                last_seq: None,
            }))
            .await;
        match client.recv().await {
            Msg::StateLost(lost) => assert_eq!(lost.stream_id, id),
            other => panic!("expected state_lost, got {other:?}"),
        }
    }
}
