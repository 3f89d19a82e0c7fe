//! Where a Silero VAD step spends its time: each layer of the built-in network stepped on
//! its own, for `N` streams at once (default 1,024), on the CPU backend, averaged over ten
//! steps after two warm-up steps. Threads follow `RAYON_NUM_THREADS`.
//!
//! ```sh
//! RAYON_NUM_THREADS=1 cargo run --release -p costream-models --example vad_profile -- 1024
//! ```
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use costream_backend::Cpu;
use costream_continual::{CoModule, TemporalFill};
use costream_models::vad::builtin;

type B = Cpu;

const WARM_UP: usize = 2;
const STEPS: usize = 10;

fn main() {
    let device = Default::default();
    let mut network = builtin::load::<B>(&device).unwrap();
    network.fold_into_convs();
    let streams: usize = std::env::args()
        .nth(1)
        .map_or(1024, |s| s.parse().expect("the number of streams"));
    let chunk = Tensor::<B, 4>::random(
        [streams, 1, 512, 1],
        Distribution::Uniform(-0.5, 0.5),
        &device,
    );
    let mut states: Vec<_> = network
        .layers
        .iter()
        .map(|l| l.init_state(streams, TemporalFill::Zeros, &device))
        .collect();
    let mut seconds = vec![0f64; network.layers.len()];
    for step in 0..WARM_UP + STEPS {
        let mut x = chunk.clone();
        for (i, layer) in network.layers.iter().enumerate() {
            let start = Instant::now();
            x = layer.forward_step(x, &mut states[i]).unwrap();
            // Waits for the layer's result.
            let _ = x.clone().into_data();
            if step >= WARM_UP {
                seconds[i] += start.elapsed().as_secs_f64() / STEPS as f64;
            }
        }
    }
    println!("{streams} streams, ms per step:");
    for (name, s) in network.names().iter().zip(&seconds) {
        println!("  {name:12} {:8.3}", s * 1e3);
    }
    println!("  {:12} {:8.3}", "total", seconds.iter().sum::<f64>() * 1e3);
}
