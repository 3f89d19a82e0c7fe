//! CoOadTR against the code that trains it: vectors from `tools/reference/cooadtr_reference.py`.
//!
//! - `tests/data/cooadtr_cooadtr.safetensors`: CoOadTR's own network (`continual_transformers`
//!   with continual-inference 0.17.1) at a tiny size, b1 and b2 with the fixed cyclic
//!   positional table and b1 with a learned one, in CoOadTR's key layout;
//! - `tests/data/cooadtr_continual_inference.safetensors`: the same networks from
//!   continual-inference 1.2.4's `co.TransformerEncoder` (attention biases), in its layout;
//! - `tests/data/cooadtr_b1_tiny.pth`: the tiny b1 saved as CoOadTR's `main.py` saves
//!   checkpoints (`model`, `optimizer`, `args` as a pickled `argparse.Namespace`, …);
//! - `tests/data/cooadtr_thumos_full.json`: b1 and b2 at the THUMOS'14 preset, weights and
//!   inputs from a counter-based formula recomputed here ([`formula`]), logits only.
//!
//! Each case's step logits (from the step that fills the window on, past step `2n − 2` where
//! the libraries' retroactive ring goes wrong; the reference uses the fixed ring) equal the
//! reference's within the golden tolerance, stepped and offline over the clip. Sizes come from
//! each file's metadata.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    clip_frames, save_checkpoint, stack_frames, CoModule, PositionalTable, Sequential,
    TemporalFill, WeightTensor, Weights,
};
use costream_models::checkpoint::read_checkpoint;
use costream_models::oadtr::{load_co_oadtr_weights, CoOadTrConfig, OadTrLayout};
use costream_models::LoadError;
use costream_testkit::{check_close, values};
use serde_json::Value;

type B = TestBackend;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The configuration a case's metadata describes.
fn config(case: &Value) -> CoOadTrConfig {
    let size = |k: &str| case[k].as_u64().unwrap() as usize;
    CoOadTrConfig {
        input_features: size("input_features"),
        d_model: size("d_model"),
        heads: size("heads"),
        feedforward: size("feedforward"),
        layers: size("layers"),
        window: size("window"),
        positional: if case["learned"].as_bool().unwrap() {
            PositionalTable::Learned
        } else {
            PositionalTable::Cyclic
        },
        positions: size("positions"),
        classes: size("classes"),
        attention_bias: false,
    }
}

/// A reference file's cases: name, configuration, weights (the layout's keys), input
/// `[T, D_in]` and step logits `[T − n + 1, classes]`.
struct Case {
    name: String,
    config: CoOadTrConfig,
    weights: Weights,
    input: WeightTensor,
    steps: WeightTensor,
}

fn cases(file: &str) -> Vec<Case> {
    let bytes = std::fs::read(data(file)).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let configs: Value =
        serde_json::from_str(&metadata.metadata().as_ref().unwrap()["config"]).unwrap();
    configs
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, case)| {
            let mut weights = Weights::from_safetensors(&bytes, &format!("{name}.")).unwrap();
            let mut take = |key: &str| {
                let shape = weights
                    .iter()
                    .find(|(k, _)| *k == key)
                    .unwrap()
                    .1
                    .shape
                    .clone();
                weights.take_raw(key, &shape).unwrap()
            };
            let (input, steps) = (take("input"), take("steps"));
            Case {
                name: name.clone(),
                config: config(case),
                weights,
                input,
                steps,
            }
        })
        .collect()
}

/// Features `[T, D_in]` as a clip `[1, D_in, T, 1, 1]`.
fn clip(input: &WeightTensor, device: &burn::tensor::Device<B>) -> Tensor<B, 5> {
    let [time, features] = [input.shape[0], input.shape[1]];
    Tensor::<B, 2>::from_data(
        TensorData::new(input.values.clone(), [time, features]),
        device,
    )
    .transpose()
    .reshape([1, features, time, 1, 1])
}

/// The step logits of one stream as `[T − n + 1, classes]` values, row-major.
fn stepped(network: &Sequential<B>, clip: Tensor<B, 5>) -> Vec<f32> {
    let device = clip.device();
    let mut state = network.init_state(1, TemporalFill::Zeros, &device);
    let outputs: Vec<_> = clip_frames(clip)
        .filter_map(|frame| network.forward_step(frame, &mut state))
        .collect();
    logits_by_time(stack_frames(outputs).unwrap())
}

/// `[1, classes, T', 1, 1]` as `[T', classes]` values.
fn logits_by_time(out: Tensor<B, 5>) -> Vec<f32> {
    let [_, classes, time, _, _] = out.dims();
    values(out.reshape([classes, time]).transpose())
}

fn check(what: &str, actual: Vec<f32>, expected: &[f32]) {
    let note = check_close(what, &actual, expected).unwrap_or_else(|e| panic!("{e}"));
    println!("{note}");
}

fn check_file(file: &str, layout: fn(usize) -> OadTrLayout) {
    let device = Default::default();
    let all = cases(file);
    assert!(!all.is_empty(), "{file} has no cases");
    for case in all {
        let what = format!("{file} {}", case.name);
        assert_eq!(
            OadTrLayout::detect(&case.weights),
            Some(layout(case.config.layers)),
            "{what}"
        );
        let network =
            load_co_oadtr_weights::<B>(&case.config, case.weights, Path::new(file), &device)
                .unwrap();
        let input = clip(&case.input, &device);
        check(
            &format!("{what} steps"),
            stepped(&network, input.clone()),
            &case.steps.values,
        );
        check(
            &format!("{what} offline"),
            logits_by_time(network.forward(input)),
            &case.steps.values,
        );
    }
}

