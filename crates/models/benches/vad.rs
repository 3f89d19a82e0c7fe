//! Criterion benches of Silero VAD on the CPU backend (issue 28): one step of the built-in
//! network for 1, 64 and 1,024 streams at once (one 512-sample chunk each, warm state). Its
//! figures are chunks per second: streams ÷ time per step. A stream needs a chunk every 32 ms,
//! so real-time streams per core = chunks/s × 0.032 at one thread. Threads follow
//! `RAYON_NUM_THREADS`.
#![allow(missing_docs, clippy::unwrap_used)]

use burn::prelude::*;
use burn::tensor::Distribution;
use costream_backend::Cpu;
use costream_continual::{CoModule, TemporalFill};
use costream_models::vad::builtin;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

type B = Cpu;

fn step(c: &mut Criterion) {
    let device = Default::default();
    let mut network = builtin::load::<B>(&device).unwrap();
    network.fold_into_convs();
    let mut group = c.benchmark_group("silero_vad_step");
    for streams in [1usize, 64, 1024] {
        let chunk = Tensor::<B, 4>::random(
            [streams, 1, 512, 1],
            Distribution::Uniform(-0.5, 0.5),
            &device,
        );
        let mut state = network.init_state(streams, TemporalFill::Zeros, &device);
        network.forward_step(chunk.clone(), &mut state);
        group.throughput(Throughput::Elements(streams as u64));
        group.bench_function(format!("{streams}_streams/flex"), |b| {
            b.iter(|| {
                network
                    .forward_step(chunk.clone(), &mut state)
                    .unwrap()
                    .into_data()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = step
}
criterion_main!(benches);
