//! Silero VAD weights in the package's safetensors layout (`tinygrad_model.py`'s names:
//! `stft_conv.weight`, `conv1.weight` … `conv4.bias`, `lstm_cell.weight_ih` …,
//! `final_conv.weight`, `final_conv.bias`), as `silero_vad_16k.safetensors` and costream's
//! export of the `.jit` hold them.

use std::path::Path;

use burn::prelude::*;
use costream_continual::{load_checkpoint, Sequential, WeightTensor, Weights};

use super::build::build_silero_vad;
use super::config::SileroVadConfig;
use crate::checkpoint::read_checkpoint;
use crate::error::LoadError;

/// Reads a Silero VAD checkpoint (safetensors or a PyTorch pickle of the same keys) into a
/// network of shape `config`.
///
/// # Errors
/// [`LoadError`] naming the file: it cannot be read; it is not a Silero VAD checkpoint (no
/// `stft_conv.weight`); a key is missing, unused or mis-shaped; or `config` builds no network.
pub fn load_silero_vad<B: Backend>(
    config: &SileroVadConfig,
    path: &Path,
    device: &B::Device,
) -> Result<Sequential<B>, LoadError> {
    load_silero_vad_weights(config, read_checkpoint(path)?, path, device)
}

/// [`load_silero_vad`] for weights already read: `origin` names where they came from in errors.
///
/// # Errors
/// As [`load_silero_vad`], naming `origin`.
pub fn load_silero_vad_weights<B: Backend>(
    config: &SileroVadConfig,
    weights: Weights,
    origin: &Path,
    device: &B::Device,
) -> Result<Sequential<B>, LoadError> {
    let model = format!("Silero VAD ({} Hz)", config.sample_rate);
    if !weights.contains("stft_conv.weight") {
        return Err(LoadError::Family {
            path: origin.to_path_buf(),
            model,
            reason: "it has no `stft_conv.weight` (the STFT basis of silero-vad's safetensors \
                     layout)"
                .into(),
        });
    }
    let mut network = build_silero_vad::<B>(config, device)?;
    let does_not_fit = |source| LoadError::Weights {
        path: origin.to_path_buf(),
        model: model.clone(),
        source,
    };
    load_checkpoint(&mut network, continual_layout(&weights)).map_err(does_not_fit)?;
    Ok(network)
}

/// The package's keys and shapes as the continual network names them: `Conv1d` weights
/// `[out, in, k]` become the `[out, in, 1, k]` of convolutions along height with one frame of
/// time, and the `LSTMCell`'s keys become layer 0 of an LSTM (`weight_ih` → `weight_ih_l0`).
fn continual_layout(weights: &Weights) -> Weights {
    let mut out = Weights::new();
    for (key, tensor) in weights.iter() {
        let is_conv_weight = key.ends_with(".weight") && !key.starts_with("lstm_cell.");
        let shape = match tensor.shape.as_slice() {
            [o, i, k] if is_conv_weight => vec![*o, *i, 1, *k],
            other => other.to_vec(),
        };
        let key = match key.strip_prefix("lstm_cell.") {
            Some(name) => format!("lstm_cell.{name}_l0"),
            None => key.to_string(),
        };
        out.insert(
            key,
            WeightTensor {
                shape,
                values: tensor.values.clone(),
            },
        );
    }
    out
}
