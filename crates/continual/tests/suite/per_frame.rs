//! Per-frame modules against direct computations in plain Rust, loaded by PyTorch key names.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    load_checkpoint, Activation, ActivationKind, BatchNormConfig, CoLayer, CoModule, LinearConfig,
    NormConfig, TemporalFill, WeightTensor, Weights,
};
use costream_testkit::{max_abs_diff, values};

type B = TestBackend;

/// A frame `[2, 4, 1, 3]` with varied values.
fn frame(device: &Device<B>) -> (Vec<f32>, Tensor<B, 4>) {
    let v: Vec<f32> = (0..24)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.37)
        .collect();
    (
        v.clone(),
        Tensor::from_data(TensorData::new(v, [2, 4, 1, 3]), device),
    )
}

/// Steps `m` once and checks it against `expected`, and that offline over a 1-frame clip agrees.
fn check(m: &CoLayer<B>, input: Tensor<B, 4>, expected: &[f32]) {
    let device = input.device();
    let mut state = m.init_state(2, TemporalFill::Zeros, &device);
    let out = values(m.forward_step(input.clone(), &mut state).unwrap());
    assert!(
        max_abs_diff(&out, expected) < 1e-5,
        "step {out:?} vs {expected:?}"
    );
    let offline = values(m.forward(input.unsqueeze_dim(2)));
    assert!(
        max_abs_diff(&offline, expected) < 1e-5,
        "offline {offline:?} vs {expected:?}"
    );
}

#[test]
fn activations_match_their_definitions() {
    let device = Default::default();
    let (x, input) = frame(&device);
    let erf = |v: f64| libm_erf(v);
    type Reference = Box<dyn Fn(f64) -> f64>;
    let cases: [(ActivationKind, Reference); 5] = [
        (ActivationKind::Relu, Box::new(|v: f64| v.max(0.0))),
        (
            ActivationKind::Silu,
            Box::new(|v: f64| v / (1.0 + (-v).exp())),
        ),
        (
            ActivationKind::Sigmoid,
            Box::new(|v: f64| 1.0 / (1.0 + (-v).exp())),
        ),
        (
            ActivationKind::Gelu,
            Box::new(move |v: f64| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))),
        ),
        (ActivationKind::Tanh, Box::new(|v: f64| v.tanh())),
    ];
    for (kind, f) in cases {
        let expected: Vec<f32> = x.iter().map(|&v| f(f64::from(v)) as f32).collect();
        check(&Activation::new(kind).into(), input.clone(), &expected);
    }
    // Softmax over channels (dim 1) of [2, 4, 1, 3].
    let mut expected = vec![0f32; 24];
    for b in 0..2 {
        for p in 0..3 {
            let idx = |c: usize| b * 12 + c * 3 + p;
            let z: f64 = (0..4).map(|c| f64::from(x[idx(c)]).exp()).sum();
            for c in 0..4 {
                expected[idx(c)] = (f64::from(x[idx(c)]).exp() / z) as f32;
            }
        }
    }
    check(
        &Activation::new(ActivationKind::Softmax).into(),
        input,
        &expected,
    );
}

#[test]
fn sigmoid_and_silu_saturate_without_nan() {
    let device = Default::default();
    let x = [-1e4f32, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4];
    let input = Tensor::<B, 4>::from_data(TensorData::new(x.to_vec(), [1, 7, 1, 1]), &device);
    let sigmoid = [0.0, 0.0, 2.0611537e-9, 0.5, 1.0, 1.0, 1.0];
    let silu = [0.0, -3.72e-42, -4.1223073e-8, 0.0, 20.0, 100.0, 1e4];
    for (kind, expected) in [
        (ActivationKind::Sigmoid, sigmoid),
        (ActivationKind::Silu, silu),
    ] {
        let layer: CoLayer<B> = Activation::new(kind).into();
        let mut state = layer.init_state(1, TemporalFill::Zeros, &device);
        let out = values(layer.forward_step(input.clone(), &mut state).unwrap());
        assert!(out.iter().all(|v| !v.is_nan()), "{kind:?}: {out:?}");
        for (o, e) in out.iter().zip(expected) {
            assert!(
                (o - e).abs() <= 1e-6 * e.abs().max(1.0),
                "{kind:?}: {out:?}"
            );
        }
    }
}

