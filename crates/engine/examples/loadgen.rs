//! Frames per second and per-frame latency of the engine at several numbers of concurrent
//! streams, printed as a Markdown table (the figures in BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p costream-engine --example loadgen -- \
//!     --variant s --device cpu --streams 1,4,16 --frames 10
//! ```
//! Options: `--family x3d|stgcn|vad|transformer` (default x3d), `--variant NAME` (the
//! family's, e.g. `tiny|xs|s|m|l` for x3d, `b2-thumos-anet` for transformer), `--weights
//! random:SEED|FILE|builtin`, `--device
//! cpu|wgpu|cuda[:N]`, `--streams N,N,…`, `--frames N` (measured per stream, after the fill),
//! `--max-batch N` (default: all streams in one batch), `--max-wait-ms MS`.

use std::process::ExitCode;
use std::time::Duration;

use costream_engine::loadgen::run_load;
use costream_engine::{Engine, EngineConfig, Family, ModelConfig, WeightsSource};

struct Args {
    family: Family,
    variant: String,
    weights: WeightsSource,
    device: costream_engine::DeviceSpec,
    streams: Vec<usize>,
    frames: usize,
    max_batch: Option<usize>,
    max_wait: Duration,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        family: Family::X3d,
        variant: "tiny".into(),
        weights: WeightsSource::Random { seed: 1 },
        device: costream_engine::DeviceSpec::Cpu,
        streams: vec![1, 4, 16, 64],
        frames: 20,
        max_batch: None,
        max_wait: Duration::from_millis(2),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--family" => {
                args.family = match value.as_str() {
                    "x3d" => Family::X3d,
                    "stgcn" => Family::StGcn,
                    "vad" => Family::Vad,
                    "transformer" => Family::Transformer,
                    other => return Err(format!("unknown family {other}")),
                }
            }
            "--variant" => args.variant = value,
            "--weights" => args.weights = value.parse()?,
            "--device" => args.device = value.parse().map_err(|e| format!("{e}"))?,
            "--streams" => {
                args.streams = value.split(',').map(number).collect::<Result<_, _>>()?;
            }
            "--frames" => args.frames = number(&value)?,
            "--max-batch" => args.max_batch = Some(number(&value)?),
            "--max-wait-ms" => {
                args.max_wait = Duration::from_secs_f64(
                    value.parse::<f64>().map_err(|e| format!("{flag}: {e}"))? / 1000.0,
                );
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "| model | device | streams | max batch | frames/s | p50 ms | p99 ms | mean batch | state MB/stream |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for &streams in &args.streams {
        let mut model =
            ModelConfig::new("m", args.family, args.variant.clone(), args.weights.clone());
        model.device = args.device;
        model.slots.capacity = streams;
        model.slots.max_pending_frames = 4;
        model.batch.max_batch = args.max_batch.unwrap_or(streams).min(streams);
        model.batch.max_wait = args.max_wait;
        let engine = match Engine::start(&EngineConfig {
            models: vec![model],
        }) {
            Ok(engine) => engine,
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::FAILURE;
            }
        };
        let info = engine.model("m").map(|m| m.timing.delay + 1).unwrap_or(1);
        match run_load(&engine, "m", streams, info, args.frames) {
            Ok(r) => println!(
                "| {}-{} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.1} | {:.2} |",
                args.family.name(),
                args.variant,
                args.device,
                streams,
                args.max_batch.unwrap_or(streams).min(streams),
                r.frames_per_second,
                r.latency_p50.as_secs_f64() * 1e3,
                r.latency_p99.as_secs_f64() * 1e3,
                r.mean_batch,
                r.state_bytes_per_stream as f64 / 1e6,
            ),
            Err(e) => {
                eprintln!("loadgen: {streams} streams: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
