//! Builds a CoST-GCN network from its configuration, with continual-skeletons' structure (and
//! so its continual key names).

use burn::prelude::*;
use costream_continual::{
    residual, Activation, ActivationKind, AdaptiveGcnUnitConfig, AttentionGcnUnitConfig,
    BatchNormConfig, BroadcastReduce, CoConvConfig, CoLayer, CoModule, CoPool, CoPoolConfig,
    ConfigError, Delay, FlatBatchNorm, GcnUnitConfig, LinearConfig, PoolKind, Reduce,
    ResidualShrink, Sequential,
};

use super::config::{BlockShape, GraphUnit, StGcnConfig};

/// Subsets of the spatial-configuration partition.
const SUBSETS: usize = 3;

fn relu<B: Backend>() -> CoLayer<B> {
    Activation::new(ActivationKind::Relu).into()
}

/// A temporal conv `(kernel, 1)` and BatchNorm, as continual-skeletons' `TemporalConvolution`
/// (a `Conv2d` over time and joints in the checkpoint; persons, the second spatial dim here,
/// are convolved alike).
///
/// # Errors
/// [`ConfigError`] for a kernel, padding or stride the conv rejects.
pub fn temporal_conv<B: Backend>(
    channels: [usize; 2],
    kernel: usize,
    padding: usize,
    stride: usize,
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    Ok(Sequential::named(vec![
        (
            "t_conv",
            CoConvConfig::new(channels, [kernel, 1, 1])
                .with_padding([padding, 0, 0])
                .with_stride([stride, 1, 1])
                .with_spatial_dims(1)
                .init(device)?
                .into(),
        ),
        ("bn", BatchNormConfig::new(channels[1]).init(device).into()),
    ])
    .into())
}

/// One block: `relu(tcn(gcn(x)) + residual(x))`, the residual aligned in time with the main
/// branch as continual-skeletons' `CoSpatioTemporalBlock` does it.
fn block<B: Backend>(
    config: &StGcnConfig,
    shape: BlockShape,
    adjacency: &[f32],
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    let BlockShape {
        c_in,
        c_out,
        stride,
        residual: has_residual,
        unit,
    } = shape;
    let kernel = config.temporal_kernel;
    let padding = config.temporal_padding();
    let graph = [SUBSETS, config.graph.joints];
    let gcn: CoLayer<B> = match unit {
        GraphUnit::Convolution => GcnUnitConfig::new([c_in, c_out], graph)
            .init(Some(adjacency), device)?
            .into(),
        GraphUnit::Adaptive => AdaptiveGcnUnitConfig::new([c_in, c_out], graph)
            .init(adjacency, device)?
            .into(),
        GraphUnit::Attention => AttentionGcnUnitConfig::new([c_in, c_out], graph)
            .with_heads(config.attention_heads)
            .init(adjacency, device)?
            .into(),
    };
    let tcn = temporal_conv([c_out, c_out], kernel, padding, stride, device)?;
    if !has_residual {
        return Ok(Sequential::named(vec![("gcn", gcn), ("tcn", tcn), ("relu", relu())]).into());
    }
    let main: CoLayer<B> = Sequential::named(vec![("gcn", gcn), ("tcn", tcn)]).into();
    if c_in == c_out && stride == 1 {
        let res = residual(main, Reduce::Sum, ResidualShrink::Centered)?;
        return Ok(Sequential::new(vec![res.into(), relu()]).into());
    }
    // A 1×1 strided conv on the input held back to the main branch's centre frame. The
    // reference delays after the strided conv by `tcn.delay // stride` strided steps, which
    // is the same wherever the stride divides the delay (ST-GCN's kernel 9) and misaligns
    // the branches elsewhere; holding back at the input rate is exact for every kernel.
    let shortcut = temporal_conv([c_in, c_out], 1, 0, stride, device)?;
    let shrink = kernel - 1 - 2 * padding;
    let crop_start = shrink / 2;
    let align = Delay::cropped(
        kernel - 1 - padding - crop_start,
        crop_start,
        shrink - crop_start,
    )?;
    let shortcut: CoLayer<B> =
        Sequential::named(vec![("align", align.into()), ("residual", shortcut)]).into();
    let res = BroadcastReduce::new(vec![shortcut, main], Reduce::Sum, false)?;
    Ok(Sequential::new(vec![res.into(), relu()]).into())
}

