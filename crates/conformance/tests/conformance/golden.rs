//! The golden report: every case in `COSTREAM_GOLDEN_DIR` (default `../shared/golden`) is
//! built from its `builder` expression, loaded with its weights by PyTorch key names, and its
//! step and offline outputs compared with the reference library's within the README's
//! tolerance. One line per case; anything that cannot be built fails.
//!
//! Transformer cases (kind `transformer`) compare the steps with `step_output_fixed` where the
//! file has it (the reference's retroactive layer has a ring-buffer bug, README), the offline
//! `forward` (the encoder on every window) with `window_output`, and the encoder over the whole
//! clip (a module rebuilt with a window as long as the clip) with `offline_output`.

use std::path::PathBuf;

use burn::prelude::*;
use costream_backend::{TestBackend, TEST_BACKEND_NAME};
use costream_conformance::builder::{build, with_sequence_len, Namespace};
use costream_conformance::expr::{self, Expr};
use costream_conformance::fixture::GoldenCase;
use costream_continual::{load_checkpoint, CoLayer, CoModule, TemporalFill};
use costream_testkit::{check_close, shared_dir, values};

use crate::Selection;

type B = TestBackend;

enum Outcome {
    Pass(String),
    Fail(String),
}

/// Compares `actual` to `expected` within the reference tolerance, noting the result.
fn check(
    what: &str,
    actual: Vec<f32>,
    expected: &[f32],
    detail: &mut Vec<String>,
) -> Result<(), String> {
    detail.push(check_close(what, &actual, expected)?);
    Ok(())
}

fn run_case(case: &GoldenCase, device: &burn::tensor::Device<B>) -> Outcome {
    let Some(builder) = case.metadata.get("builder") else {
        return Outcome::Fail("no `builder` metadata".into());
    };
    let expr = match expr::parse(builder) {
        Ok(e) => e,
        Err(e) => return Outcome::Fail(format!("cannot parse builder: {e}")),
    };
    let names = Namespace::from_config(&case.json("config"));
    let mut module: CoLayer<B> = match build(&expr, &names, device) {
        Ok(m) => m,
        Err(e) => return Outcome::Fail(e.to_string()),
    };
    let result = if case.json("config")["kind"] == "transformer" {
        compare_transformer(case, &expr, &names, &mut module, device)
    } else {
        compare(case, &mut module, uses_frame_scope_se(&expr), device)
    };
    match result {
        Ok(detail) => Outcome::Pass(detail),
        Err(e) => Outcome::Fail(e),
    }
}

