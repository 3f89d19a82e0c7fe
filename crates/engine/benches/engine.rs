//! Engine throughput on the CPU: one round (every stream steps one frame, closed loop) at 1,
//! 4, 16 and 64 concurrent streams, for cox3d_tiny and CoX3D-S. Latency percentiles come
//! from the `loadgen` example.
#![allow(missing_docs)]

use std::time::Duration;

use costream_engine::loadgen::Load;
use costream_engine::{Engine, EngineConfig, Family, ModelConfig, WeightsSource};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn engine(variant: &str, streams: usize) -> Engine {
    let mut model = ModelConfig::new("m", Family::X3d, variant, WeightsSource::Random { seed: 1 });
    model.slots.capacity = streams;
    model.batch.max_batch = streams;
    model.batch.max_wait = Duration::from_millis(2);
    Engine::start(&EngineConfig {
        models: vec![model],
    })
    .expect("engine starts")
}

fn bench_rounds(c: &mut Criterion, variant: &str, streams: &[usize]) {
    let mut group = c.benchmark_group(format!("engine_x3d_{variant}_cpu"));
    group.sample_size(10);
    for &n in streams {
        let engine = engine(variant, n);
        let fill = engine.model("m").map_or(1, |m| m.timing.delay + 1);
        let mut load = Load::open(&engine, "m", n).expect("streams open");
        load.rounds(fill).expect("fill");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("streams", n), |b| {
            b.iter_custom(|iters| load.rounds(iters as usize).expect("rounds").elapsed)
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_rounds(c, "tiny", &[1, 4, 16, 64]);
    bench_rounds(c, "s", &[1, 4, 16]);
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
