//! The X3D / CoX3D network as a tree of Co modules, with co3d's module names.
//!
//! One network serves both forms. [`CoModule::forward`] over a clip is the offline X3D:
//! squeeze-excitation pools the whole clip (as PyTorchVideo's `create_x3d` and PySlowFast's
//! `X3D`), and over a `pool_window`-frame clip the head pools it all into one prediction.
//! [`CoModule::forward_step`] is the continual CoX3D of the paper: squeeze-excitation pools
//! the current frame only ("frame scope"), and every step after the fill emits the
//! prediction for the last `pool_window` frames. Without squeeze-excitation the two agree
//! exactly; with it they differ slightly, by design (the paper trades this for speed).

use burn::prelude::*;
use costream_continual::{
    residual, Activation, ActivationKind, BatchNormConfig, BroadcastReduce, CoConvConfig, CoLayer,
    CoModule, CoPoolConfig, ConfigError, Delay, LinearConfig, PoolKind, Reduce, ResidualShrink,
    Sequential,
};

use super::config::{round_width, ShortcutNorm, X3dConfig};

impl X3dConfig {
    /// Builds the network with untrained weights (PyTorch's default initialisation; BatchNorm
    /// as the identity).
    /// Module names follow co3d's CoX3D (`s1.pathway0_stem.conv_xy`,
    /// `s2.pathway0_res0.0.1.branch2.a`, `head.projection`, …), whose flat names are
    /// PySlowFast's checkpoint keys. The output of a step is `[B, num_classes, 1, 1]`
    /// softmax probabilities; of `forward`, `[B, num_classes, T', 1, 1]`.
    ///
    /// # Errors
    /// [`ConfigError`] for sizes that make no network (e.g. a zero pool window).
    pub fn build<B: Backend>(&self, device: &B::Device) -> Result<Sequential<B>, ConfigError> {
        let dim_res1 = round_width(self.conv1_dim, self.width_factor, 8, 8);
        let mut stages: Vec<(String, CoLayer<B>)> =
            vec![("s1".into(), stem(self.dim_in, dim_res1, device)?.into())];
        let (mut d_in, mut d_out, mut d_inner) = (dim_res1, dim_res1, dim_res1);
        for (stage, &[blocks, channels, stride]) in self.block_basis.iter().enumerate() {
            d_out = round_width(channels, self.width_factor, 8, 8);
            d_inner = (self.bottleneck_factor * d_out as f64) as usize;
            let repeats = (self.depth_factor * blocks as f64).ceil() as usize;
            let mut layers = Vec::with_capacity(repeats);
            for i in 0..repeats {
                let block = BlockShape {
                    dim_in: if i == 0 { d_in } else { d_out },
                    dim_out: d_out,
                    dim_inner: d_inner,
                    stride: if i == 0 { stride } else { 1 },
                    squeeze_excite: self.se_ratio > 0.0 && i % 2 == 0,
                };
                layers.push((format!("pathway0_res{i}"), res_block(&block, self, device)?));
            }
            stages.push((format!("s{}", stage + 2), Sequential::named(layers).into()));
            d_in = d_out;
        }
        stages.push(("head".into(), head(self, d_out, d_inner, device)?.into()));
        Ok(Sequential::named(stages))
    }
}

/// The widths and stride of one residual block.
struct BlockShape {
    dim_in: usize,
    dim_out: usize,
    dim_inner: usize,
    stride: usize,
    squeeze_excite: bool,
}

fn bn<B: Backend>(channels: usize, device: &B::Device) -> CoLayer<B> {
    BatchNormConfig::new(channels).init(device).into()
}

fn act<B: Backend>(kind: ActivationKind) -> CoLayer<B> {
    Activation::new(kind).into()
}

fn conv<B: Backend>(config: CoConvConfig, device: &B::Device) -> Result<CoLayer<B>, ConfigError> {
    Ok(config.init(device)?.into())
}

fn pointwise(c_in: usize, c_out: usize) -> CoConvConfig {
    CoConvConfig::new([c_in, c_out], [1, 1, 1])
}

/// `s1.pathway0_stem`: a 1×3×3 conv (stride 2 in space), a 5×1×1 depthwise conv, BN, ReLU.
fn stem<B: Backend>(
    dim_in: usize,
    width: usize,
    device: &B::Device,
) -> Result<Sequential<B>, ConfigError> {
    let layers = Sequential::named(vec![
        (
            "conv_xy",
            conv(
                CoConvConfig::new([dim_in, width], [1, 3, 3])
                    .with_stride([1, 2, 2])
                    .with_padding([0, 1, 1])
                    .with_bias(false),
                device,
            )?,
        ),
        (
            "conv",
            conv(
                CoConvConfig::new([width, width], [5, 1, 1])
                    .with_padding([2, 0, 0])
                    .with_groups(width)
                    .with_bias(false),
                device,
            )?,
        ),
        ("bn", bn(width, device)),
        ("relu", act(ActivationKind::Relu)),
    ]);
    Ok(Sequential::named(vec![("pathway0_stem", layers.into())]))
}

