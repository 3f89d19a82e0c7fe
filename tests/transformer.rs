//! Online action detection through the real server: `costream serve --model-family
//! transformer` (CoOadTR-b2 at the tiny size, random weights from `SEED`) answers feature
//! streams with the class probabilities of the same network run in-process, several streams
//! at once in both wire formats; `costream stream` sends `.npy` feature files to it; feature
//! frames of the wrong length or with non-finite values are refused by name.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use burn::prelude::*;
use costream_backend::Cpu;
use costream_continual::{Activation, ActivationKind, CoModule, Sequential, State, TemporalFill};
use costream_models::oadtr::{build_co_oadtr, CoOadTrConfig};
use costream_proto::v1::{
    client_message, frame, server_message::Msg, ErrorCode, Features, Frame, StreamOptions,
};

use crate::common::{max_diff, temp_dir, Client, Format, Server, SEED};

/// Feature frames per stream: past step `2n − 2`, where a retroactive window has wrapped.
const FRAMES: usize = 30;

fn start_server(name: &str) -> Server {
    Server::start(
        name,
        &[
            "--model-family",
            "transformer",
            "--model-variant",
            "b2-tiny",
            "--model-name",
            "cooadtr",
        ],
    )
}

/// The served network built in-process from the same seed, with the engine's softmax.
fn reference_network() -> (CoOadTrConfig, Sequential<Cpu>) {
    let device = Default::default();
    let config = CoOadTrConfig::tiny(2);
    Cpu::seed(&device, SEED);
    let network = build_co_oadtr::<Cpu>(&config, &device).unwrap();
    let network = Sequential::new(vec![
        network.into(),
        Activation::new(ActivationKind::Softmax).into(),
    ]);
    (config, network)
}

/// Deterministic features of stream `stream`, frame `t`.
fn features(stream: usize, t: usize, size: usize) -> Vec<f32> {
    (0..size)
        .map(|i| ((stream as f32 * 1.3 + t as f32 * 0.7 + i as f32 * 0.29).sin()) * 2.0)
        .collect()
}

/// The in-process probabilities of each frame that gives an output.
fn reference_steps(network: &Sequential<Cpu>, frames: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let device = Default::default();
    let mut state: State<Cpu> = network.init_state(1, TemporalFill::Zeros, &device);
    frames
        .iter()
        .filter_map(|f| {
            let frame =
                Tensor::<Cpu, 1>::from_floats(f.as_slice(), &device).reshape([1, f.len(), 1, 1]);
            network
                .forward_step(frame, &mut state)
                .map(|out| out.into_data().to_vec::<f32>().unwrap())
        })
        .collect()
}

fn feature_frame(seq: u64, values: Vec<f32>) -> client_message::Msg {
    client_message::Msg::Frame(Frame {
        seq,
        pts: seq as i64 * 250_000,
        payload: Some(frame::Payload::Features(Features { values })),
    })
}

fn all_scores() -> StreamOptions {
    StreamOptions {
        all_scores: true,
        ..StreamOptions::default()
    }
}

