//! Criterion benches of whole X3D networks on the CPU backends: one continual CoX3D step
//! (warm state) against the offline X3D over its clip, for a tiny network and for X3D-S at
//! 160×160 (issue 4's targets). Threads follow `RAYON_NUM_THREADS` (run once with 1, once
//! with 2). The CPU backend is flex; with `--features ndarray` (or `cuda`
//! and `COSTREAM_BENCH_CUDA=1`) the benches also run on burn's ndarray (or CUDA) backend; on
//! CUDA, CoX3D-S steps are also measured at batch 1, 8, 32 and 128 (frames/s = batch / time).
#![allow(missing_docs, clippy::unwrap_used)]

use burn::prelude::*;
use burn::tensor::Distribution;
use costream_continual::{CoModule, Sequential, TemporalFill};
use costream_models::x3d::{X3dConfig, X3dVariant};
use criterion::{criterion_group, criterion_main, Criterion};

/// One step per iteration on a filled state, and one offline clip per iteration.
fn bench_network<B: Backend>(c: &mut Criterion, name: &str, backend: &str, config: &X3dConfig) {
    let device: Device<B> = Default::default();
    B::seed(&device, 1);
    let mut network: Sequential<B> = config.build(&device).unwrap();
    // As the engine serves it: BatchNorms and activations folded into the steps' convs.
    network.fold_into_convs();
    let size = config.image_size;
    let frame = Tensor::<B, 4>::random([1, 3, size, size], Distribution::Default, &device);
    let mut state = network.init_state(1, TemporalFill::Zeros, &device);
    for _ in 0..=network.timing().delay {
        network.forward_step(frame.clone(), &mut state);
    }
    eprintln!(
        "{name}/{backend}: state {} bytes per stream, delay {}",
        state.size_bytes(),
        network.timing().delay
    );
    c.bench_function(&format!("{name}_step/{backend}"), |b| {
        b.iter(|| {
            network
                .forward_step(frame.clone(), &mut state)
                .unwrap()
                .into_data()
        })
    });
    let clip = Tensor::<B, 5>::random(
        [1, 3, config.pool_window, size, size],
        Distribution::Default,
        &device,
    );
    c.bench_function(
        &format!("{name}_offline_clip{}/{backend}", config.pool_window),
        |b| b.iter(|| network.forward(clip.clone()).into_data()),
    );
}

/// Throughput of CoX3D-S steps at several batch sizes (streams stepped together).
#[cfg(feature = "cuda")]
fn bench_batches<B: Backend>(c: &mut Criterion, backend: &str, batches: &[usize]) {
    let device: Device<B> = Default::default();
    let config = X3dConfig::variant(X3dVariant::S);
    let mut network: Sequential<B> = config.build(&device).unwrap();
    // As the engine serves it: BatchNorms and activations folded into the steps' convs.
    network.fold_into_convs();
    let size = config.image_size;
    let mut group = c.benchmark_group(format!("cox3d_s_batch_step/{backend}"));
    for &rows in batches {
        let frame = Tensor::<B, 4>::random([rows, 3, size, size], Distribution::Default, &device);
        let mut state = network.init_state(rows, TemporalFill::Zeros, &device);
        for _ in 0..=network.timing().delay {
            network.forward_step(frame.clone(), &mut state);
        }
        group.throughput(criterion::Throughput::Elements(rows as u64));
        group.bench_function(format!("{rows}"), |b| {
            b.iter(|| {
                network
                    .forward_step(frame.clone(), &mut state)
                    .unwrap()
                    .into_data()
            })
        });
    }
    group.finish();
}

fn bench_backend<B: Backend>(c: &mut Criterion, backend: &str) {
    bench_network::<B>(c, "cox3d_tiny", backend, &X3dConfig::tiny());
    bench_network::<B>(c, "cox3d_s", backend, &X3dConfig::variant(X3dVariant::S));
}

fn benches(c: &mut Criterion) {
    bench_backend::<costream_backend::Cpu>(c, "flex");
    #[cfg(feature = "ndarray")]
    bench_backend::<costream_backend::NdArray>(c, "ndarray");
    #[cfg(feature = "cuda")]
    if std::env::var_os("COSTREAM_BENCH_CUDA").is_some() {
        bench_backend::<costream_backend::Cuda>(c, "cuda");
        bench_batches::<costream_backend::Cuda>(c, "cuda", &[1, 8, 32, 128]);
    }
}

criterion_group! {
    name = x3d;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(x3d);