/// `se`: `x · σ(fc2(relu(fc1(pool(x)))))`; the pool covers the clip offline and the current
/// frame when stepping (co3d's `CoSe` with frame scope).
fn squeeze_excite<B: Backend>(
    dim: usize,
    ratio: f64,
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    let dim_fc = round_width(dim, ratio, 8, 8);
    let body = Sequential::named(vec![
        (
            "avg_pool",
            CoPoolConfig::adaptive(PoolKind::Avg, [1, 1], 1)
                .init()?
                .into(),
        ),
        ("fc1", conv(pointwise(dim, dim_fc), device)?),
        ("fc1_act", act(ActivationKind::Relu)),
        ("fc2", conv(pointwise(dim_fc, dim), device)?),
        ("fc2_sig", act(ActivationKind::Sigmoid)),
    ]);
    Ok(residual(body.into(), Reduce::Mul, ResidualShrink::None)?.into())
}

/// `branch2`: pointwise, BN, ReLU, depthwise 3×3×3, BN, (SE), Swish, pointwise, BN.
fn transform<B: Backend>(
    block: &BlockShape,
    se_ratio: f64,
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    let inner = block.dim_inner;
    let mut layers: Vec<(&str, CoLayer<B>)> = vec![
        (
            "a",
            conv(pointwise(block.dim_in, inner).with_bias(false), device)?,
        ),
        ("a_bn", bn(inner, device)),
        ("a_relu", act(ActivationKind::Relu)),
        (
            "b",
            conv(
                CoConvConfig::new([inner, inner], [3, 3, 3])
                    .with_stride([1, block.stride, block.stride])
                    .with_padding([1, 1, 1])
                    .with_groups(inner)
                    .with_bias(false),
                device,
            )?,
        ),
        ("b_bn", bn(inner, device)),
    ];
    if block.squeeze_excite {
        layers.push(("se", squeeze_excite(inner, se_ratio, device)?));
    }
    layers.push(("b_relu", act(ActivationKind::Silu)));
    layers.push((
        "c",
        conv(pointwise(inner, block.dim_out).with_bias(false), device)?,
    ));
    layers.push(("c_bn", bn(block.dim_out, device)));
    Ok(Sequential::named(layers).into())
}

/// `pathway0_resN`: `relu(shortcut(x) + branch2(x))`, the shortcut a delay (same shape) or a
/// strided pointwise conv with (usually) a BN.
fn res_block<B: Backend>(
    block: &BlockShape,
    config: &X3dConfig,
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    let main: CoLayer<B> = Sequential::named(vec![(
        "branch2",
        transform(block, config.se_ratio, device)?,
    )])
    .into();
    let shortcut: CoLayer<B> = if block.dim_in == block.dim_out && block.stride == 1 {
        Delay::new(main.timing().delay).into()
    } else {
        let mut layers = vec![(
            "branch1",
            conv(
                pointwise(block.dim_in, block.dim_out)
                    .with_stride([1, block.stride, block.stride])
                    .with_bias(false),
                device,
            )?,
        )];
        let widening = block.dim_in != block.dim_out;
        if widening || config.shortcut_norm == ShortcutNorm::Always {
            layers.push(("branch1_bn", bn(block.dim_out, device)));
        }
        Sequential::named(layers).into()
    };
    let sum = BroadcastReduce::new(vec![shortcut, main], Reduce::Sum, true)?;
    Ok(Sequential::new(vec![sum.into(), act(ActivationKind::Relu)]).into())
}

/// `head`: pointwise to the inner width, BN, ReLU, average pool over `pool_window` frames and
/// the whole feature map, pointwise to `conv5_dim`, ReLU, linear projection, softmax.
fn head<B: Backend>(
    config: &X3dConfig,
    dim: usize,
    dim_inner: usize,
    device: &B::Device,
) -> Result<Sequential<B>, ConfigError> {
    let spatial = config.head_spatial_size();
    Ok(Sequential::named(vec![
        (
            "conv_5",
            conv(pointwise(dim, dim_inner).with_bias(false), device)?,
        ),
        ("conv_5_bn", bn(dim_inner, device)),
        ("conv_5_relu", act(ActivationKind::Relu)),
        (
            "avg_pool",
            CoPoolConfig::avg([config.pool_window, spatial, spatial])
                .with_stride(Some([1, 1, 1]))
                .init()?
                .into(),
        ),
        (
            "lin_5",
            conv(
                pointwise(dim_inner, config.conv5_dim).with_bias(false),
                device,
            )?,
        ),
        ("lin_5_relu", act(ActivationKind::Relu)),
        (
            "projection",
            LinearConfig::new([config.conv5_dim, config.num_classes])
                .init(device)
                .into(),
        ),
        ("act", act(ActivationKind::Softmax)),
    ]))
}
