//! A CoOadTR step under a profiler: `LAYERS` (1 or 2) encoder layers at the THUMOS'14 preset
//! (random weights) stepped for `STREAMS` streams with a full window, `REPS` times (default
//! 20), printing the mean time per step. Threads follow `RAYON_NUM_THREADS`.
//!
//! ```sh
//! RAYON_NUM_THREADS=1 perf record --call-graph dwarf \
//!     cargo run --release -p costream-models --example cooadtr_profile -- 1 64 200
//! ```
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use costream_backend::Cpu;
use costream_continual::{clip_frames, CoModule, TemporalFill};
use costream_models::oadtr::{build_co_oadtr, CoOadTrConfig, OadTrDataset};

fn main() {
    let device = Default::default();
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |v| v.parse().unwrap())
    };
    let (layers, streams, reps) = (arg(1, 1), arg(2, 64), arg(3, 20));
    let config = CoOadTrConfig::paper(layers, OadTrDataset::ThumosAnet);
    let network = build_co_oadtr::<Cpu>(&config, &device).unwrap();
    let clip = Tensor::<Cpu, 5>::random(
        [streams, config.input_features, config.window, 1, 1],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut state = network.init_state(streams, TemporalFill::Zeros, &device);
    for frame in clip_frames(clip.clone()) {
        network.forward_step(frame, &mut state);
    }
    let frame = clip.narrow(2, 0, 1).squeeze_dim::<4>(2);
    let start = Instant::now();
    for _ in 0..reps {
        network
            .forward_step(frame.clone(), &mut state)
            .unwrap()
            .into_data();
    }
    let per_step = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!("CoOadTR-b{layers}, {streams} streams: {per_step:.2} ms per step");
}
