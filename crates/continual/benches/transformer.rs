//! Criterion benches of the continual transformer encoder on the CPU backend (flex):
//!
//! - `transformer_step/{single_output,retroactive}/N{16,64,256}`: one step of a one-layer
//!   encoder at d = 512, 8 heads, feed-forward 2048 (torch's default), next to
//!   `transformer_window/{last,all}/N…`, the offline layer recomputed on the window for the
//!   last token's output (what a single-output step gives) or every token's (what a
//!   retroactive step gives);
//! - `attention_step/…` and `attention_window/…`: the same with a feed-forward width of 1,
//!   so that a layer is its attention and two LayerNorms: the attention's own cost;
//! - `transformer_golden/…`: the golden cases' shapes (d = 16, 2 heads, feed-forward 32,
//!   N = 8): single-output layer, retroactive layer, two-layer encoder, for comparison with
//!   the reference's per-step times.
//!
//! Steps cycle through 64 random tokens so that the retroactive sums see a changing window.
#![allow(missing_docs, clippy::unwrap_used)]

use burn::prelude::*;
use costream_continual::{
    CoModule, EncoderLayerConfig, EncoderOutput, State, TemporalFill, TransformerEncoder,
    TransformerEncoderConfig,
};
use criterion::{criterion_group, criterion_main, Criterion};

type B = costream_backend::Cpu;

fn encoder(
    d: usize,
    heads: usize,
    ff: usize,
    layers: usize,
    n: usize,
    output: EncoderOutput,
) -> TransformerEncoder<B> {
    let device = Default::default();
    B::seed(&device, 7);
    TransformerEncoderConfig::new(EncoderLayerConfig::new(d, heads, ff), layers, n)
        .with_output(output)
        .init(&device)
        .unwrap()
}

fn tokens(d: usize) -> Vec<Tensor<B, 4>> {
    let device = Default::default();
    (0..64)
        .map(|_| {
            Tensor::random(
                [1, d, 1, 1],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            )
        })
        .collect()
}

/// One step per iteration on a full window.
fn bench_step(c: &mut Criterion, name: &str, module: &TransformerEncoder<B>) {
    let device = Default::default();
    let d = module.d_model();
    let tokens = tokens(d);
    let mut state: State<B> = module.init_state(1, TemporalFill::Zeros, &device);
    for t in 0..module.sequence_len() + 2 {
        module.forward_step(tokens[t % tokens.len()].clone(), &mut state);
    }
    let mut t = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            t += 1;
            let out = module
                .forward_step(tokens[t % tokens.len()].clone(), &mut state)
                .unwrap();
            out.into_data()
        })
    });
}

/// The offline encoder on one window of `N` tokens.
fn bench_window(c: &mut Criterion, name: &str, module: &TransformerEncoder<B>) {
    let device = Default::default();
    let window = Tensor::<B, 5>::random(
        [1, module.d_model(), module.sequence_len(), 1, 1],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    c.bench_function(name, |b| {
        b.iter(|| module.forward(window.clone()).into_data())
    });
}

fn benches(c: &mut Criterion) {
    for n in [16, 64, 256] {
        let single = encoder(512, 8, 2048, 1, n, EncoderOutput::Last);
        bench_step(c, &format!("transformer_step/single_output/N{n}"), &single);
        bench_window(c, &format!("transformer_window/last/N{n}"), &single);
        let retro = encoder(512, 8, 2048, 1, n, EncoderOutput::Window);
        bench_step(c, &format!("transformer_step/retroactive/N{n}"), &retro);
        bench_window(c, &format!("transformer_window/all/N{n}"), &retro);
    }
    for n in [16, 64, 256] {
        let single = encoder(512, 8, 1, 1, n, EncoderOutput::Last);
        bench_step(c, &format!("attention_step/single_output/N{n}"), &single);
        bench_window(c, &format!("attention_window/last/N{n}"), &single);
        let retro = encoder(512, 8, 1, 1, n, EncoderOutput::Window);
        bench_step(c, &format!("attention_step/retroactive/N{n}"), &retro);
        bench_window(c, &format!("attention_window/all/N{n}"), &retro);
    }
    let golden = |layers, output| encoder(16, 2, 32, layers, 8, output);
    bench_step(
        c,
        "transformer_golden/single_output",
        &golden(1, EncoderOutput::Last),
    );
    bench_step(
        c,
        "transformer_golden/retroactive",
        &golden(1, EncoderOutput::Window),
    );
    bench_step(
        c,
        "transformer_golden/two_layer",
        &golden(2, EncoderOutput::Last),
    );
    bench_window(
        c,
        "transformer_golden/window",
        &golden(1, EncoderOutput::Last),
    );
}

criterion_group! {
    name = transformer;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(transformer);
