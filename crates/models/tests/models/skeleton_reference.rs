//! CoAGCN and CoS-TR against networks built from the continual-skeletons source
//! (`tools/reference/skeleton_networks.py`, `tests/data/skeleton_networks.safetensors`): the
//! repository's offline state_dict loads through the public loader, the offline prediction
//! (`clip_logits`) equals the repository's `forward`, the continual pool over the whole clip
//! equals it too, and streaming equals the continual network offline.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{CoModule, TemporalFill, Weights};
use costream_models::stgcn::build::pool_window;
use costream_models::stgcn::{
    clip_logits, load_stgcn_weights, BlockShape, SkeletonArchitecture, StGcnConfig, StGcnVariant,
};
use costream_testkit::{check_close, values};

type B = TestBackend;

const DATA: &[u8] = include_bytes!("../data/skeleton_networks.safetensors");

/// The script's network: NTU-60's graph, blocks 3→8, 8→8, 8→32 (stride 2), 32→32, 5 classes,
/// 64-frame clips.
fn config(architecture: SkeletonArchitecture) -> StGcnConfig {
    let mut config = StGcnConfig::ntu60(StGcnVariant::Strided).with_num_classes(5);
    config.blocks = vec![
        BlockShape::new(3, 8, 1, false),
        BlockShape::new(8, 8, 1, true),
        BlockShape::new(8, 32, 2, true),
        BlockShape::new(32, 32, 1, true),
    ];
    config.clip_frames = 64;
    config.with_architecture(architecture)
}

fn tensor<const D: usize>(weights: &mut Weights, key: &str, device: &Device<B>) -> Tensor<B, D> {
    let shape = weights
        .iter()
        .find(|(k, _)| *k == key)
        .unwrap()
        .1
        .shape
        .clone();
    let raw = weights.take_raw(key, &shape).unwrap();
    Tensor::from_data(TensorData::new(raw.values, shape), device)
}

#[test]
fn offline_predictions_equal_the_repository_networks() {
    let device = Default::default();
    for (name, architecture, label) in [
        ("agcn", SkeletonArchitecture::AGcn, "AGCN"),
        ("str", SkeletonArchitecture::STr, "S-TR"),
    ] {
        let mut weights = Weights::from_safetensors(DATA, &format!("{name}.")).unwrap();
        let input: Tensor<B, 5> = tensor(&mut weights, "input", &device);
        let logits: Tensor<B, 2> = tensor(&mut weights, "logits", &device);
        let config = config(architecture);
        assert_eq!(config.architecture_name(), label);
        let loaded = load_stgcn_weights::<B>(&config, weights, Path::new(name), &device).unwrap();
        let ours = clip_logits(&loaded.network, input.clone()).unwrap();
        let detail = check_close(
            &format!("{name} offline logits"),
            &values(ours.clone()),
            &values(logits),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("{detail}");

        // The continual network over the clip: its pool (sized for 64-frame clips, padded so
        // that predictions start early) holds exactly the clip's frames at position `padding`,
        // where it equals the offline prediction; streamed and flushed, it is the same.
        let offline = loaded.network.forward(input.clone());
        let blocks = loaded.network.layers[1].timing();
        let (_, padding) = pool_window(
            &config,
            blocks.receptive_field,
            usize::try_from(blocks.padding).unwrap(),
            blocks.stride,
        )
        .unwrap();
        let whole_clip = offline.clone().narrow(2, padding, 1).reshape([2, 5]);
        let detail = check_close(
            &format!("{name} continual pool over the clip"),
            &values(whole_clip),
            &values(ours),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("{detail}");
        let mut state = loaded.network.init_state(2, TemporalFill::Zeros, &device);
        let streamed = loaded
            .network
            .forward_steps(input, &mut state, true)
            .unwrap();
        let detail = check_close(
            &format!("{name} streamed"),
            &values(streamed),
            &values(offline),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("{detail}");
    }
}

#[test]
fn wrong_architecture_is_named() {
    let device = Default::default();
    let mut weights = Weights::from_safetensors(DATA, "str.").unwrap();
    weights.discard("input");
    weights.discard("logits");
    // S-TR's checkpoint in an AGCN: the fourth block's adaptive graph is missing.
    let err = load_stgcn_weights::<B>(
        &config(SkeletonArchitecture::AGcn),
        weights,
        Path::new("str.pt"),
        &device,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("str.pt")
            && err.contains("AGCN")
            && err.contains("layers.layer1.gcn.a_conv.0.weight"),
        "{err}"
    );
}
