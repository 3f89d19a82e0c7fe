//! CoX3D as `../shared/golden/builders.py` (`CoX3D`) defines it, with the same module names,
//! so that the golden `cox3d_tiny` weights load by their PyTorch keys. (The model family moves
//! to the models crate with the video-models issue.)

use burn::prelude::*;
use costream_continual::{
    residual, Activation, ActivationKind, BatchNormConfig, BroadcastReduce, CoConvConfig, CoLayer,
    CoModule, CoPoolConfig, ConfigError, Delay, LinearConfig, PoolKind, Reduce, ResidualShrink,
    Sequential,
};

/// The hyper-parameters of `CoX3D(...)` in builders.py.
pub struct CoX3dSpec {
    pub dim_in: usize,
    pub image_size: usize,
    pub window: usize,
    pub num_classes: usize,
    pub conv1_dim: usize,
    pub conv5_dim: usize,
    pub width_factor: f64,
    pub depth_factor: f64,
    pub bottleneck_factor: f64,
    pub se_ratio: f64,
    /// `[blocks, channels, spatial stride]` per stage.
    pub block_basis: Vec<[usize; 3]>,
}

impl CoX3dSpec {
    /// `cox3d_tiny(width, se_ratio, window, image, num_classes, conv5_dim)`.
    pub fn tiny(
        width: usize,
        se_ratio: f64,
        window: usize,
        image: usize,
        num_classes: usize,
        conv5_dim: usize,
    ) -> Self {
        CoX3dSpec {
            dim_in: 3,
            image_size: image,
            window,
            num_classes,
            conv1_dim: width,
            conv5_dim,
            width_factor: 1.0,
            depth_factor: 1.0,
            bottleneck_factor: 2.25,
            se_ratio,
            block_basis: vec![[1, width, 2], [2, 2 * width, 2]],
        }
    }
}

