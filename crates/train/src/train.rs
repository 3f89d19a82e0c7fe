//! The training loop: offline X3D over synthetic clips, cross-entropy on every prediction of
//! the clip, Adam with warm-up and cosine decay.

use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use costream_continual::{CoModule, Sequential};
use costream_models::x3d::X3dConfig;

use crate::adam::Adam;
use crate::data::batch;
use crate::evaluate::top_classes;
use crate::init::training_init;

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Clips per step (a multiple of 8 keeps every batch balanced over the classes).
    pub batch: usize,
    /// Frames per training clip (more than the head's window plus the network's padding).
    pub clip_frames: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Steps of linear warm-up to the peak.
    pub warmup_steps: usize,
    /// Seed of the initial weights; training examples use seeds `0..steps·batch`.
    pub seed: u64,
}

/// What one step reports.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Mean cross-entropy of this step's batch.
    pub loss: f32,
    /// Fraction of this step's predictions whose top class is the clip's.
    pub accuracy: f32,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Time since training started.
    pub elapsed: Duration,
}

impl TrainConfig {
    /// The learning rate at `step`: linear warm-up, then cosine decay to 5% of the peak.
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = (self.steps - self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / span;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.learning_rate * (0.05 + 0.95 * cosine)
    }
}

/// Trains an offline X3D of shape `x3d` from scratch, calling `report` after every step.
///
/// # Errors
/// A message when the configuration builds no network or its clips are too short to give a
/// prediction free of end padding.
pub fn train<B: AutodiffBackend>(
    config: &TrainConfig,
    x3d: &X3dConfig,
    device: &B::Device,
    mut report: impl FnMut(&Progress),
) -> Result<Sequential<B>, String> {
    B::seed(device, config.seed);
    let mut network = x3d.build::<B>(device).map_err(|e| e.to_string())?;
    training_init(&mut network, config.seed)?;
    let spec = x3d.preprocessing(1);
    let padding = usize::try_from(network.timing().padding).unwrap_or(0);
    if config.clip_frames < x3d.pool_window + padding {
        return Err(format!(
            "training clips of {} frames leave no prediction free of end padding: use at least {}",
            config.clip_frames,
            x3d.pool_window + padding
        ));
    }
    let mut adam = Adam::<B>::default();
    let started = Instant::now();
    for step in 0..config.steps {
        let first = (step * config.batch) as u64;
        let seeds: Vec<u64> = (first..first + config.batch as u64).collect();
        let (clips, labels) = batch::<B>(&seeds, config.clip_frames, &spec, device);
        let probabilities = streamable_outputs(network.forward(clips), padding);
        let (loss, accuracy) = cross_entropy(probabilities, &labels, x3d.num_classes);
        let loss_value: f32 = loss.clone().into_scalar().elem();
        let grads = loss.backward();
        let learning_rate = config.learning_rate_at(step);
        network = adam.step(network, &grads, learning_rate);
        report(&Progress {
            step: step + 1,
            loss: loss_value,
            accuracy,
            learning_rate,
            elapsed: started.elapsed(),
        });
    }
    Ok(network)
}

/// The predictions of an offline clip that a stream also makes: all but the last `padding`,
/// whose receptive fields reach into the zero padding after the clip's end (a stream never sees
/// end padding: its outputs wait for real frames). The first ones see the start padding, as a
/// stream's first predictions see its zero fill.
///
/// # Shapes
/// - outputs: `[clips, classes, predictions, 1, 1]` → `[clips, classes, predictions − padding, 1, 1]`
fn streamable_outputs<B: Backend>(outputs: Tensor<B, 5>, padding: usize) -> Tensor<B, 5> {
    let predictions = outputs.dims()[2];
    outputs.narrow(2, 0, predictions - padding)
}

/// Mean cross-entropy of softmax outputs against each clip's class, over every prediction of
/// every clip, and the fraction of predictions whose top class is right.
///
/// # Shapes
/// - probabilities: `[clips, classes, predictions, 1, 1]`
fn cross_entropy<B: Backend>(
    probabilities: Tensor<B, 5>,
    labels: &[usize],
    classes: usize,
) -> (Tensor<B, 1>, f32) {
    let device = probabilities.device();
    let [clips, _, predictions, _, _] = probabilities.dims();
    let one_hot: Vec<f32> = labels
        .iter()
        .flat_map(|&label| (0..classes).map(move |c| f32::from(u8::from(c == label))))
        .collect();
    let one_hot =
        Tensor::<B, 5>::from_data(TensorData::new(one_hot, [clips, classes, 1, 1, 1]), &device);
    let picked = (probabilities.clone() * one_hot).sum_dim(1);
    let loss = picked.clamp_min(1e-7).log().neg().mean();
    let top = top_classes(probabilities);
    let right = top
        .iter()
        .enumerate()
        .filter(|&(i, &c)| c == labels[i / predictions])
        .count();
    (loss, right as f32 / top.len().max(1) as f32)
}
