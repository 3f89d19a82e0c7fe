//! `costream stream` against the real server, for each input kind (issue 8): a y4m video, a
//! folder of PNG and JPEG images and an MJPEG video of synthetic actions are labelled by the
//! built-in model; skeleton sequences (JSON, CSV) by a CoST-GCN* exactly as the same network
//! in-process; and skeleton and feature (npy, safetensors) files sent to the video model reach
//! it and are refused by name (feature files to a feature model: `transformer.rs`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use crate::common::{temp_dir, Server};
use costream_synth::{Action, Clip, Frame};

/// Frames per clip.
const FRAMES: usize = 40;
/// Frames the built-in model consumes before its first prediction.
const DELAY: usize = 8;

/// Runs `costream stream INPUT --url … ARGS`; returns success, stdout and stderr.
fn stream(server: &Server, input: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_costream"))
        .arg("stream")
        .arg(input)
        .args(["--url", &server.ws_url(), "--quiet"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The answers of `--format json` output: the number of `filling` answers and the best
/// label of each prediction.
fn json_answers(stdout: &str) -> (usize, Vec<String>) {
    let (mut filling, mut labels) = (0, Vec::new());
    for line in stdout.lines() {
        let answer: serde_json::Value = serde_json::from_str(line).unwrap();
        if answer.get("filling").is_some() {
            filling += 1;
        } else if let Some(p) = answer.get("prediction") {
            labels.push(p["topK"][0]["label"].as_str().unwrap().to_string());
        }
    }
    (filling, labels)
}

/// Asserts that a clip's answers are one per frame and its predictions mostly `action`.
fn assert_labelled(filling: usize, labels: &[String], action: Action, what: &str) {
    assert_eq!(filling, DELAY, "{what}: filling answers");
    assert_eq!(
        filling + labels.len(),
        FRAMES,
        "{what}: one answer per frame"
    );
    let right = labels.iter().filter(|l| *l == action.label()).count();
    assert!(
        right * 10 >= labels.len() * 9,
        "{what}: {right} of {} predictions are `{}`: {labels:?}",
        labels.len(),
        action.label()
    );
}

fn jpeg(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 95)
        .encode(
            &frame.rgb,
            frame.width as u16,
            frame.height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    out
}

fn png(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, frame.width as u32, frame.height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&frame.rgb).unwrap();
    writer.finish().unwrap();
    out
}

#[test]
fn videos_and_image_folders_are_labelled_frame_by_frame() {
    let server = Server::start_builtin("client-video");
    let dir = temp_dir("client-video");

    // y4m, written by `costream synth`, printed as JSON lines.
    let y4m = dir.join("right.y4m");
    let synth = Command::new(env!("CARGO_BIN_EXE_costream"))
        .args(["synth", y4m.to_str().unwrap(), "--actions", "right"])
        .args(["--frames-per-action", &FRAMES.to_string(), "--seed", "21"])
        .output()
        .unwrap();
    assert!(synth.status.success(), "{synth:?}");
    let (ok, stdout, stderr) = stream(&server, &y4m, &["--format", "json"]);
    assert!(ok, "y4m: {stderr}");
    let (filling, labels) = json_answers(&stdout);
    assert_labelled(filling, &labels, Action::MovingRight, "y4m");
    assert!(
        stderr.contains(&format!("{FRAMES} frames in, {} predicted", FRAMES - DELAY)),
        "y4m summary: {stderr}"
    );

    // A folder of images, PNG and JPEG mixed, in file-name order; a table.
    let clip = Clip::random(Action::MovingUp, 22, 64, 64);
    let folder = dir.join("frames");
    std::fs::create_dir_all(&folder).unwrap();
    for (t, frame) in clip.frames(FRAMES).iter().enumerate() {
        let (bytes, ext) = if t % 2 == 0 {
            (png(frame), "png")
        } else {
            (jpeg(frame), "jpg")
        };
        std::fs::write(folder.join(format!("frame-{t:04}.{ext}")), bytes).unwrap();
    }
    std::fs::write(folder.join("notes.txt"), "not an image").unwrap();
    let (ok, stdout, stderr) = stream(&server, &folder, &["--top-k", "2"]);
    assert!(ok, "images: {stderr}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert!(
        stdout.starts_with("  frame  label"),
        "table header: {stdout}"
    );
    let filling = rows.iter().filter(|r| r.contains("(filling)")).count();
    let labels: Vec<String> = rows
        .iter()
        .filter(|r| !r.contains("(filling)"))
        .map(|r| r[9..27].trim().to_string())
        .collect();
    assert_labelled(filling, &labels, Action::MovingUp, "images");

    // MJPEG: the same kind of JPEGs back to back, with --flush for the end padding.
    let clip = Clip::random(Action::Shrinking, 23, 64, 64);
    let mjpeg: Vec<u8> = clip.frames(FRAMES).iter().flat_map(jpeg).collect();
    let path = dir.join("shrinking.mjpeg");
    std::fs::write(&path, mjpeg).unwrap();
    let (ok, stdout, stderr) = stream(&server, &path, &["--format", "json", "--flush"]);
    assert!(ok, "mjpeg: {stderr}");
    let (filling, labels) = json_answers(&stdout);
    assert_labelled(filling, &labels, Action::Shrinking, "mjpeg");
    let flushed: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .find(|l| l.starts_with(r#"{"flushed""#))
            .expect("a flushed answer"),
    )
    .unwrap();
    let padding = flushed["flushed"]["predictions"].as_array().unwrap();
    assert!(
        (1..=DELAY).contains(&padding.len()),
        "the end padding yields at most one prediction per frame of delay: {padding:?}"
    );
    assert!(padding.iter().all(|p| p["topK"][0]["label"].is_string()));
}

#[test]
fn skeleton_and_feature_files_reach_the_server_and_are_refused_by_name() {
    let server = Server::start_builtin("client-other");
    let dir = temp_dir("client-other");
    let skeleton_json = dir.join("pose.json");
    std::fs::write(
        &skeleton_json,
        "[[[[0.1, 0.2, 0.9], [0.3, 0.4, 0.8]]], [[[0.1, 0.2, 0.9], [0.3, 0.4, 0.8]]]]",
    )
    .unwrap();
    let skeleton_csv = dir.join("pose.csv");
    std::fs::write(
        &skeleton_csv,
        "frame,person,joint,x,y,confidence\n0,0,0,0.1,0.2,0.9\n0,0,1,0.3,0.4,0.8\n",
    )
    .unwrap();
    let values: Vec<u8> = [0.5f32; 6].iter().flat_map(|v| v.to_le_bytes()).collect();
    let npy = dir.join("features.npy");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&values);
    std::fs::write(&npy, bytes).unwrap();
    let st = dir.join("features.safetensors");
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3], &values).unwrap();
    std::fs::write(
        &st,
        safetensors::serialize(vec![("features", view)], None).unwrap(),
    )
    .unwrap();

    for (path, found) in [
        (&skeleton_json, "skeleton joints"),
        (&skeleton_csv, "skeleton joints"),
        (&npy, "a feature vector"),
        (&st, "a feature vector"),
    ] {
        let (ok, stdout, stderr) = stream(&server, path, &["--format", "json"]);
        assert!(!ok, "{}: a video model must refuse it", path.display());
        assert!(
            stderr.contains("frame 0 refused: this model takes video frames")
                && stderr.contains(&format!("not {found}")),
            "{}: {stderr}",
            path.display()
        );
        // The first refusal ends the stream; frames already in flight are refused too.
        assert!(stderr.contains("the server refused "), "{stderr}");
        let error: serde_json::Value =
            serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
        assert_eq!(error["error"]["code"], "BAD_FRAME", "{stdout}");
    }

    // A malformed file is refused by the client, naming the file and the problem.
    let broken = dir.join("broken.csv");
    std::fs::write(&broken, "frame,person,joint,x,y\n0,0,0,1,oops\n").unwrap();
    let (ok, _, stderr) = stream(&server, &broken, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("broken.csv: line 2: y `oops` is not a number"),
        "{stderr}"
    );
}

