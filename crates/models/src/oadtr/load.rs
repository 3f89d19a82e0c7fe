//! CoOadTR weights in the layouts users have, renamed to the network's own names
//! ([`super::build_co_oadtr`]).
//!
//! - **CoOadTR** (its `main.py` saves `{"model": state_dict, "optimizer": …, "args": …}`;
//!   only `model` is read, the pickled `args` and the optimizer are ignored: the shape comes
//!   from the configuration): the `co.Sequential` of `CoVisionTransformer`, `0` the input
//!   linear, `1.pe.*` the positional table, `3` the encoder of `continual_transformers`
//!   (b1 `3.0.1.in_proj_weight`, `3.1.fn.*`, `3.2.1.0.*`, `3.2.1.3.*`, `3.3.fn.*`; b2 a
//!   retroactive block `3.0.0.1.*`, `3.0.1.fn.{0, 1.fn.0, 1.fn.3, 2}.*` and a single-output
//!   block under `3.1.fn.`), `4.fn.*` the pre-head LayerNorm, `5` the classifier.
//! - **continual-inference**: `co.Sequential(co.Linear, co.RecyclingPositionalEncoding,
//!   co.TransformerEncoder(…, norm=LayerNorm), co.Linear)`, the encoder under `2.` in
//!   continual-inference's or torch's names (`2.layers.0.0.self_attn.in_proj_weight`,
//!   `2.layers.0.self_attn.in_proj_weight`, `2.norm.fn.weight`), the classifier `3`.
//! - **costream**: the network's own names (`input.weight`, `encoder.layers.0.linear1.weight`,
//!   …), as [`costream_continual::save_checkpoint`] writes them.
//!
//! Whether the attention projections have biases is read from the checkpoint (CoOadTR's have
//! none, continual-inference's always do); every other size comes from the configuration, and
//! a missing, unused or mis-shaped key is named.

use std::path::Path;

use burn::prelude::*;
use costream_continual::transformer::reference_key;
use costream_continual::{load_checkpoint, Sequential, Weights};

use super::build::build_co_oadtr;
use super::config::CoOadTrConfig;
use crate::checkpoint::read_checkpoint;
use crate::error::LoadError;

/// The key layouts a CoOadTR checkpoint comes in; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OadTrLayout {
    /// CoOadTR's own training code (`continual_transformers` modules): b1 (one layer) or b2
    /// (two).
    CoOadTr {
        /// Encoder layers, 1 or 2.
        layers: usize,
    },
    /// The reference library's `co.TransformerEncoder`.
    ContinualInference,
    /// costream's names.
    Costream,
}

impl OadTrLayout {
    /// The layout of `weights`, from the key of the first layer's attention; `None` when
    /// they hold no CoOadTR encoder.
    pub fn detect(weights: &Weights) -> Option<Self> {
        let keys = || weights.iter().map(|(k, _)| k);
        if weights.contains("3.0.1.in_proj_weight") {
            Some(OadTrLayout::CoOadTr { layers: 1 })
        } else if weights.contains("3.0.0.1.in_proj_weight") {
            Some(OadTrLayout::CoOadTr { layers: 2 })
        } else if keys().any(|k| k.starts_with("2.layers.0.") && k.contains("self_attn.")) {
            Some(OadTrLayout::ContinualInference)
        } else if weights.contains("encoder.layers.0.self_attn.in_proj_weight") {
            Some(OadTrLayout::Costream)
        } else {
            None
        }
    }

    /// `key` in the network's own names; `None` for a key this layout does not name (it is
    /// then reported as unused).
    pub fn network_key(self, key: &str) -> Option<String> {
        match self {
            OadTrLayout::Costream => Some(key.to_string()),
            OadTrLayout::CoOadTr { layers } => co_oadtr_key(key, layers),
            OadTrLayout::ContinualInference => continual_inference_key(key),
        }
    }
}

/// Reads a CoOadTR checkpoint (a PyTorch pickle or safetensors, in any layout of the module
/// documentation) into a network of shape `config`.
///
/// # Errors
/// [`LoadError`] naming the file: it cannot be read; it holds no CoOadTR encoder or one of
/// another depth; a key is missing, unused or mis-shaped; or `config` builds no network.
pub fn load_co_oadtr<B: Backend>(
    config: &CoOadTrConfig,
    path: &Path,
    device: &B::Device,
) -> Result<Sequential<B>, LoadError> {
    load_co_oadtr_weights(config, read_checkpoint(path)?, path, device)
}

