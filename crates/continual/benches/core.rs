//! Criterion benches of the continual core on the CPU backends: one step of a depthwise
//! 3×3×3 conv (at each X3D-S stage's shape) and of a pointwise conv at X3D-S shapes (whole
//! networks: costream-models' `x3d` bench).
//! The CPU backend is flex; with `--features ndarray` (or `cuda`), every bench also runs on burn's
//! ndarray (or CUDA) backend.
#![allow(missing_docs, clippy::unwrap_used)]

use burn::prelude::*;
use costream_continual::{CoConvConfig, CoLayer, CoModule, State, TemporalFill};
use criterion::{criterion_group, criterion_main, Criterion};

/// Steps `module` once per iteration on a warm state (the partial sums already filled).
fn bench_step<B: Backend>(
    c: &mut Criterion,
    group: &str,
    backend: &str,
    module: &CoLayer<B>,
    frame: [usize; 4],
) {
    let device = Default::default();
    let input = Tensor::<B, 4>::random(frame, burn::tensor::Distribution::Default, &device);
    let mut state: State<B> = module.init_state(frame[0], TemporalFill::Zeros, &device);
    for _ in 0..module.timing().receptive_field + 1 {
        module.forward_step(input.clone(), &mut state);
    }
    eprintln!(
        "{group}/{backend}: state {} bytes per stream",
        state.size_bytes() / frame[0]
    );
    c.bench_function(&format!("{group}/{backend}"), |b| {
        b.iter(|| {
            let out = module.forward_step(input.clone(), &mut state).unwrap();
            out.into_data()
        })
    });
}

fn bench_backend<B: Backend>(c: &mut Criterion, backend: &str) {
    let device: Device<B> = Default::default();
    B::seed(&device, 1);
    // X3D-S's depthwise convs at 160×160: one per stage (res2 to res5).
    for (channels, size) in [(54, 40), (108, 20), (216, 10), (432, 5)] {
        let depthwise: CoLayer<B> = CoConvConfig::conv3d([channels, channels], [3, 3, 3])
            .with_padding([1, 1, 1])
            .with_groups(channels)
            .with_bias(false)
            .init(&device)
            .unwrap()
            .into();
        bench_step(
            c,
            &format!("depthwise_3x3x3_{channels}ch_{size}x{size}_step"),
            backend,
            &depthwise,
            [1, channels, size, size],
        );
    }

    // X3D-S's pointwise convs at 160×160 (with a folded BatchNorm's bias): a stage-2
    // expansion before its stride, a stage-2 projection, and stage 4's and 5's expansions
    // and projections.
    for (c_in, c_out, size) in [
        (24, 54, 80),
        (54, 24, 40),
        (96, 216, 10),
        (216, 96, 10),
        (192, 432, 5),
        (432, 192, 5),
    ] {
        let pointwise: CoLayer<B> = CoConvConfig::conv3d([c_in, c_out], [1, 1, 1])
            .init(&device)
            .unwrap()
            .into();
        bench_step(
            c,
            &format!("pointwise_{c_in}to{c_out}_{size}x{size}_step"),
            backend,
            &pointwise,
            [1, c_in, size, size],
        );
    }
}

fn benches(c: &mut Criterion) {
    bench_backend::<costream_backend::Cpu>(c, "flex");
    #[cfg(feature = "ndarray")]
    bench_backend::<costream_backend::NdArray>(c, "ndarray");
    // The CUDA benches need a GPU: builds with `cuda` run them only when asked.
    #[cfg(feature = "cuda")]
    if std::env::var_os("COSTREAM_BENCH_CUDA").is_some() {
        bench_backend::<costream_backend::Cuda>(c, "cuda");
    }
}

criterion_group! {
    name = core;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(core);