/// Frames of a synthetic one-person skeleton sequence (25 joints), deterministic.
fn skeleton_frames(frames: usize) -> Vec<Vec<[f32; 3]>> {
    (0..frames)
        .map(|t| {
            (0..25)
                .map(|j| {
                    let phase = t as f32 * 0.1 + j as f32 * 0.7;
                    [
                        phase.sin(),
                        (phase * 1.3).cos(),
                        0.5 + 0.5 * (phase * 0.2).sin(),
                    ]
                })
                .collect()
        })
        .collect()
}

/// The served (tiny) CoST-GCN* run in-process from the same seed: the top class and its
/// probability of each prediction.
fn reference_skeleton_predictions(seed: u64, frames: &[Vec<[f32; 3]>]) -> Vec<(u64, f32)> {
    use burn::prelude::*;
    use costream_backend::Cpu;
    use costream_continual::{CoModule, TemporalFill};
    use costream_models::stgcn::{build_stgcn, StGcnConfig, StGcnVariant};
    let device = Default::default();
    Cpu::seed(&device, seed);
    let network =
        build_stgcn::<Cpu>(&StGcnConfig::tiny(StGcnVariant::EveryFrame), &device).unwrap();
    let mut state = network.init_state(1, TemporalFill::Zeros, &device);
    let mut out = Vec::new();
    for joints in frames {
        // [C, V, P] with the second person absent.
        let mut frame = vec![0.0f32; 3 * 25 * 2];
        for (v, joint) in joints.iter().enumerate() {
            for c in 0..3 {
                frame[(c * 25 + v) * 2] = joint[c];
            }
        }
        let input = Tensor::<Cpu, 4>::from_data(TensorData::new(frame, [1, 3, 25, 2]), &device);
        if let Some(logits) = network.forward_step(input, &mut state) {
            let probabilities: Vec<f32> =
                burn::tensor::activation::softmax(logits.reshape([1, 60]), 1)
                    .into_data()
                    .convert::<f32>()
                    .into_vec()
                    .unwrap();
            let (best, score) =
                probabilities
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::MIN),
                        |(bi, bs), (i, &s)| if s > bs { (i, s) } else { (bi, bs) },
                    );
            out.push((best as u64, score));
        }
    }
    out
}

