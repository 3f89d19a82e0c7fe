//! BatchNorm in training (an autodiff backend): batch statistics, running statistics with
//! torch's momentum, and saved tensors that load back as the folded inference module.
#![allow(clippy::unwrap_used)]

use burn::backend::Autodiff;
use burn::prelude::*;
use costream_backend::Cpu;
use costream_continual::{
    load_checkpoint, save_checkpoint, BatchNorm, BatchNormConfig, CoModule, Weights,
};
use costream_testkit::{max_abs_diff, values};

type Train = Autodiff<Cpu>;

/// A clip `[2, 3, 4, 2, 2]` whose channel c has mean ≈ c and a spread that grows with c.
fn clip_values() -> Vec<f32> {
    let mut v = Vec::new();
    for _b in 0..2 {
        for c in 0..3 {
            for i in 0..16 {
                v.push(c as f32 + (c as f32 + 1.0) * (((i * 7) % 5) as f32 - 2.0) * 0.5);
            }
        }
    }
    v
}

/// Per-channel mean and biased variance of `clip_values`.
fn statistics() -> [(f64, f64); 3] {
    let v = clip_values();
    std::array::from_fn(|c| {
        let xs: Vec<f64> = (0..2)
            .flat_map(|b| (0..16).map(move |i| (b, i)))
            .map(|(b, i)| f64::from(v[(b * 3 + c) * 16 + i]))
            .collect();
        let mean = xs.iter().sum::<f64>() / 32.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 32.0;
        (mean, var)
    })
}

fn with_affine(mut bn: BatchNorm<Train>, device: &Device<Train>) -> BatchNorm<Train> {
    bn.scale = burn::module::Param::from_tensor(Tensor::from_floats([1.5, 0.5, 2.0], device));
    bn.shift = burn::module::Param::from_tensor(Tensor::from_floats([0.1, -0.2, 0.3], device));
    bn
}

#[test]
fn training_normalises_by_the_batch_and_saves_what_folds_back() {
    let device = Default::default();
    let bn = with_affine(BatchNormConfig::new(3).init::<Train>(&device), &device);
    let clip =
        Tensor::<Train, 5>::from_data(TensorData::new(clip_values(), [2, 3, 4, 2, 2]), &device);
    let out = values(bn.forward(clip.clone()));
    let stats = statistics();
    let (gamma, beta) = ([1.5, 0.5, 2.0], [0.1, -0.2, 0.3]);
    let expected: Vec<f32> = clip_values()
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = (i / 16) % 3;
            let (mean, var) = stats[c];
            ((f64::from(x) - mean) / (var + 1e-5).sqrt() * gamma[c] + beta[c]) as f32
        })
        .collect();
    assert!(max_abs_diff(&out, &expected) < 1e-4, "{out:?}");

    // Running statistics after one batch: 0.9 · (0, 1) + 0.1 · (mean, unbiased var).
    let saved = save_checkpoint(&bn);
    let tensor = |key: &str| {
        saved
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap()
            .1
            .values
            .clone()
    };
    for (c, &(mean, var)) in stats.iter().enumerate() {
        let running_mean = 0.1 * mean;
        let running_var = 0.9 * (1.0 - 1e-5) + 0.1 * var * 32.0 / 31.0;
        assert!((f64::from(tensor("running_mean")[c]) - running_mean).abs() < 1e-5);
        assert!((f64::from(tensor("running_var")[c]) - running_var).abs() < 1e-5);
    }

    // Loaded on an inference backend, the module is torch's eval-mode BatchNorm.
    let cpu = Default::default();
    let mut inference = BatchNormConfig::new(3).init::<Cpu>(&cpu);
    let bytes = saved.to_safetensors(None).unwrap();
    load_checkpoint(
        &mut inference,
        Weights::from_safetensors(&bytes, "").unwrap(),
    )
    .unwrap();
    let clip = Tensor::<Cpu, 5>::from_data(TensorData::new(clip_values(), [2, 3, 4, 2, 2]), &cpu);
    let eval = values(inference.forward(clip));
    let (mean, var) = (tensor("running_mean"), tensor("running_var"));
    let expected: Vec<f32> = clip_values()
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = (i / 16) % 3;
            let normed = (f64::from(x) - f64::from(mean[c])) / (f64::from(var[c]) + 1e-5).sqrt();
            (normed * gamma[c] + beta[c]) as f32
        })
        .collect();
    assert!(max_abs_diff(&eval, &expected) < 1e-5, "{eval:?}");
}

#[test]
fn steps_use_the_folded_form_even_in_training() {
    // Streaming never uses batch statistics: a step is the per-channel affine map.
    let device = Default::default();
    let bn = with_affine(BatchNormConfig::new(3).init::<Train>(&device), &device);
    let frame = Tensor::<Train, 4>::from_floats([[[[1.0]], [[2.0]], [[3.0]]]], &device);
    let mut state = bn.init_state(1, costream_continual::TemporalFill::Zeros, &device);
    let out = values(bn.forward_step(frame, &mut state).unwrap());
    assert!(max_abs_diff(&out, &[1.6, 0.8, 6.3]) < 1e-6, "{out:?}");
}