/// [`load_co_oadtr`] for weights already read: `origin` names where they came from in errors.
///
/// # Errors
/// As [`load_co_oadtr`], naming `origin`.
pub fn load_co_oadtr_weights<B: Backend>(
    config: &CoOadTrConfig,
    weights: Weights,
    origin: &Path,
    device: &B::Device,
) -> Result<Sequential<B>, LoadError> {
    let model = format!("CoOadTR-b{}", config.layers);
    let family_error = |reason: String| LoadError::Family {
        path: origin.to_path_buf(),
        model: model.clone(),
        reason,
    };
    let layout = OadTrLayout::detect(&weights).ok_or_else(|| {
        family_error(
            "it has no transformer encoder in CoOadTR's (`3.0.1.in_proj_weight`, \
             `3.0.0.1.in_proj_weight`), continual-inference's (`2.layers.0.…`) or costream's \
             (`encoder.layers.0.…`) names"
                .into(),
        )
    })?;
    let renamed = weights
        .renamed(|key| layout.network_key(key))
        .map_err(|source| LoadError::Weights {
            path: origin.to_path_buf(),
            model: model.clone(),
            source,
        })?;
    let layers = encoder_layers(&renamed);
    if layers != config.layers {
        return Err(family_error(format!(
            "it has {layers} encoder layer(s) (CoOadTR-b{layers}), the model {}",
            config.layers
        )));
    }
    let config = CoOadTrConfig {
        attention_bias: renamed.contains("encoder.layers.0.self_attn.in_proj_bias"),
        ..config.clone()
    };
    let mut network = build_co_oadtr::<B>(&config, device)?;
    load_checkpoint(&mut network, renamed).map_err(|source| LoadError::Weights {
        path: origin.to_path_buf(),
        model: model.clone(),
        source,
    })?;
    Ok(network)
}

/// The number of encoder layers named `encoder.layers.{i}.self_attn.*`.
fn encoder_layers(weights: &Weights) -> usize {
    weights
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("encoder.layers.")?.split_once(".self_attn."))
        .filter_map(|(index, _)| index.parse::<usize>().ok())
        .max()
        .map_or(0, |last| last + 1)
}

/// A CoOadTR key of a `layers`-layer encoder in the network's names (see the module
/// documentation).
fn co_oadtr_key(key: &str, layers: usize) -> Option<String> {
    let top = [
        ("0.", "input."),
        ("1.pe.", "positional.pe."),
        ("4.fn.", "encoder.norm."),
        ("5.", "classifier."),
    ];
    if let Some(renamed) = renamed_prefix(key, &top) {
        return Some(renamed);
    }
    let encoder = key.strip_prefix("3.")?;
    if layers == 1 {
        return single_output_key(encoder, 0);
    }
    // b2: a retroactive block at `3.0.`, a single-output block at `3.1.fn.`.
    let retroactive = [
        ("0.0.1.", "encoder.layers.0.self_attn."),
        ("0.1.fn.0.", "encoder.layers.0.norm1."),
        ("0.1.fn.1.fn.0.", "encoder.layers.0.linear1."),
        ("0.1.fn.1.fn.3.", "encoder.layers.0.linear2."),
        ("0.1.fn.2.", "encoder.layers.0.norm2."),
    ];
    renamed_prefix(encoder, &retroactive)
        .or_else(|| single_output_key(encoder.strip_prefix("1.fn.")?, 1))
}

/// A key inside one of `continual_transformers`' single-output blocks, as layer `layer`.
fn single_output_key(block: &str, layer: usize) -> Option<String> {
    let names = [
        ("0.1.", "self_attn."),
        ("1.fn.", "norm1."),
        ("2.1.0.", "linear1."),
        ("2.1.3.", "linear2."),
        ("3.fn.", "norm2."),
    ];
    renamed_prefix(block, &names).map(|rest| format!("encoder.layers.{layer}.{rest}"))
}

