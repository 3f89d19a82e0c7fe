//! Loading X3D checkpoints of either zoo into a network.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use costream_continual::{load_checkpoint, weights::flatten_key, Sequential, WeightError, Weights};

use super::config::{ShortcutNorm, X3dConfig};
use super::keys::{pytorchvideo_to_slowfast, X3dNaming};
use crate::checkpoint::read_checkpoint;
use crate::error::LoadError;

/// A network with the weights of a checkpoint.
#[derive(Debug)]
pub struct LoadedX3d<B: Backend> {
    /// The network (offline X3D through `forward`, CoX3D through `forward_step`).
    pub network: Sequential<B>,
    /// The configuration it was built with: the requested one, with the shortcut-norm rule
    /// of the checkpoint's zoo.
    pub config: X3dConfig,
    /// Which zoo's key names the checkpoint used.
    pub naming: X3dNaming,
}

/// Loads an X3D checkpoint into a network of shape `config`.
///
/// Reads PyTorch pickles (`.pyth`, `.pt`, `.pth`; the zoo files as they are, wrapper dict
/// included) and safetensors, in either naming family ([`super::keys`] has the key map): the
/// family is detected from the stem's key. PyTorchVideo checkpoints build the network with
/// [`ShortcutNorm::WhenWidening`], PySlowFast ones with the rule in `config`. Keys are matched
/// by flat name (co3d's `load_state_dict(..., flatten=True)`), so a checkpoint of co3d's
/// continual CoX3D, with its numbered container levels, loads as well.
///
/// # Errors
/// [`LoadError`] naming the file: it cannot be read; it is not an X3D checkpoint; a key is
/// missing, unused or mis-shaped (named as in the file, e.g. an X3D-M checkpoint loaded as
/// X3D-L reports the first missing block); or `config` builds no network.
pub fn load_x3d<B: Backend>(
    config: &X3dConfig,
    path: &Path,
    device: &B::Device,
) -> Result<LoadedX3d<B>, LoadError> {
    load_x3d_weights(config, read_checkpoint(path)?, path, device)
}

/// [`load_x3d`] for weights already read: `origin` names where they came from in errors.
///
/// # Errors
/// As [`load_x3d`], naming `origin`.
pub fn load_x3d_weights<B: Backend>(
    config: &X3dConfig,
    weights: Weights,
    origin: &Path,
    device: &B::Device,
) -> Result<LoadedX3d<B>, LoadError> {
    let path = origin;
    let model = describe(config);
    let naming = X3dNaming::detect(&weights).ok_or_else(|| LoadError::Family {
        path: path.to_path_buf(),
        model: model.clone(),
        reason: format!(
            "it has neither `blocks.0.conv.conv_t.weight` (PyTorchVideo) nor \
             `s1.pathway0_stem.conv_xy.weight` (PySlowFast); its first keys are {}",
            weights
                .remaining()
                .into_iter()
                .take(3)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })?;
    let mut config = config.clone();
    let mut original_names = BTreeMap::new();
    let weights = match naming {
        X3dNaming::PySlowFast => weights,
        X3dNaming::PyTorchVideo => {
            config.shortcut_norm = ShortcutNorm::WhenWidening;
            let head_block = config.block_basis.len() + 1;
            for key in weights.remaining() {
                if let Some(new) = pytorchvideo_to_slowfast(&key, head_block) {
                    original_names.insert(new, key);
                }
            }
            weights
                .renamed(|key| pytorchvideo_to_slowfast(key, head_block))
                .map_err(|source| weight_error(path, &model, source))?
        }
    };
    let weights: Weights = weights
        .flattened()
        .map_err(|source| weight_error(path, &model, source))?;
    let mut network = config.build::<B>(device)?;
    load_checkpoint(&mut network, weights)
        .map_err(|source| weight_error(path, &model, in_file_names(source, &original_names)))?;
    Ok(LoadedX3d {
        network,
        config,
        naming,
    })
}

fn describe(config: &X3dConfig) -> String {
    format!(
        "X3D (width {}, depth {}, {} stages, {} classes)",
        config.width_factor,
        config.depth_factor,
        config.block_basis.len(),
        config.num_classes
    )
}

fn weight_error(path: &Path, model: &str, source: WeightError) -> LoadError {
    LoadError::Weights {
        path: path.to_path_buf(),
        model: model.to_string(),
        source,
    }
}

/// The error with each key named as the file names it (renamed keys mapped back).
fn in_file_names(error: WeightError, original: &BTreeMap<String, String>) -> WeightError {
    let name = |key: String| original.get(&flatten_key(&key)).cloned().unwrap_or(key);
    match error {
        WeightError::Unused { keys } => WeightError::Unused {
            keys: keys.into_iter().map(name).collect(),
        },
        WeightError::Shape {
            key,
            expected,
            found,
        } => WeightError::Shape {
            key: name(key),
            expected,
            found,
        },
        WeightError::Dtype { key, dtype } => WeightError::Dtype {
            key: name(key),
            dtype,
        },
        WeightError::Invalid { key, reason } => WeightError::Invalid {
            key: name(key),
            reason,
        },
        other => other,
    }
}