#[test]
fn skeleton_json_and_csv_are_labelled_by_a_skeleton_model_as_in_process() {
    let seed = 5;
    let server = Server::start(
        "client-skeleton",
        &[
            "--model-name",
            "cost-gcn-star",
            "--model-family",
            "stgcn",
            "--model-variant",
            "tiny-mod",
            "--weights",
            &format!("random:{seed}"),
        ],
    );
    let dir = temp_dir("client-skeleton");
    let frames = skeleton_frames(70);
    let expected = reference_skeleton_predictions(seed, &frames);
    assert_eq!(
        expected.len(),
        7,
        "the tiny CoST-GCN* predicts from frame 63 on"
    );

    let json: Vec<Vec<Vec<[f32; 3]>>> = frames.iter().map(|person| vec![person.clone()]).collect();
    let json_path = dir.join("pose.json");
    std::fs::write(&json_path, serde_json::to_string(&json).unwrap()).unwrap();
    let mut csv = String::from("frame,person,joint,x,y,confidence\n");
    for (t, joints) in frames.iter().enumerate() {
        for (j, [x, y, c]) in joints.iter().enumerate() {
            csv.push_str(&format!("{t},0,{j},{x},{y},{c}\n"));
        }
    }
    let csv_path = dir.join("pose.csv");
    std::fs::write(&csv_path, csv).unwrap();

    for path in [&json_path, &csv_path] {
        let (ok, stdout, stderr) = stream(
            &server,
            path,
            &[
                "--model",
                "cost-gcn-star",
                "--format",
                "json",
                "--top-k",
                "1",
            ],
        );
        assert!(ok, "{}: {stderr}", path.display());
        let predictions: Vec<(u64, f32, String)> = stdout
            .lines()
            .filter_map(|line| {
                let answer: serde_json::Value = serde_json::from_str(line).unwrap();
                let best = answer.get("prediction")?["topK"][0].clone();
                Some((
                    best["index"].as_u64().unwrap_or(0),
                    best["score"].as_f64().unwrap() as f32,
                    best["label"].as_str().unwrap().to_string(),
                ))
            })
            .collect();
        assert_eq!(predictions.len(), expected.len(), "{}", path.display());
        for ((index, score, label), (want_index, want_score)) in predictions.iter().zip(&expected) {
            assert_eq!(index, want_index, "{}: top class", path.display());
            assert!(
                (score - want_score).abs() < 1e-4,
                "{}: {score} vs {want_score}",
                path.display()
            );
            assert_eq!(
                label,
                &costream_models::ntu60().name(*index as usize).unwrap()
            );
        }
    }
}
