//! The golden set's ST-GCN constructions (`../shared/golden/builders.py`): `StGcnBlock`, a
//! continual ST-GCN block with mmskeleton's graph convolution, and `stgcn_net`, three of them.
//! Built from the library's containers so that the PyTorch key names come out the same.

use burn::prelude::*;
use costream_continual::{
    residual, Activation, ActivationKind, BatchNormConfig, BroadcastReduce, CoConvConfig, CoLayer,
    ConfigError, GraphConvConfig, GraphConvLayout, Reduce, ResidualShrink, Sequential,
};
use costream_models::stgcn::temporal_conv;

/// One block's shape.
#[derive(Debug, Clone, Copy)]
pub struct StGcnBlockShape {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Adjacency subsets `K` and joints `V`.
    pub graph: [usize; 2],
    /// Temporal kernel of the temporal conv (padded to keep the length).
    pub temporal_kernel: usize,
    /// Temporal stride.
    pub stride: usize,
    /// Whether the block has a residual (identity when the shape allows, else a 1×1 conv).
    pub residual: bool,
}

fn relu<B: Backend>() -> CoLayer<B> {
    Activation::new(ActivationKind::Relu).into()
}

/// `StGcnBlock(c_in, c_out, A, kt, stride, residual)`: graph conv, BN, ReLU, temporal conv
/// `(kt, 1)`, BN, the residual, ReLU. `A` is loaded with the weights.
///
/// # Errors
/// [`ConfigError`] for shapes the containers reject.
pub fn st_gcn_block<B: Backend>(
    shape: StGcnBlockShape,
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    let [c_in, c_out] = shape.channels;
    let pad = (shape.temporal_kernel - 1) / 2;
    let gcn = Sequential::named(vec![
        (
            "gcn",
            GraphConvConfig::new([c_in, c_out], shape.graph)
                .with_layout(GraphConvLayout::Mmskeleton)
                .init(None, device)?
                .into(),
        ),
        ("gcn_bn", BatchNormConfig::new(c_out).init(device).into()),
        ("gcn_relu", relu()),
    ]);
    let tcn = temporal_conv(
        [c_out, c_out],
        shape.temporal_kernel,
        pad,
        shape.stride,
        device,
    )?;
    let main: CoLayer<B> = Sequential::named(vec![("gcn", gcn.into()), ("tcn", tcn)]).into();
    let block = if !shape.residual {
        vec![("main", main), ("relu", relu())]
    } else if c_in == c_out && shape.stride == 1 {
        let res = residual(main, Reduce::Sum, ResidualShrink::None)?;
        vec![("res", res.into()), ("relu", relu())]
    } else {
        let shortcut = Sequential::named(vec![
            (
                "conv",
                CoConvConfig::new([c_in, c_out], [1, 1, 1])
                    .with_stride([shape.stride, 1, 1])
                    .with_spatial_dims(1)
                    .init(device)?
                    .into(),
            ),
            ("bn", BatchNormConfig::new(c_out).init(device).into()),
        ]);
        let res = BroadcastReduce::new(vec![shortcut.into(), main], Reduce::Sum, true)?;
        vec![("res", res.into()), ("relu", relu())]
    };
    Ok(Sequential::named(block).into())
}

/// `stgcn_net(c_in, c_hidden, A, kt)`: a block without residual `c_in → c_hidden`, one with an
/// identity residual, and one with a conv residual `c_hidden → c_hidden + 4`.
///
/// # Errors
/// [`ConfigError`] for shapes the containers reject.
pub fn stgcn_net<B: Backend>(
    channels: [usize; 2],
    graph: [usize; 2],
    temporal_kernel: usize,
    device: &B::Device,
) -> Result<CoLayer<B>, ConfigError> {
    let [c_in, hidden] = channels;
    let block = |channels, residual| StGcnBlockShape {
        channels,
        graph,
        temporal_kernel,
        stride: 1,
        residual,
    };
    Ok(Sequential::named(vec![
        (
            "layer1",
            st_gcn_block(block([c_in, hidden], false), device)?,
        ),
        (
            "layer2",
            st_gcn_block(block([hidden, hidden], true), device)?,
        ),
        (
            "layer3",
            st_gcn_block(block([hidden, hidden + 4], true), device)?,
        ),
    ])
    .into())
}