/// erf by its Taylor series (|x| small here), accurate to ~1e-12.
fn libm_erf(x: f64) -> f64 {
    let mut sum = 0.0;
    let mut term = x;
    for n in 0..60 {
        sum += term / (2 * n + 1) as f64;
        term *= -x * x / (n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn linear_loads_pytorch_layout_and_maps_channels() {
    let device = Default::default();
    let (x, input) = frame(&device);
    let w: Vec<f32> = (0..20).map(|i| (i as f32 - 9.0) * 0.1).collect(); // [out 5, in 4]
    let bias: Vec<f32> = (0..5).map(|i| i as f32 * 0.5).collect();
    let mut m: CoLayer<B> = LinearConfig::new([4, 5]).init(&device).into();
    let mut weights = Weights::new();
    weights.insert(
        "weight",
        WeightTensor {
            shape: vec![5, 4],
            values: w.clone(),
        },
    );
    weights.insert(
        "bias",
        WeightTensor {
            shape: vec![5],
            values: bias.clone(),
        },
    );
    load_checkpoint(&mut m, weights).unwrap();
    let mut expected = vec![0f32; 30];
    for b in 0..2 {
        for p in 0..3 {
            for o in 0..5 {
                let acc: f32 = (0..4).map(|i| w[o * 4 + i] * x[b * 12 + i * 3 + p]).sum();
                expected[b * 15 + o * 3 + p] = acc + bias[o];
            }
        }
    }
    check(&m, input, &expected);
}

#[test]
fn norms_match_their_definitions() {
    let device = Default::default();
    let (x, input) = frame(&device);
    let gamma = vec![1.5, 0.5, -1.0, 2.0];
    let beta = vec![0.1, -0.2, 0.3, 0.0];
    let affine = |w: &mut Weights| {
        w.insert(
            "weight",
            WeightTensor {
                shape: vec![4],
                values: gamma.clone(),
            },
        );
        w.insert(
            "bias",
            WeightTensor {
                shape: vec![4],
                values: beta.clone(),
            },
        );
    };

    // BatchNorm (eval): (x - mean) / sqrt(var + eps) * gamma + beta.
    let mean = vec![0.2, -0.1, 0.0, 0.4];
    let var = vec![0.9, 1.2, 0.5, 2.0];
    let mut bn: CoLayer<B> = BatchNormConfig::new(4).init(&device).into();
    let mut w = Weights::new();
    affine(&mut w);
    w.insert(
        "running_mean",
        WeightTensor {
            shape: vec![4],
            values: mean.clone(),
        },
    );
    w.insert(
        "running_var",
        WeightTensor {
            shape: vec![4],
            values: var.clone(),
        },
    );
    w.insert(
        "num_batches_tracked",
        WeightTensor {
            shape: vec![],
            values: vec![3.0],
        },
    );
    load_checkpoint(&mut bn, w).unwrap();
    let expected: Vec<f32> = (0..24)
        .map(|i| {
            let c = i / 3 % 4;
            (x[i] - mean[c]) / (var[c] + 1e-5f32).sqrt() * gamma[c] + beta[c]
        })
        .collect();
    check(&bn, input.clone(), &expected);

    // LayerNorm over the 4 channels at each position.
    let mut ln: CoLayer<B> = NormConfig::new(4).init_layer_norm(&device).into();
    let mut w = Weights::new();
    affine(&mut w);
    load_checkpoint(&mut ln, w).unwrap();
    let mut expected = vec![0f32; 24];
    for b in 0..2 {
        for p in 0..3 {
            let idx = |c: usize| b * 12 + c * 3 + p;
            let m = (0..4).map(|c| x[idx(c)]).sum::<f32>() / 4.0;
            let v = (0..4).map(|c| (x[idx(c)] - m).powi(2)).sum::<f32>() / 4.0;
            for c in 0..4 {
                expected[idx(c)] = (x[idx(c)] - m) / (v + 1e-5).sqrt() * gamma[c] + beta[c];
            }
        }
    }
    check(&ln, input.clone(), &expected);

    // GroupNorm with 2 groups of 2 channels over each frame's 3 positions.
    let mut gn: CoLayer<B> = NormConfig::new(4)
        .with_groups(2)
        .init_group_norm(&device)
        .unwrap()
        .into();
    let mut w = Weights::new();
    affine(&mut w);
    load_checkpoint(&mut gn, w).unwrap();
    let mut expected = vec![0f32; 24];
    for b in 0..2 {
        for g in 0..2 {
            let items: Vec<usize> = (0..6).map(|k| b * 12 + g * 6 + k).collect();
            let m = items.iter().map(|&i| x[i]).sum::<f32>() / 6.0;
            let v = items.iter().map(|&i| (x[i] - m).powi(2)).sum::<f32>() / 6.0;
            for &i in &items {
                let c = i / 3 % 4;
                expected[i] = (x[i] - m) / (v + 1e-5).sqrt() * gamma[c] + beta[c];
            }
        }
    }
    check(&gn, input, &expected);
}

#[test]
fn batch_norm_rejects_a_negative_variance() {
    let device = Default::default();
    let mut bn: CoLayer<B> = BatchNormConfig::new(1).init(&device).into();
    let mut w = Weights::new();
    w.insert(
        "weight",
        WeightTensor {
            shape: vec![1],
            values: vec![1.0],
        },
    );
    w.insert(
        "bias",
        WeightTensor {
            shape: vec![1],
            values: vec![0.0],
        },
    );
    w.insert(
        "running_mean",
        WeightTensor {
            shape: vec![1],
            values: vec![0.0],
        },
    );
    w.insert(
        "running_var",
        WeightTensor {
            shape: vec![1],
            values: vec![-1.0],
        },
    );
    let err = load_checkpoint(&mut bn, w).unwrap_err();
    assert!(err.to_string().contains("running_var"), "{err}");
}
