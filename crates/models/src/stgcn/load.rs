//! Loading continual-skeletons ST-GCN checkpoints into a CoST-GCN network.

use std::path::Path;

use burn::prelude::*;
use costream_continual::{load_checkpoint, Sequential, Weights};

use super::build::build_stgcn;
use super::config::StGcnConfig;
use crate::checkpoint::read_checkpoint;
use crate::error::LoadError;

/// A network with the weights of a checkpoint.
#[derive(Debug)]
pub struct LoadedStGcn<B: Backend> {
    /// The network (offline through `forward`, continual through `forward_step`).
    pub network: Sequential<B>,
    /// The configuration it was built with.
    pub config: StGcnConfig,
}

/// Loads a continual-skeletons ST-GCN checkpoint (`.pt` raw or wrapped in `state_dict` /
/// `model_state`, or safetensors) into a network of shape `config`.
///
/// Offline (`StGcn`) and continual (`CoStGcn`) key names both load; see [`continual_key`]
/// for the map. The checkpoint's adjacency `A` replaces the graph's.
///
/// # Errors
/// [`LoadError`] naming the file: it cannot be read; it is not an ST-GCN checkpoint; a key is
/// missing, unused or mis-shaped (named as in the network, e.g. `fc.weight` for another class
/// count); or `config` builds no network.
pub fn load_stgcn<B: Backend>(
    config: &StGcnConfig,
    path: &Path,
    device: &B::Device,
) -> Result<LoadedStGcn<B>, LoadError> {
    load_stgcn_weights(config, read_checkpoint(path)?, path, device)
}

/// [`load_stgcn`] for weights already read: `origin` names where they came from in errors.
///
/// # Errors
/// As [`load_stgcn`], naming `origin`.
pub fn load_stgcn_weights<B: Backend>(
    config: &StGcnConfig,
    weights: Weights,
    origin: &Path,
    device: &B::Device,
) -> Result<LoadedStGcn<B>, LoadError> {
    let model = format!(
        "{} ({} joints, {} classes)",
        config.architecture_name(),
        config.graph.joints,
        config.num_classes
    );
    if !weights.contains("data_bn.running_mean") {
        return Err(LoadError::Family {
            path: origin.to_path_buf(),
            model,
            reason: "it has no `data_bn.running_mean` (continual-skeletons' input \
                     normalisation)"
                .into(),
        });
    }
    let mut network = build_stgcn::<B>(config, device)?;
    let does_not_fit = |source| LoadError::Weights {
        path: origin.to_path_buf(),
        model: model.clone(),
        source,
    };
    let renamed = weights
        .renamed(|key| Some(continual_key(config, key)))
        .map_err(does_not_fit)?;
    load_checkpoint(&mut network, renamed).map_err(does_not_fit)?;
    Ok(LoadedStGcn {
        network,
        config: config.clone(),
    })
}

/// The network's key for a checkpoint key (continual-skeletons' `map_state_dict` in reverse).
///
/// | checkpoint (offline `StGcn`) | network (continual) |
/// | --- | --- |
/// | `data_bn.*` | `data_bn.*` |
/// | `layers.layer1.{gcn,tcn}.*` (no residual) | unchanged |
/// | `layers.layerN.gcn.*`, `layers.layerN.tcn.*` (N ≥ 2) | `layers.layerN.0.1.gcn.*`, `layers.layerN.0.1.tcn.*` |
/// | `layers.layerN.residual.*` (conv residual) | `layers.layerN.0.0.residual.*` |
/// | `fc.*` | `fc.*` |
///
/// Inside a block, `gcn.*` are the spatial unit's: `gcn.g_conv.{k}.*`, `gcn.A`,
/// `gcn.graph_attn`, `gcn.bn.*` and `gcn.gcn_residual.{0,1}.*` for a graph convolution
/// ([`costream_continual::GcnUnit`]); the same and `gcn.a_conv.{k}.*`, `gcn.b_conv.{k}.*`
/// for AGCN's adaptive graph ([`costream_continual::AdaptiveGcnUnit`]); `gcn.data_bn.*`,
/// `gcn.attention_conv.qkv_conv.*`, `gcn.attention_conv.attn_out.*`, `gcn.bn.*` and
/// `gcn.A` for S-TR's attention ([`costream_continual::AttentionGcnUnit`]). `tcn.t_conv.*`
/// and `tcn.bn.*` are the temporal conv's. Keys already in continual form are kept.
pub fn continual_key(config: &StGcnConfig, key: &str) -> String {
    let Some(rest) = key.strip_prefix("layers.layer") else {
        return key.to_string();
    };
    let Some((number, inner)) = rest.split_once('.') else {
        return key.to_string();
    };
    let has_residual = number
        .parse::<usize>()
        .ok()
        .and_then(|n| config.blocks.get(n.wrapping_sub(1)))
        .is_some_and(|b| b.residual);
    if !has_residual {
        return key.to_string();
    }
    let branch = if inner.starts_with("residual.") {
        "0.0"
    } else if inner.starts_with("gcn.") || inner.starts_with("tcn.") {
        "0.1"
    } else {
        return key.to_string();
    };
    format!("layers.layer{number}.{branch}.{inner}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stgcn::config::StGcnVariant;

    #[test]
    fn offline_keys_map_to_the_continual_ones() {
        let config = StGcnConfig::ntu60(StGcnVariant::Strided);
        for (offline, continual) in [
            ("data_bn.weight", "data_bn.weight"),
            (
                "layers.layer1.gcn.g_conv.0.weight",
                "layers.layer1.gcn.g_conv.0.weight",
            ),
            ("layers.layer2.gcn.A", "layers.layer2.0.1.gcn.A"),
            (
                "layers.layer10.tcn.bn.bias",
                "layers.layer10.0.1.tcn.bn.bias",
            ),
            (
                "layers.layer5.residual.t_conv.weight",
                "layers.layer5.0.0.residual.t_conv.weight",
            ),
            ("layers.layer5.0.1.gcn.A", "layers.layer5.0.1.gcn.A"),
            ("fc.bias", "fc.bias"),
        ] {
            assert_eq!(continual_key(&config, offline), continual, "{offline}");
        }
    }
}
