//! Saving weights is the inverse of loading them: every module written out by
//! `save_checkpoint` and loaded into a fresh module of the same structure computes the same
//! function, under the same PyTorch key names and shapes.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    load_checkpoint, save_checkpoint, Activation, ActivationKind, BatchNormConfig, CoConvConfig,
    CoLayer, CoModule, LinearConfig, NormConfig, Sequential, WeightTensor, Weights,
};
use costream_testkit::{max_abs_diff, values};

type B = TestBackend;

/// A network with every kind of parameter: a temporal conv with bias and groups, a BatchNorm
/// with and one without affine parameters, a LayerNorm, a GroupNorm and a linear layer.
fn network(device: &Device<B>) -> Sequential<B> {
    let layers: Vec<(&str, CoLayer<B>)> = vec![
        (
            "conv",
            CoConvConfig::new([4, 6], [3, 3, 3])
                .with_padding([1, 1, 1])
                .with_groups(2)
                .init(device)
                .unwrap()
                .into(),
        ),
        ("bn", BatchNormConfig::new(6).init(device).into()),
        (
            "bn_plain",
            BatchNormConfig::new(6)
                .with_affine(false)
                .init(device)
                .into(),
        ),
        ("act", Activation::new(ActivationKind::Silu).into()),
        ("ln", NormConfig::new(6).init_layer_norm(device).into()),
        (
            "gn",
            NormConfig::new(6)
                .with_groups(3)
                .init_group_norm(device)
                .unwrap()
                .into(),
        ),
        ("fc", LinearConfig::new([6, 5]).init(device).into()),
    ];
    Sequential::named(layers)
}

/// Values in a deterministic, uneven pattern (positive where `positive`).
fn pattern(n: usize, salt: usize, positive: bool) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = (((i * 37 + salt * 11) % 23) as f32 - 11.0) / 9.0;
            if positive {
                0.5 + v.abs()
            } else {
                v
            }
        })
        .collect()
}

/// The saved weights of `net` with every normalisation's tensors replaced by uneven values,
/// so that the round trip is not tested on identity normalisations.
fn uneven_weights(net: &Sequential<B>) -> Weights {
    let saved = save_checkpoint(net);
    let mut weights = Weights::new();
    for (salt, (key, tensor)) in saved.iter().enumerate() {
        let n = tensor.values.len();
        let values = if key.starts_with("bn") || key.starts_with("ln") || key.starts_with("gn") {
            pattern(
                n,
                salt,
                key.ends_with("running_var") || key.ends_with("weight"),
            )
        } else {
            tensor.values.clone()
        };
        weights.insert(
            key,
            WeightTensor {
                shape: tensor.shape.clone(),
                values,
            },
        );
    }
    weights
}

#[test]
fn saved_weights_load_back_to_the_same_network() {
    let device = Default::default();
    B::seed(&device, 3);
    let mut original = network(&device);
    let uneven = uneven_weights(&original);
    load_checkpoint(&mut original, uneven).unwrap();

    let saved = save_checkpoint(&original);
    let keys: Vec<&str> = saved.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "bn.bias",
            "bn.running_mean",
            "bn.running_var",
            "bn.weight",
            "bn_plain.running_mean",
            "bn_plain.running_var",
            "conv.bias",
            "conv.weight",
            "fc.bias",
            "fc.weight",
            "gn.bias",
            "gn.weight",
            "ln.bias",
            "ln.weight",
        ]
    );
    let shape = |key: &str| {
        saved
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap()
            .1
            .shape
            .clone()
    };
    assert_eq!(shape("conv.weight"), [6, 2, 3, 3, 3]);
    assert_eq!(shape("fc.weight"), [5, 6]);

    // Through the file format, into a network initialised from another seed.
    let bytes = saved.to_safetensors(None).unwrap();
    B::seed(&device, 4);
    let mut restored = network(&device);
    let before = values(restored.forward(clip_of(&device)));
    load_checkpoint(
        &mut restored,
        Weights::from_safetensors(&bytes, "").unwrap(),
    )
    .unwrap();

    let expected = values(original.forward(clip_of(&device)));
    let found = values(restored.forward(clip_of(&device)));
    assert!(
        max_abs_diff(&expected, &found) < 1e-5,
        "round trip changed the outputs"
    );
    assert!(
        max_abs_diff(&expected, &before) > 1e-3,
        "loading changed nothing"
    );
}

fn clip_of(device: &Device<B>) -> Tensor<B, 5> {
    Tensor::from_data(
        TensorData::new(pattern(2 * 4 * 5 * 4 * 4, 1, false), [2, 4, 5, 4, 4]),
        device,
    )
}