/// Streams `frames` and returns the scores of each prediction and the number of `filling`
/// answers.
async fn stream_features(client: &mut Client, frames: &[Vec<f32>]) -> (Vec<Vec<f32>>, usize) {
    for (seq, values) in frames.iter().enumerate() {
        client.send(feature_frame(seq as u64, values.clone())).await;
    }
    let (mut scores, mut filling) = (Vec::new(), 0);
    while scores.len() + filling < frames.len() {
        match client.recv().await {
            Msg::Prediction(p) => {
                assert_eq!(p.seq as usize, scores.len() + filling, "answers in order");
                scores.push(p.scores);
            }
            Msg::Filling(_) => filling += 1,
            Msg::Active(_) | Msg::Waiting(_) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (scores, filling)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_streams_get_the_in_process_networks_probabilities() {
    let server = start_server("transformer-streams");
    let (config, network) = reference_network();
    let models = server.get_json("/v1/models");
    let model = &models["models"][0];
    assert_eq!(model["family"], "transformer");
    assert_eq!(model["delay"], config.delay());
    assert_eq!(
        model["frame_shape"],
        serde_json::json!([config.input_features, 1, 1])
    );

    let streams = [Format::Proto, Format::Json, Format::Proto];
    let mut clients = Vec::new();
    for (i, format) in streams.into_iter().enumerate() {
        let mut client = Client::connect(&server, format).await;
        let ready = client
            .start("cooadtr", Some(&format!("features-{i}")), all_scores())
            .await;
        assert_eq!(ready.delay as usize, config.delay());
        clients.push(client);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                let frames: Vec<Vec<f32>> = (0..FRAMES)
                    .map(|t| features(i, t, CoOadTrConfig::tiny(2).input_features))
                    .collect();
                let answers = stream_features(&mut client, &frames).await;
                client.close().await;
                (frames, answers)
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (frames, (scores, filling)) = task.await.unwrap();
        assert_eq!(filling, config.delay(), "stream {i}: filling answers");
        let expected = reference_steps(&network, &frames);
        let diff = max_diff(&scores, &expected);
        assert!(diff < 1e-5, "stream {i}: scores differ by {diff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_frames_that_do_not_fit_are_refused_by_name() {
    let server = start_server("transformer-bad-features");
    let size = CoOadTrConfig::tiny(2).input_features;
    let cases = [
        (
            features(0, 0, size - 1),
            format!(
                "a feature vector of {} values: this model takes {size}",
                size - 1
            ),
        ),
        (
            {
                let mut values = features(0, 0, size);
                values[3] = f32::NAN;
                values
            },
            "value 3 is NaN: inputs must be finite".to_string(),
        ),
    ];
    // Protobuf: JSON numbers cannot be NaN.
    for (values, message) in cases {
        let mut client = Client::connect(&server, Format::Proto).await;
        client.start("cooadtr", None, all_scores()).await;
        client.send(feature_frame(0, values)).await;
        let (code, text, seq) = client.expect_error().await;
        assert_eq!(code, ErrorCode::BadFrame, "{text}");
        assert_eq!(seq, Some(0));
        assert!(text.contains(&message), "{text}");
        // The stream goes on: a good frame is answered.
        client.send(feature_frame(1, features(0, 1, size))).await;
        assert!(matches!(client.recv().await, Msg::Filling(_)));
        client.close().await;
    }
}

#[test]
fn costream_stream_sends_an_npy_feature_file() {
    let server = start_server("transformer-client");
    let (config, network) = reference_network();
    let frames: Vec<Vec<f32>> = (0..FRAMES)
        .map(|t| features(7, t, config.input_features))
        .collect();
    let dir = temp_dir("transformer-npy");
    let npy = dir.join("features.npy");
    write_npy(&npy, &frames);

    let output = Command::new(env!("CARGO_BIN_EXE_costream"))
        .arg("stream")
        .arg(&npy)
        .args(["--url", &server.ws_url(), "--quiet", "--model", "cooadtr"])
        .args(["--format", "json", "--top-k", &config.classes.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut scores = Vec::new();
    let mut filling = 0;
    for line in stdout.lines() {
        let answer: serde_json::Value = serde_json::from_str(line).unwrap();
        if answer.get("filling").is_some() {
            filling += 1;
        } else if let Some(p) = answer.get("prediction") {
            // Scores by class index, from the top-k list of every class.
            let mut by_class = vec![f32::NAN; config.classes];
            for ranked in p["topK"].as_array().unwrap() {
                let label = ranked["label"].as_str().unwrap();
                let index: usize = label.strip_prefix("class_").unwrap().parse().unwrap();
                by_class[index] = ranked["score"].as_f64().unwrap() as f32;
            }
            scores.push(by_class);
        }
    }
    assert_eq!(filling, config.delay());
    let diff = max_diff(&scores, &reference_steps(&network, &frames));
    assert!(diff < 1e-5, "scores differ by {diff}");
}

/// `frames` as a little-endian f32 `.npy` array `[frames, features]`.
fn write_npy(path: &Path, frames: &[Vec<f32>]) {
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        frames.len(),
        frames[0].len()
    );
    // Magic, version, header length, then the header padded with spaces to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    let header = format!(
        "{header}{}\n",
        " ".repeat(unpadded.next_multiple_of(64) - unpadded)
    );
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for value in frames.iter().flatten() {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}