#[test]
fn co_oadtr_networks_equal_co_oadtr_code() {
    check_file("cooadtr_cooadtr.safetensors", |layers| {
        OadTrLayout::CoOadTr { layers }
    });
}

#[test]
fn co_oadtr_networks_equal_continual_inference() {
    check_file("cooadtr_continual_inference.safetensors", |_| {
        OadTrLayout::ContinualInference
    });
}

#[test]
fn a_checkpoint_saved_by_co_oadtr_main_loads_its_model_only() {
    let device = Default::default();
    let case = cases("cooadtr_cooadtr.safetensors")
        .into_iter()
        .find(|c| c.name == "b1")
        .unwrap();
    let path = data("cooadtr_b1_tiny.pth");
    let weights = read_checkpoint(&path).unwrap();
    assert!(
        weights.iter().all(|(k, _)| !k.starts_with("optimizer.")),
        "only the `model` entry is read"
    );
    let network = load_co_oadtr_weights::<B>(&case.config, weights, &path, &device).unwrap();
    check(
        "cooadtr_b1_tiny.pth steps",
        stepped(&network, clip(&case.input, &device)),
        &case.steps.values,
    );
}

#[test]
fn checkpoints_that_do_not_fit_are_refused_by_name() {
    let device = Default::default();
    let b1 = cases("cooadtr_cooadtr.safetensors")
        .into_iter()
        .find(|c| c.name == "b1")
        .unwrap();
    let origin = Path::new("b1.pth");
    let as_b2 = CoOadTrConfig {
        layers: 2,
        ..b1.config.clone()
    };
    let err = load_co_oadtr_weights::<B>(&as_b2, b1.weights.clone(), origin, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("b1.pth") && err.contains("1 encoder layer"),
        "{err}"
    );

    let mut missing = b1.weights.clone();
    missing.discard("3.2.1.3.bias");
    let err = load_co_oadtr_weights::<B>(&b1.config, missing, origin, &device).unwrap_err();
    assert!(matches!(err, LoadError::Weights { .. }), "{err}");
    assert!(
        err.to_string().contains("encoder.layers.0.linear2.bias"),
        "{err}"
    );

    let wider = CoOadTrConfig {
        input_features: b1.config.input_features + 1,
        ..b1.config.clone()
    };
    let err = load_co_oadtr_weights::<B>(&wider, b1.weights.clone(), origin, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("input.weight"), "{err}");

    let mut extra = b1.weights.clone();
    extra.insert(
        "6.weight",
        WeightTensor {
            shape: vec![1],
            values: vec![0.0],
        },
    );
    let err = load_co_oadtr_weights::<B>(&b1.config, extra, origin, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("6.weight"), "{err}");

    let mut not_oadtr = Weights::new();
    not_oadtr.insert(
        "blocks.0.conv.weight",
        WeightTensor {
            shape: vec![1],
            values: vec![0.0],
        },
    );
    let err = load_co_oadtr_weights::<B>(&b1.config, not_oadtr, origin, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not CoOadTR-b1"), "{err}");
}

/// Tensor `key` of the full-size case, `shape` in PyTorch's layout: element `i` is
/// `u(fnv1a(key) + i)` (a splitmix32-style hash to [-1, 1) with 24 bits), scaled as
/// `tools/reference/cooadtr_reference.py`'s `formula` does.
fn formula(key: &str, shape: &[usize]) -> WeightTensor {
    let seed = key.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    let count: usize = shape.iter().product();
    let values = (0..count)
        .map(|i| {
            let mut x = seed.wrapping_add(i as u32);
            x = (x ^ (x >> 16)).wrapping_mul(0x7FEB_352D);
            x = (x ^ (x >> 15)).wrapping_mul(0x846C_A68B);
            x ^= x >> 16;
            let u = f64::from(x >> 8) / f64::from(1u32 << 23) - 1.0;
            let norm_weight = key.ends_with("norm1.weight")
                || key.ends_with("norm2.weight")
                || key == "encoder.norm.weight";
            let v = if key == "input" {
                u
            } else if norm_weight {
                1.0 + 0.1 * u
            } else if shape.len() == 1 {
                0.1 * u
            } else {
                u / (shape[shape.len() - 1] as f64).sqrt()
            };
            v as f32
        })
        .collect();
    WeightTensor {
        shape: shape.to_vec(),
        values,
    }
}

#[test]
fn full_size_thumos_networks_equal_co_oadtr_code() {
    let device = Default::default();
    let path = data("cooadtr_thumos_full.json");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (name, case) in reference.as_object().unwrap() {
        let config = config(&case["config"]);
        let built = costream_models::oadtr::build_co_oadtr::<B>(&config, &device).unwrap();
        let mut weights = Weights::new();
        for (key, tensor) in save_checkpoint(&built).iter() {
            if key != "positional.pe.pattern" {
                weights.insert(key, formula(key, &tensor.shape));
            }
        }
        let network = load_co_oadtr_weights::<B>(&config, weights, &path, &device).unwrap();
        let frames = case["frames"].as_u64().unwrap() as usize;
        let input = formula("input", &[frames, config.input_features]);
        let expected: Vec<f32> = case["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        check(
            &format!("{name} full-size steps"),
            stepped(&network, clip(&input, &device)),
            &expected,
        );
    }
}