/// A continual-inference key in the network's names.
fn continual_inference_key(key: &str) -> Option<String> {
    let top = [
        ("0.", "input."),
        ("1.pe.", "positional.pe."),
        ("3.", "classifier."),
    ];
    if let Some(renamed) = renamed_prefix(key, &top) {
        return Some(renamed);
    }
    reference_key(key.strip_prefix("2.")?).map(|torch| format!("encoder.{torch}"))
}

/// `key` with the first matching `(from, to)` prefix replaced.
fn renamed_prefix(key: &str, prefixes: &[(&str, &str)]) -> Option<String> {
    prefixes
        .iter()
        .find_map(|(from, to)| key.strip_prefix(from).map(|rest| format!("{to}{rest}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn co_oadtr_keys_name_the_network() {
        let b1 = OadTrLayout::CoOadTr { layers: 1 };
        let b2 = OadTrLayout::CoOadTr { layers: 2 };
        let cases = [
            (b1, "0.weight", "input.weight"),
            (b2, "1.pe.pattern", "positional.pe.pattern"),
            (
                b1,
                "3.0.1.in_proj_weight",
                "encoder.layers.0.self_attn.in_proj_weight",
            ),
            (
                b1,
                "3.0.1.out_proj.weight",
                "encoder.layers.0.self_attn.out_proj.weight",
            ),
            (b1, "3.1.fn.bias", "encoder.layers.0.norm1.bias"),
            (b1, "3.2.1.0.weight", "encoder.layers.0.linear1.weight"),
            (b1, "3.2.1.3.bias", "encoder.layers.0.linear2.bias"),
            (b1, "3.3.fn.weight", "encoder.layers.0.norm2.weight"),
            (
                b2,
                "3.0.0.1.in_proj_weight",
                "encoder.layers.0.self_attn.in_proj_weight",
            ),
            (b2, "3.0.1.fn.0.weight", "encoder.layers.0.norm1.weight"),
            (
                b2,
                "3.0.1.fn.1.fn.0.weight",
                "encoder.layers.0.linear1.weight",
            ),
            (b2, "3.0.1.fn.1.fn.3.bias", "encoder.layers.0.linear2.bias"),
            (b2, "3.0.1.fn.2.bias", "encoder.layers.0.norm2.bias"),
            (
                b2,
                "3.1.fn.0.1.in_proj_weight",
                "encoder.layers.1.self_attn.in_proj_weight",
            ),
            (b2, "3.1.fn.1.fn.weight", "encoder.layers.1.norm1.weight"),
            (b2, "3.1.fn.2.1.0.weight", "encoder.layers.1.linear1.weight"),
            (b2, "3.1.fn.3.fn.bias", "encoder.layers.1.norm2.bias"),
            (b1, "4.fn.weight", "encoder.norm.weight"),
            (b2, "5.bias", "classifier.bias"),
        ];
        for (layout, from, to) in cases {
            assert_eq!(layout.network_key(from).as_deref(), Some(to), "{from}");
        }
        assert_eq!(b1.network_key("3.9.weight"), None);
        assert_eq!(b2.network_key("3.2.1.0.weight"), None);
        assert_eq!(b1.network_key("7.weight"), None);
    }

    #[test]
    fn continual_inference_keys_name_the_network() {
        let cases = [
            ("0.bias", "input.bias"),
            ("1.pe.weight", "positional.pe.weight"),
            (
                "2.layers.0.0.self_attn.in_proj_bias",
                "encoder.layers.0.self_attn.in_proj_bias",
            ),
            (
                "2.layers.0.1.fn._ff_block.fn.linear1.weight",
                "encoder.layers.0.linear1.weight",
            ),
            (
                "2.layers.1.fn.1.norm2.fn.weight",
                "encoder.layers.1.norm2.weight",
            ),
            (
                "2.layers.1.linear2.weight",
                "encoder.layers.1.linear2.weight",
            ),
            ("2.norm.fn.weight", "encoder.norm.weight"),
            ("3.weight", "classifier.weight"),
        ];
        for (from, to) in cases {
            assert_eq!(
                OadTrLayout::ContinualInference.network_key(from).as_deref(),
                Some(to),
                "{from}"
            );
        }
    }
}
