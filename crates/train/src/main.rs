//! `costream-train`: trains the built-in model and writes its weights and labels.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::backend::Autodiff;
use clap::Parser;
use costream_backend::Cpu;
use costream_models::x3d::{load_x3d, save_x3d, X3dConfig};
use costream_synth::Action;
use costream_train::evaluate::streaming_accuracy;
use costream_train::train::{train, TrainConfig};

/// Trains the X3D of `X3dConfig::synthetic_actions` on synthetic clips and writes
/// `synthetic_actions.safetensors` (PySlowFast key names) and `synthetic_actions.labels`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Optimiser steps.
    #[arg(long, default_value_t = 900)]
    steps: usize,
    /// Clips per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Frames per training clip.
    #[arg(long, default_value_t = 16)]
    clip_frames: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    learning_rate: f64,
    /// Seed of the initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Held-out clips streamed after training to measure accuracy.
    #[arg(long, default_value_t = 128)]
    eval_clips: u64,
    /// Folder the weights and labels are written to.
    #[arg(long, default_value = "crates/models/weights")]
    out: PathBuf,
}

/// Held-out examples use seeds from here on (training uses `0..steps·batch`).
const HELD_OUT_SEEDS: u64 = 1 << 40;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = TrainConfig {
        steps: args.steps,
        batch: args.batch,
        clip_frames: args.clip_frames,
        learning_rate: args.learning_rate,
        warmup_steps: (args.steps / 20).max(1),
        seed: args.seed,
    };
    let x3d = X3dConfig::synthetic_actions();
    let device = Default::default();
    let network = train::<Autodiff<Cpu>>(&config, &x3d, &device, |p| {
        if p.step % 10 == 0 || p.step == 1 {
            println!(
                "step {:>5}  loss {:.4}  accuracy {:.3}  lr {:.2e}  {:.0?}",
                p.step, p.loss, p.accuracy, p.learning_rate, p.elapsed
            );
        }
    })?;

    std::fs::create_dir_all(&args.out)?;
    let weights_path = args.out.join("synthetic_actions.safetensors");
    let labels_path = args.out.join("synthetic_actions.labels");
    let metadata = HashMap::from([
        (
            "model".to_string(),
            "costream synthetic actions, X3D".to_string(),
        ),
        ("trained_with".to_string(), format!("{config:?}")),
    ]);
    std::fs::write(
        &weights_path,
        save_x3d(&network).to_safetensors(Some(metadata))?,
    )?;
    std::fs::write(&labels_path, Action::labels_file())?;

    // Read the file back as the server does and stream held-out clips through it.
    let loaded = load_x3d::<Cpu>(&x3d, &weights_path, &device)?;
    let seeds: Vec<u64> = (HELD_OUT_SEEDS..HELD_OUT_SEEDS + args.eval_clips).collect();
    let (accuracy, predictions) =
        streaming_accuracy(&loaded.network, &seeds, 48, &x3d.preprocessing(1), &device);
    println!(
        "wrote {} ({} bytes) and {}; streamed held-out accuracy {:.4} over {predictions} predictions",
        weights_path.display(),
        std::fs::metadata(&weights_path)?.len(),
        labels_path.display(),
        accuracy
    );
    Ok(())
}