/// The mean over every joint and person of each frame: an average pool over the whole frame.
fn spatial_mean<B: Backend>(config: &StGcnConfig) -> Result<CoPool<B>, ConfigError> {
    let frame = [1, config.graph.joints, config.persons];
    CoPoolConfig::new(PoolKind::Avg, frame)
        .with_stride(Some(frame))
        .init()
}

/// The temporal pool's window and padding: sized, as continual-skeletons does, so that a
/// prediction averages the features a clip of `config.clip_frames` frames gives.
///
/// # Errors
/// [`ConfigError`] when the blocks see more frames than a clip holds.
pub fn pool_window(
    config: &StGcnConfig,
    receptive_field: usize,
    padding: usize,
    stride: usize,
) -> Result<(usize, usize), ConfigError> {
    let frames = config.clip_frames;
    if frames + 2 * padding < receptive_field {
        return Err(ConfigError::new(
            "StGcn",
            format!(
                "the blocks see {receptive_field} frames, more than a clip of {frames} \
                 (clip_frames) padded by {padding}"
            ),
        ));
    }
    let size = (frames + 2 * padding + 1 - receptive_field).div_ceil(stride);
    let unpadded = (frames + padding + 1)
        .saturating_sub(receptive_field)
        .div_ceil(stride);
    Ok((size, size.saturating_sub(unpadded)))
}

/// Builds the network: `data_bn`, the blocks (`layers.layer1` …), a spatial mean over joints
/// and persons, the temporal average pool and the classifier `fc`. The adjacency is the
/// graph's spatial partition until a checkpoint's `A` replaces it.
///
/// # Shapes
/// - clip input: `[N, C, T, V, P]`; output: `[N, classes, T', 1, 1]` (logits)
///
/// # Errors
/// [`ConfigError`] for a configuration the modules reject.
pub fn build_stgcn<B: Backend>(
    config: &StGcnConfig,
    device: &B::Device,
) -> Result<Sequential<B>, ConfigError> {
    let adjacency = config.graph.spatial_partition();
    let blocks = config
        .blocks
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            Ok((
                format!("layer{}", i + 1),
                block(config, *shape, &adjacency, device)?,
            ))
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let layers = Sequential::named(blocks);
    let timing = layers.timing();
    let padding = usize::try_from(timing.padding).unwrap_or(0);
    let (window, pool_padding) =
        pool_window(config, timing.receptive_field, padding, timing.stride)?;
    let pool = CoPoolConfig::new(PoolKind::Avg, [window, 1, 1])
        .with_stride(Some([1, 1, 1]))
        .with_padding([pool_padding, 0, 0])
        .init()?;
    Ok(Sequential::named(vec![
        (
            "data_bn",
            FlatBatchNorm::new(
                [config.in_channels, config.graph.joints, config.persons],
                device,
            )
            .into(),
        ),
        ("layers", layers.into()),
        ("spatial_pool", spatial_mean(config)?.into()),
        ("pool", pool.into()),
        (
            "fc",
            LinearConfig::new([config.features(), config.num_classes])
                .init(device)
                .into(),
        ),
    ]))
}

/// The offline ST-GCN's prediction for whole clips (continual-skeletons' `StGcn.forward`):
/// `data_bn` and the blocks over the clip, then a mean over all frames, joints and persons
/// instead of the continual network's windowed pool, then `fc`. `None` when `network` is
/// not one [`build_stgcn`] built.
///
/// # Shapes
/// - clip: `[N, C, T, V, P]`; output: `[N, classes]` (logits)
pub fn clip_logits<B: Backend>(
    network: &Sequential<B>,
    clip: Tensor<B, 5>,
) -> Option<Tensor<B, 2>> {
    let [data_bn, layers, _, _, fc] = network.layers.as_slice() else {
        return None;
    };
    let features = layers.forward(data_bn.forward(clip));
    let [n, c, t, v, p] = features.dims();
    let pooled = features
        .reshape([n, c, t * v * p])
        .mean_dim(2)
        .reshape([n, c, 1, 1, 1]);
    let logits = fc.forward(pooled);
    let [n, classes, ..] = logits.dims();
    Some(logits.reshape([n, classes]))
}