/// X3D's channel rounding (`round_width` in builders.py).
fn round_width(width: usize, multiplier: f64, min_depth: usize, divisor: usize) -> usize {
    if multiplier == 0.0 {
        return width;
    }
    let width = width as f64 * multiplier;
    let min_depth = if min_depth == 0 { divisor } else { min_depth };
    let mut filters = min_depth.max((width + divisor as f64 / 2.0) as usize / divisor * divisor);
    if (filters as f64) < 0.9 * width {
        filters += divisor;
    }
    filters
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

/// `CoSe`: frame-scope squeeze-excitation, `x · σ(fc2(relu(fc1(pool(x)))))`.
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

/// `CoX3DTransform`: pointwise, depthwise 3×3×3, (SE), Swish, pointwise.
#[allow(clippy::too_many_arguments)]
fn transform<B: Backend>(
    dim_in: usize,
    dim_out: usize,
    stride: usize,
    dim_inner: usize,
    se_ratio: f64,
    block_idx: usize,
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    let mut layers: Vec<(&str, CoLayer<B>)> = vec![
        (
            "a",
            conv(pointwise(dim_in, dim_inner).with_bias(false), device)?,
        ),
        ("a_bn", bn(dim_inner, device)),
        ("a_relu", act(ActivationKind::Relu)),
        (
            "b",
            conv(
                CoConvConfig::new([dim_inner, dim_inner], [3, 3, 3])
                    .with_stride([1, stride, stride])
                    .with_padding([1, 1, 1])
                    .with_groups(dim_inner)
                    .with_bias(false),
                device,
            )?,
        ),
        ("b_bn", bn(dim_inner, device)),
    ];
    if se_ratio > 0.0 && (block_idx + 1) % 2 == 1 {
        layers.push(("se", squeeze_excite(dim_inner, se_ratio, device)?));
    }
    layers.push(("b_relu", act(ActivationKind::Silu)));
    layers.push((
        "c",
        conv(pointwise(dim_inner, dim_out).with_bias(false), device)?,
    ));
    layers.push(("c_bn", bn(dim_out, device)));
    Ok(Sequential::named(layers).into())
}

/// `CoResBlock`: `relu(residual(x) + transform(x))`.
fn res_block<B: Backend>(
    dim_in: usize,
    dim_out: usize,
    stride: usize,
    dim_inner: usize,
    block_idx: usize,
    se_ratio: f64,
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    let main: CoLayer<B> = Sequential::named(vec![(
        "branch2",
        transform(
            dim_in, dim_out, stride, dim_inner, se_ratio, block_idx, device,
        )?,
    )])
    .into();
    let res: CoLayer<B> = if dim_in == dim_out && stride == 1 {
        Delay::new(main.timing().delay).into()
    } else {
        Sequential::named(vec![
            (
                "branch1",
                conv(
                    pointwise(dim_in, dim_out)
                        .with_stride([1, stride, stride])
                        .with_bias(false),
                    device,
                )?,
            ),
            ("branch1_bn", bn(dim_out, device)),
        ])
        .into()
    };
    let sum = BroadcastReduce::new(vec![res, main], Reduce::Sum, true)?;
    Ok(Sequential::new(vec![sum.into(), act(ActivationKind::Relu)]).into())
}

/// The whole CoX3D (without the final `view`, which only flattens `[B, classes, 1, 1]`).
pub fn cox3d<B: Backend>(
    spec: &CoX3dSpec,
    device: &B::Device,
) -> Result<Sequential<B>, ConfigError> {
    let dim_res1 = round_width(spec.conv1_dim, spec.width_factor, 8, 8);
    let stem = Sequential::named(vec![(
        "pathway0_stem",
        CoLayer::from(Sequential::named(vec![
            (
                "conv_xy",
                conv(
                    CoConvConfig::new([spec.dim_in, dim_res1], [1, 3, 3])
                        .with_stride([1, 2, 2])
                        .with_padding([0, 1, 1])
                        .with_bias(false),
                    device,
                )?,
            ),
            (
                "conv",
                conv(
                    CoConvConfig::new([dim_res1, dim_res1], [5, 1, 1])
                        .with_padding([2, 0, 0])
                        .with_groups(dim_res1)
                        .with_bias(false),
                    device,
                )?,
            ),
            ("bn", bn(dim_res1, device)),
            ("relu", act(ActivationKind::Relu)),
        ])),
    )]);
    let mut stages: Vec<(String, CoLayer<B>)> = vec![("s1".into(), stem.into())];
    let mut d_in = dim_res1;
    let mut spatial = spec.image_size.div_ceil(2);
    let (mut d_out, mut d_inner) = (d_in, d_in);
    for (stage, &[blocks, channels, stride]) in spec.block_basis.iter().enumerate() {
        d_out = round_width(channels, spec.width_factor, 8, 8);
        d_inner = (spec.bottleneck_factor * d_out as f64) as usize;
        let repeats = (spec.depth_factor * blocks as f64).ceil() as usize;
        let mut layers = Vec::new();
        for i in 0..repeats {
            let (c_in, s) = if i == 0 { (d_in, stride) } else { (d_out, 1) };
            layers.push((
                format!("pathway0_res{i}"),
                res_block(c_in, d_out, s, d_inner, i, spec.se_ratio, device)?,
            ));
        }
        stages.push((format!("s{}", stage + 2), Sequential::named(layers).into()));
        d_in = d_out;
        spatial = spatial.div_ceil(stride);
    }
    let head = Sequential::named(vec![
        (
            "conv_5",
            conv(pointwise(d_out, d_inner).with_bias(false), device)?,
        ),
        ("conv_5_bn", bn(d_inner, device)),
        ("conv_5_relu", act(ActivationKind::Relu)),
        (
            "avg_pool",
            CoPoolConfig::avg([spec.window, spatial, spatial])
                .with_stride(Some([1, 1, 1]))
                .init()?
                .into(),
        ),
        (
            "lin_5",
            conv(pointwise(d_inner, spec.conv5_dim).with_bias(false), device)?,
        ),
        ("lin_5_relu", act(ActivationKind::Relu)),
        (
            "projection",
            LinearConfig::new([spec.conv5_dim, spec.num_classes])
                .init(device)
                .into(),
        ),
        ("act", act(ActivationKind::Softmax)),
    ]);
    stages.push(("head".into(), head.into()));
    Ok(Sequential::named(stages))
}
