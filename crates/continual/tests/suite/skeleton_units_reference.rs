//! AGCN's adaptive graph convolution and S-TR's spatial self-attention against the
//! continual-skeletons source, frame by frame: vectors written by
//! `tools/reference/skeleton_units.py` (`tests/data/skeleton_units.safetensors`). Each case
//! loads the repository's key names, steps the unit over every frame and compares; then saves
//! the unit and loads it back into a fresh one.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    clip_frames, load_checkpoint, save_checkpoint, stack_frames, AdaptiveGcnUnitConfig,
    AttentionGcnUnitConfig, CoLayer, CoModule, TemporalFill, WeightError, Weights,
};
use costream_testkit::{check_close, values};

type B = TestBackend;

const DATA: &[u8] = include_bytes!("../data/skeleton_units.safetensors");
const V: usize = 7;

fn weights(case: &str) -> Weights {
    let mut w = Weights::from_safetensors(DATA, &format!("{case}.")).unwrap();
    w.discard("input");
    w.discard("output");
    w
}

/// Tensor `{case}.{name}` (`[N, C, T, V]`) as a clip `[N, C, T, V, 1]`.
fn clip(case: &str, name: &str, device: &Device<B>) -> Tensor<B, 5> {
    let mut all = Weights::from_safetensors(DATA, &format!("{case}.")).unwrap();
    let shape = all
        .iter()
        .find(|(k, _)| *k == name)
        .unwrap()
        .1
        .shape
        .clone();
    let raw = all.take_raw(name, &shape).unwrap();
    Tensor::from_data(
        TensorData::new(raw.values, [shape[0], shape[1], shape[2], shape[3], 1]),
        device,
    )
}

fn unit(case: &str, device: &Device<B>) -> CoLayer<B> {
    let adjacency = vec![0.0; 3 * V * V];
    match case {
        "agcn_widen" => AdaptiveGcnUnitConfig::new([6, 8], [3, V])
            .init(&adjacency, device)
            .unwrap()
            .into(),
        "agcn_same" => AdaptiveGcnUnitConfig::new([8, 8], [3, V])
            .init(&adjacency, device)
            .unwrap()
            .into(),
        "str_widen" => AttentionGcnUnitConfig::new([16, 32], [3, V])
            .init(&adjacency, device)
            .unwrap()
            .into(),
        "str_same" => AttentionGcnUnitConfig::new([32, 32], [3, V])
            .init(&adjacency, device)
            .unwrap()
            .into(),
        other => panic!("unknown case {other}"),
    }
}

fn stepped(module: &CoLayer<B>, input: Tensor<B, 5>) -> Tensor<B, 5> {
    let device = input.device();
    let mut state = module.init_state(input.dims()[0], TemporalFill::Zeros, &device);
    stack_frames(
        clip_frames(input)
            .filter_map(|frame| module.forward_step(frame, &mut state))
            .collect(),
    )
    .unwrap()
}

#[test]
fn units_equal_the_reference_frame_by_frame() {
    let device = Default::default();
    for case in ["agcn_widen", "agcn_same", "str_widen", "str_same"] {
        let mut module = unit(case, &device);
        load_checkpoint(&mut module, weights(case)).unwrap();
        let input = clip(case, "input", &device);
        let expected = values(clip(case, "output", &device));
        let detail = check_close(
            &format!("{case} steps"),
            &values(stepped(&module, input.clone())),
            &expected,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("{detail}");
        let detail = check_close(
            &format!("{case} offline"),
            &values(module.forward(input.clone())),
            &expected,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("{detail}");

        // What it saves loads back into a fresh unit and gives the same outputs.
        let mut fresh = unit(case, &device);
        load_checkpoint(&mut fresh, save_checkpoint(&module)).unwrap();
        assert_eq!(
            values(fresh.forward(input.clone())),
            values(module.forward(input)),
            "{case}: save/load"
        );
    }
}

#[test]
fn wrong_checkpoints_are_named() {
    let device = Default::default();
    // An attention unit's checkpoint in an adaptive unit: the first key it lacks is named.
    let mut module = unit("agcn_same", &device);
    let err = load_checkpoint(&mut module, weights("str_same")).unwrap_err();
    assert!(
        matches!(&err, WeightError::Missing { key } if key == "graph_attn"),
        "{err}"
    );
    // A unit of other channels: the mis-shaped key is named with both shapes.
    let mut module = unit("str_same", &device);
    let err = load_checkpoint(&mut module, weights("str_widen")).unwrap_err();
    assert!(
        matches!(&err, WeightError::Shape { key, .. } if key == "data_bn.weight"),
        "{err}"
    );
}
