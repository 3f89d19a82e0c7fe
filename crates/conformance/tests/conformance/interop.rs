//! The interop report: the full-size fixtures in `COSTREAM_INTEROP_DIR` (default
//! `../shared/interop`), real zoo file formats with random weights, loaded through the public
//! loading API and compared with the PyTorch reference's outputs within the README's
//! tolerance. One line per case.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use costream_backend::{TestBackend, TEST_BACKEND_NAME};
use costream_conformance::fixture::GoldenCase;
use costream_continual::{clip_frames, stack_frames, CoModule, Sequential, TemporalFill};
use costream_models::checkpoint::read_checkpoint;
use costream_models::stgcn::{clip_logits, load_stgcn, StGcnConfig, StGcnVariant};
use costream_models::x3d::{load_x3d, X3dConfig, X3dNaming, X3dVariant};
use costream_testkit::{check_close, shared_dir, values};

use crate::Selection;

type B = TestBackend;

/// A case: its name and what it runs.
type Case = (&'static str, fn(&Path) -> Result<String, String>);

const CASES: &[Case] = &[
    ("x3d_s_pytorchvideo", x3d_s_pytorchvideo),
    (
        "x3d_s_pytorchvideo_as_safetensors",
        x3d_s_pytorchvideo_as_safetensors,
    ),
    ("cox3d_s_slowfast", cox3d_s_slowfast),
    (
        "x3d_wrong_checkpoints_are_named",
        x3d_wrong_checkpoints_are_named,
    ),
    ("cost_gcn_ntu60", cost_gcn_ntu60),
    ("cost_gcn_mod_ntu60", cost_gcn_mod_ntu60),
    (
        "stgcn_wrong_checkpoints_are_named",
        stgcn_wrong_checkpoints_are_named,
    ),
];

fn device() -> Device<B> {
    Default::default()
}

/// The offline X3D-S on the PyTorchVideo hub file, against `create_x3d(...)(input)`.
fn x3d_s_pytorchvideo(dir: &Path) -> Result<String, String> {
    x3d_s_offline(&dir.join("x3d_s_pytorchvideo.pyth"), dir)
}

/// The same weights re-saved as safetensors load and give the same output.
fn x3d_s_pytorchvideo_as_safetensors(dir: &Path) -> Result<String, String> {
    let weights =
        read_checkpoint(&dir.join("x3d_s_pytorchvideo.pyth")).map_err(|e| e.to_string())?;
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = weights
        .iter()
        .map(|(key, t)| {
            let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (key.to_string(), t.shape.clone(), bytes)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(key, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|view| (key.clone(), view))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| e.to_string())?;
    let path =
        std::env::temp_dir().join(format!("costream-x3d-s-{}.safetensors", std::process::id()));
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let result = x3d_s_offline(&path, dir);
    let _ = std::fs::remove_file(&path);
    result
}

/// The offline X3D-S as PyTorchVideo's `create_x3d(input_clip_length=T,
/// input_crop_size=H)` builds it for the fixture's `[1, 3, T, H, H]` input: the head pools
/// the whole clip.
fn x3d_s_offline(checkpoint: &Path, dir: &Path) -> Result<String, String> {
    let io = GoldenCase::read(&dir.join("x3d_s_pytorchvideo.io.safetensors"))?;
    let (frames, pixels) = clip_size(&io)?;
    let config = X3dConfig::variant(X3dVariant::S)
        .with_pool_window(frames)
        .with_image_size(pixels);
    let model = load_x3d::<B>(&config, checkpoint, &device()).map_err(|e| e.to_string())?;
    if model.naming != X3dNaming::PyTorchVideo {
        return Err(format!(
            "detected {:?}, expected PyTorchVideo",
            model.naming
        ));
    }
    let input = io.clip::<B>("input", &device())?;
    let output = model.network.forward(input);
    if output.dims() != [1, 400, 1, 1, 1] {
        return Err(format!("output shape {:?}", output.dims()));
    }
    check_close("offline", &values(output), &io.tensor("output")?.values)
}

/// The continual CoX3D-S at the fixture's input size on the PySlowFast zoo file: steps
/// against the library's `step_output`, the clip forward against `offline_output`.
fn cox3d_s_slowfast(dir: &Path) -> Result<String, String> {
    let io = GoldenCase::read(&dir.join("cox3d_s.io.safetensors"))?;
    let (_, pixels) = clip_size(&io)?;
    let config = X3dConfig::variant(X3dVariant::S).with_image_size(pixels);
    let model = load_x3d::<B>(&config, &dir.join("x3d_s_slowfast.pyth"), &device())
        .map_err(|e| e.to_string())?;
    if model.naming != X3dNaming::PySlowFast {
        return Err(format!("detected {:?}, expected PySlowFast", model.naming));
    }
    let network: &Sequential<B> = &model.network;
    let delay: usize = io
        .metadata
        .get("module_delay")
        .and_then(|d| d.parse().ok())
        .ok_or("no module_delay")?;
    if network.timing().delay != delay {
        return Err(format!(
            "delay {}, reference {delay}",
            network.timing().delay
        ));
    }
    let input = io.clip::<B>("input", &device())?;
    let steps = steps_at_reference_times(network, input.clone(), &io)?;
    let mut notes = vec![check_close(
        "steps",
        &values(steps),
        &io.tensor("step_output")?.values,
    )?];
    // `offline_output` is [1, 400·T'] class-major, i.e. [1, 400, T'] flattened.
    let offline = network.forward(input);
    notes.push(check_close(
        "offline",
        &values(offline),
        &io.tensor("offline_output")?.values,
    )?);
    Ok(notes.join(", "))
}

/// The frames and the side of the fixture's square `input` clip `[1, 3, T, H, H]`.
fn clip_size(io: &GoldenCase) -> Result<(usize, usize), String> {
    match io.tensor("input")?.shape[..] {
        [1, 3, frames, height, width] if height == width => Ok((frames, height)),
        ref shape => Err(format!(
            "`input` has shape {shape:?}, expected [1, 3, T, H, H]"
        )),
    }
}

/// Steps `network` through `input` from a zero state and returns its outputs, checking that
/// they come at the reference's `step_index` frames.
///
/// # Shapes
/// - input: `[N, C, T, …]`; output: `[N, classes, outputs, 1, 1]`
fn steps_at_reference_times(
    network: &Sequential<B>,
    input: Tensor<B, 5>,
    io: &GoldenCase,
) -> Result<Tensor<B, 5>, String> {
    let mut state = network.init_state(input.dims()[0], TemporalFill::Zeros, &device());
    let (mut emitted, mut outputs) = (Vec::new(), Vec::new());
    for (t, frame) in clip_frames(input).enumerate() {
        if let Some(out) = network.forward_step(frame, &mut state) {
            emitted.push(t as f32);
            outputs.push(out);
        }
    }
    let reference = &io.tensor("step_index")?.values;
    if &emitted != reference {
        return Err(format!(
            "emitted at {emitted:?}, reference at {reference:?}"
        ));
    }
    stack_frames(outputs).ok_or_else(|| "no step output".to_string())
}

/// Real files loaded as the wrong model fail with an error that names the file and the key.
fn x3d_wrong_checkpoints_are_named(dir: &Path) -> Result<String, String> {
    let expect = |result: Result<_, costream_models::LoadError>, needles: &[&str]| {
        let message = match result {
            Ok(_) => return Err("loaded without error".to_string()),
            Err(e) => e.to_string(),
        };
        match needles.iter().find(|n| !message.contains(**n)) {
            Some(missing) => Err(format!("error `{message}` does not mention `{missing}`")),
            None => Ok(()),
        }
    };
    let pytorchvideo = dir.join("x3d_s_pytorchvideo.pyth");
    expect(
        load_x3d::<B>(&X3dConfig::variant(X3dVariant::L), &pytorchvideo, &device()).map(|_| ()),
        &[
            "x3d_s_pytorchvideo.pyth",
            "missing weight `s2.pathway0_res3.branch2.a.weight`",
        ],
    )?;
    expect(
        load_x3d::<B>(
            &X3dConfig::variant(X3dVariant::S).with_num_classes(600),
            &pytorchvideo,
            &device(),
        )
        .map(|_| ()),
        &["blocks.5.proj.weight", "[400, 2048]"],
    )?;
    expect(
        load_x3d::<B>(
            &X3dConfig::variant(X3dVariant::S),
            &dir.join("stgcn_ntu60.pt"),
            &device(),
        )
        .map(|_| ()),
        &["stgcn_ntu60.pt", "is not X3D", "PyTorchVideo"],
    )?;
    Ok("X3D-L, 600 classes, ST-GCN file refused by name".into())
}

/// CoST-GCN (strided) on `stgcn_ntu60.pt`: steps against `step_output_fixed` (the library's
/// raw `step_output` has its strided kernel-1 conv bug, README), the clip forward against
/// `offline_output`, and the offline ST-GCN's global mean against `stgcn_offline_output`.
fn cost_gcn_ntu60(dir: &Path) -> Result<String, String> {
    cost_gcn(dir, StGcnVariant::Strided, "stgcn_ntu60.io.safetensors")
}

/// CoST-GCN* (a prediction per frame) on the same weights.
fn cost_gcn_mod_ntu60(dir: &Path) -> Result<String, String> {
    cost_gcn(
        dir,
        StGcnVariant::EveryFrame,
        "cost_gcn_mod_ntu60.io.safetensors",
    )
}

fn cost_gcn(dir: &Path, variant: StGcnVariant, io_file: &str) -> Result<String, String> {
    let io = GoldenCase::read(&dir.join(io_file))?;
    let config = StGcnConfig::ntu60(variant);
    let model = load_stgcn::<B>(&config, &dir.join("stgcn_ntu60.pt"), &device())
        .map_err(|e| e.to_string())?;
    let network: &Sequential<B> = &model.network;
    let timing = network.timing();
    let metadata = |key: &str| -> Result<usize, String> {
        io.metadata
            .get(key)
            .and_then(|d| d.parse().ok())
            .ok_or(format!("no {key}"))
    };
    if (timing.delay, timing.stride) != (metadata("module_delay")?, metadata("module_stride")?) {
        return Err(format!("timing {timing:?}, reference {:?}", io.metadata));
    }
    let input = io.clip::<B>("input", &device())?;
    let steps = steps_at_reference_times(network, input.clone(), &io)?;
    let mut notes = vec![check_close(
        "steps",
        &values(steps),
        &io.tensor("step_output_fixed")?.values,
    )?];
    notes.push(check_close(
        "offline",
        &values(network.forward(input.clone())),
        &io.tensor("offline_output")?.values,
    )?);
    let offline_stgcn = clip_logits(network, input).ok_or("not an ST-GCN network")?;
    notes.push(check_close(
        "offline ST-GCN",
        &values(offline_stgcn),
        &io.tensor("stgcn_offline_output")?.values,
    )?);
    Ok(notes.join(", "))
}

/// Real files loaded as the wrong skeleton model fail naming the file and the key.
fn stgcn_wrong_checkpoints_are_named(dir: &Path) -> Result<String, String> {
    let expect = |config: StGcnConfig, file: &str, needles: &[&str]| {
        let message = match load_stgcn::<B>(&config, &dir.join(file), &device()) {
            Ok(_) => return Err(format!("{file} loaded without error")),
            Err(e) => e.to_string(),
        };
        match needles.iter().find(|n| !message.contains(**n)) {
            Some(missing) => Err(format!("error `{message}` does not mention `{missing}`")),
            None => Ok(()),
        }
    };
    expect(
        StGcnConfig::ntu120(StGcnVariant::Strided),
        "stgcn_ntu60.pt",
        &[
            "stgcn_ntu60.pt",
            "`fc.weight` has shape [60, 256], expected [120, 256]",
        ],
    )?;
    expect(
        StGcnConfig::kinetics(StGcnVariant::Strided),
        "stgcn_ntu60.pt",
        &["stgcn_ntu60.pt", "data_bn", "[150]", "[108]"],
    )?;
    expect(
        StGcnConfig::ntu60(StGcnVariant::Strided),
        "x3d_s_slowfast.pyth",
        &[
            "x3d_s_slowfast.pyth",
            "is not ST-GCN",
            "data_bn.running_mean",
        ],
    )?;
    Ok("NTU-120 and Kinetics shapes, X3D file refused by name".into())
}

/// Runs the selected interop cases, one line each, and a summary; true when all passed.
pub(crate) fn run(selection: &Selection) -> bool {
    if let Err(why) = selection.unknown_cases("interop", CASES.iter().map(|(name, _)| *name)) {
        println!("FAIL    {why}");
        return false;
    }
    let dir: PathBuf = shared_dir("COSTREAM_INTEROP_DIR", "interop");
    println!(
        "interop fixtures from {} on {TEST_BACKEND_NAME}",
        dir.display()
    );
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in CASES.iter().filter(|(name, _)| selection.includes(name)) {
        let started = Instant::now();
        let outcome = case(&dir);
        let seconds = started.elapsed().as_secs_f32();
        match outcome {
            Ok(detail) => {
                passed += 1;
                println!("PASS    {name:<36} {detail} ({seconds:.1} s)");
            }
            Err(why) => {
                failed += 1;
                println!("FAIL    {name:<36} {why} ({seconds:.1} s)");
            }
        }
    }
    println!("interop: {passed} passed, {failed} failed");
    failed == 0
}
