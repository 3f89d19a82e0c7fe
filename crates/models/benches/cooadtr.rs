//! Criterion benches of CoOadTR on the CPU backend (issue 24): one step of b1 and b2 at the
//! THUMOS'14 preset (D_in 3072, d 1024, 8 heads, feed-forward 1024, window 64, 22 classes;
//! random weights) for 1 and 64 streams with a full window, and the offline network over the
//! same window (what a step replaces: the window's 64 frames through the input projection and
//! the encoder, for the last frame's logits). Threads follow `RAYON_NUM_THREADS`; the
//! reference's figures come from `tools/reference/cooadtr_timing.py`.
#![allow(missing_docs, clippy::unwrap_used)]

use burn::prelude::*;
use burn::tensor::Distribution;
use costream_backend::Cpu;
use costream_continual::{clip_frames, CoModule, TemporalFill};
use costream_models::oadtr::{build_co_oadtr, CoOadTrConfig, OadTrDataset};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

type B = Cpu;

fn co_oadtr(c: &mut Criterion) {
    let device = Default::default();
    for layers in [1, 2] {
        let config = CoOadTrConfig::paper(layers, OadTrDataset::ThumosAnet);
        B::seed(&device, 7);
        let network = build_co_oadtr::<B>(&config, &device).unwrap();
        let mut group = c.benchmark_group(format!("cooadtr_b{layers}"));
        for streams in [1usize, 64] {
            let clip = Tensor::<B, 5>::random(
                [streams, config.input_features, config.window, 1, 1],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let mut state = network.init_state(streams, TemporalFill::Zeros, &device);
            for frame in clip_frames(clip.clone()) {
                network.forward_step(frame, &mut state);
            }
            let frame = clip.clone().narrow(2, 0, 1).squeeze_dim::<4>(2);
            group.throughput(Throughput::Elements(streams as u64));
            group.bench_function(format!("step/{streams}_streams"), |b| {
                b.iter(|| {
                    network
                        .forward_step(frame.clone(), &mut state)
                        .unwrap()
                        .into_data()
                })
            });
            group.bench_function(format!("window/{streams}_streams"), |b| {
                b.iter(|| network.forward(clip.clone()).into_data())
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = co_oadtr
}
criterion_main!(benches);