fn compare(
    case: &GoldenCase,
    module: &mut CoLayer<B>,
    frame_scope_se: bool,
    device: &burn::tensor::Device<B>,
) -> Result<String, String> {
    let timing = load_and_check_timing(case, module)?;
    let input = case.clip::<B>("input", device)?;
    let mut detail = Vec::new();
    let (emitted, steps) = step_through(case, module, input.clone(), device)?;
    check(
        "steps",
        values(steps.clone()),
        &case.tensor("step_output")?.values,
        &mut detail,
    )?;

    // The offline network over the whole clip.
    let offline = module.forward(input.clone());
    check(
        "offline",
        values(offline.clone()),
        &case.tensor("offline_output")?.values,
        &mut detail,
    )?;

    // Streamed == offline where the README says they correspond.
    let kind = case.json("config")["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Frame-scope SE pools one frame when streaming but the whole clip offline (README).
    if (kind == "per_step" || kind == "cox3d") && !frame_scope_se {
        let picks: Vec<Tensor<B, 5>> = emitted
            .iter()
            .map(|&t| {
                offline
                    .clone()
                    .narrow(2, (t as usize - timing.delay) / timing.stride, 1)
            })
            .collect();
        let corresponding = Tensor::cat(picks, 2);
        check(
            "steps~offline",
            values(steps.clone()),
            &values(corresponding),
            &mut detail,
        )?;
        // And the pulse with end padding reproduces the whole offline output.
        let rows = input.dims()[0];
        let mut state = module.init_state(rows, TemporalFill::Zeros, device);
        let pulsed = module
            .forward_steps(input, &mut state, true)
            .ok_or("no pulse output")?;
        check("pulse+flush", values(pulsed), &values(offline), &mut detail)?;
    }
    Ok(detail.join(", "))
}

/// A transformer case: steps against `step_output_fixed` (or `step_output`), the windowed
/// offline `forward` against `window_output`, the encoder over the whole clip against
/// `offline_output`.
fn compare_transformer(
    case: &GoldenCase,
    expr: &Expr,
    names: &Namespace,
    module: &mut CoLayer<B>,
    device: &burn::tensor::Device<B>,
) -> Result<String, String> {
    load_and_check_timing(case, module)?;
    let input = case.clip::<B>("input", device)?;
    let mut detail = Vec::new();
    let (_, steps) = step_through(case, module, input.clone(), device)?;
    let (label, reference) = match case.tensor("step_output_fixed") {
        Ok(fixed) => ("steps(fixed)", fixed),
        Err(_) => ("steps", case.tensor("step_output")?),
    };
    check(label, values(steps.clone()), &reference.values, &mut detail)?;
    let windows = module.forward(input.clone());
    check(
        "offline windows",
        values(windows.clone()),
        &case.tensor("window_output")?.values,
        &mut detail,
    )?;
    check(
        "steps~windows",
        values(steps),
        &values(windows),
        &mut detail,
    )?;

    // The encoder over the whole (offline) clip: a window as long as the clip.
    let config = case.json("config");
    let time = input.dims()[2];
    let offline_len = config["pe_num"]
        .as_u64()
        .map_or(time, |num| time.min(num as usize));
    let mut whole = build::<B>(&with_sequence_len(expr, offline_len), names, device)
        .map_err(|e| e.to_string())?;
    load_checkpoint(&mut whole, case.weights.clone()).map_err(|e| e.to_string())?;
    let ours = whole.forward(input.narrow(2, 0, offline_len));
    let reference = case.clip::<B>("offline_output", device)?;
    let [_, _, ref_time, _, _] = reference.dims();
    let out_tokens = ours.dims()[3];
    // A last-token encoder gives the last token; compare it with the reference's last.
    let reference = reference.narrow(2, ref_time - out_tokens, out_tokens);
    check(
        "offline clip",
        values(ours),
        &values(reference),
        &mut detail,
    )?;
    Ok(detail.join(", "))
}

/// Loads the case's weights and checks the module's delay and stride against the reference's.
fn load_and_check_timing(
    case: &GoldenCase,
    module: &mut CoLayer<B>,
) -> Result<costream_continual::Timing, String> {
    load_checkpoint(module, case.weights.clone()).map_err(|e| e.to_string())?;
    let timing = module.timing();
    let expect_delay: usize = case
        .metadata
        .get("module_delay")
        .and_then(|s| s.parse().ok())
        .ok_or("no module_delay")?;
    let expect_stride: usize = case
        .metadata
        .get("module_stride")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if timing.delay != expect_delay || timing.stride != expect_stride {
        return Err(format!(
            "timing {timing:?}, reference delay {expect_delay} stride {expect_stride}"
        ));
    }
    Ok(timing)
}

/// Steps the clip one frame at a time from a zero state; checks that outputs appear at the
/// reference's `step_index` and returns those steps and the stacked outputs.
fn step_through(
    case: &GoldenCase,
    module: &CoLayer<B>,
    input: Tensor<B, 5>,
    device: &burn::tensor::Device<B>,
) -> Result<(Vec<f32>, Tensor<B, 5>), String> {
    let rows = input.dims()[0];
    let mut state = module.init_state(rows, TemporalFill::Zeros, device);
    let mut emitted = Vec::new();
    let mut outputs = Vec::new();
    for (t, frame) in costream_continual::clip_frames(input).enumerate() {
        if let Some(out) = module.forward_step(frame, &mut state) {
            emitted.push(t as f32);
            outputs.push(out);
        }
    }
    let reference_index = &case.tensor("step_index")?.values;
    if emitted != *reference_index {
        return Err(format!(
            "emitted at steps {emitted:?}, reference at {reference_index:?}"
        ));
    }
    let steps = costream_continual::stack_frames(outputs).ok_or("no step output")?;
    Ok((emitted, steps))
}

/// Whether the builder is a CoX3D with squeeze-excitation (`se_ratio`, default 0.25, > 0).
fn uses_frame_scope_se(expr: &Expr) -> bool {
    let Expr::Call { func, kwargs, .. } = expr else {
        return false;
    };
    let ratio = kwargs.iter().find(|(k, _)| k == "se_ratio").map(|(_, v)| v);
    func == "cox3d_tiny"
        && match ratio {
            None => true,
            Some(Expr::Float(r)) => *r > 0.0,
            Some(Expr::Int(r)) => *r > 0,
            Some(_) => true,
        }
}

/// Runs the selected golden cases (named by file stem), one line each, and a summary; true
/// when all passed.
pub(crate) fn run(selection: &Selection) -> bool {
    let dir = shared_dir("COSTREAM_GOLDEN_DIR", "golden");
    let device = Default::default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect(),
        Err(e) => {
            eprintln!("golden: cannot read {}: {e}", dir.display());
            return false;
        }
    };
    files.sort();
    // Each case by its name, the file stem.
    let mut cases: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|file| {
            let name = file.file_stem().unwrap_or_default().to_string_lossy();
            (name.into_owned(), file)
        })
        .collect();
    if let Err(why) = selection.unknown_cases("golden", cases.iter().map(|(n, _)| n.as_str())) {
        println!("FAIL    {why}");
        return false;
    }
    cases.retain(|(name, _)| selection.includes(name));
    println!(
        "golden vectors from {} on {TEST_BACKEND_NAME}",
        dir.display()
    );
    let (mut passed, mut failed) = (0, 0);
    for (name, file) in &cases {
        let outcome = match GoldenCase::read(file) {
            Ok(case) => run_case(&case, &device),
            Err(e) => Outcome::Fail(e),
        };
        match outcome {
            Outcome::Pass(detail) => {
                passed += 1;
                println!("PASS    {name:<34} {detail}");
            }
            Outcome::Fail(why) => {
                failed += 1;
                println!("FAIL    {name:<34} {why}");
            }
        }
    }
    if cases.is_empty() {
        println!("FAIL    no golden files in {}", dir.display());
        failed += 1;
    }
    println!("golden: {passed} passed, {failed} failed");
    failed == 0
}
