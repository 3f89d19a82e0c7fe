//! Criterion benches of the full-size skeleton networks on the CPU backend (issue 5's
//! targets): one continual CoST-GCN* step (warm state) against the offline ST-GCN over a
//! 300-frame clip, NTU RGB+D 60 (25 joints, 2 persons); one strided CoST-GCN step; and the
//! matrix-product rate that bounds a step from below. Threads follow `RAYON_NUM_THREADS` (the
//! target is stated for 1).
#![allow(missing_docs, clippy::unwrap_used)]

use burn::prelude::*;
use burn::tensor::Distribution;
use costream_backend::Cpu;
use costream_continual::{CoModule, Sequential, TemporalFill};
use costream_models::stgcn::{build_stgcn, clip_logits, StGcnConfig, StGcnVariant};
use criterion::{criterion_group, criterion_main, Criterion};

type B = Cpu;

/// A network with a filled state and one frame to step it with.
fn filled(variant: StGcnVariant) -> (Sequential<B>, costream_continual::State<B>, Tensor<B, 4>) {
    let device = Default::default();
    B::seed(&device, 1);
    let network = build_stgcn::<B>(&StGcnConfig::ntu60(variant), &device).unwrap();
    let frame = Tensor::<B, 4>::random([1, 3, 25, 2], Distribution::Default, &device);
    let mut state = network.init_state(1, TemporalFill::Zeros, &device);
    for _ in 0..=network.timing().delay {
        network.forward_step(frame.clone(), &mut state);
    }
    eprintln!(
        "{variant:?}: state {} bytes per stream, delay {}, stride {}",
        state.size_bytes(),
        network.timing().delay,
        network.timing().stride
    );
    (network, state, frame)
}

fn benches(c: &mut Criterion) {
    let (network, mut state, frame) = filled(StGcnVariant::EveryFrame);
    c.bench_function("cost_gcn_mod_ntu60_step/flex", |b| {
        b.iter(|| {
            network
                .forward_step(frame.clone(), &mut state)
                .unwrap()
                .into_data()
        })
    });
    let clip = Tensor::<B, 5>::random(
        [1, 3, 300, 25, 2],
        Distribution::Default,
        &Default::default(),
    );
    let offline = build_stgcn::<B>(
        &StGcnConfig::ntu60(StGcnVariant::Strided),
        &Default::default(),
    )
    .unwrap();
    c.bench_function("stgcn_ntu60_offline_clip300/flex", |b| {
        b.iter(|| clip_logits(&offline, clip.clone()).unwrap().into_data())
    });
    let (strided, mut strided_state, frame) = filled(StGcnVariant::Strided);
    c.bench_function("cost_gcn_ntu60_step/flex", |b| {
        b.iter(|| {
            strided
                .forward_step(frame.clone(), &mut strided_state)
                .map(|o| o.into_data())
        })
    });
}

/// The CPU's matrix-product rate, the floor under a step: the largest product of a CoST-GCN*
/// step (a 256-channel temporal conv's 9 taps: `[2304, 256] @ [256, 50]`, 29.5 M
/// multiply-adds) and a square 1024³ product.
fn matmul_floor(c: &mut Criterion) {
    let device = Default::default();
    let product = |m: usize, k: usize, n: usize| {
        let lhs = Tensor::<B, 3>::random([1, m, k], Distribution::Default, &device);
        let rhs = Tensor::<B, 3>::random([1, k, n], Distribution::Default, &device);
        move || lhs.clone().matmul(rhs.clone()).into_data()
    };
    let tcn = product(2304, 256, 50);
    c.bench_function("matmul_2304x256x50/flex", |b| b.iter(&tcn));
    let square = product(1024, 1024, 1024);
    c.bench_function("matmul_1024x1024x1024/flex", |b| b.iter(&square));
}

criterion_group! {
    name = stgcn;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(5));
    targets = benches, matmul_floor
}
criterion_main!(stgcn);
