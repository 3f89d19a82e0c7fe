//! continual-skeletons' `GraphConvolution` as one per-frame module: the per-subset graph
//! convolution, BatchNorm, a shortcut (identity, or a 1×1 conv and BatchNorm when the channel
//! count changes) and ReLU: `relu(bn(graph(x)) + shortcut(x))`.

use burn::module::Param;
use burn::prelude::*;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::graph::{GraphConv, GraphConvConfig, GraphConvLayout};
use crate::module::CoModule;
use crate::norm::{BatchNorm, BatchNormConfig};
use crate::per_frame::{eager, frame_op_modules, FrameOp};
use crate::state::State;
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

frame_op_modules!(GcnUnit);

/// Configuration of a [`GcnUnit`].
#[derive(Config, Debug)]
pub struct GcnUnitConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Adjacency subsets `K` and joints `V`.
    pub graph: [usize; 2],
}

impl GcnUnitConfig {
    /// Builds the unit with `adjacency` as `A` (`[K, V, V]` row-major; zeros when `None`).
    ///
    /// # Errors
    /// [`ConfigError`] when `adjacency` does not hold `K · V · V` values.
    pub fn init<B: Backend>(
        &self,
        adjacency: Option<&[f32]>,
        device: &B::Device,
    ) -> Result<GcnUnit<B>, ConfigError> {
        let [c_in, c_out] = self.channels;
        Ok(GcnUnit {
            graph: GraphConvConfig::new(self.channels, self.graph)
                .with_layout(GraphConvLayout::PerSubset)
                .init(adjacency, device)?,
            bn: BatchNormConfig::new(c_out).init(device),
            shortcut: (c_in != c_out).then(|| Shortcut::init(self.channels, device)),
        })
    }
}

/// A 1×1 convolution as a matrix and bias.
#[derive(Module, Debug)]
pub struct Pointwise<B: Backend> {
    /// `[C_out, C_in]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[C_out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Pointwise<B> {
    /// Random weights in `±1/√C_in` (replaced when weights are loaded).
    pub(crate) fn init(channels: [usize; 2], device: &B::Device) -> Self {
        let [c_in, c_out] = channels;
        let bound = 1.0 / (c_in.max(1) as f64).sqrt();
        let init = burn::nn::Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        Pointwise {
            weight: eager(init.init([c_out, c_in], device)),
            bias: eager(init.init([c_out], device)),
        }
    }

    /// # Shapes
    /// - x: `[N, C_in, L]`; output `[N, C_out, L]`
    pub(crate) fn apply(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let c_out = self.bias.dims()[0];
        self.weight.val().unsqueeze_dim::<3>(0).matmul(x) + self.bias.val().reshape([1, c_out, 1])
    }

    /// Takes `{prefix}.weight` (`[C_out, C_in, 1, 1]`) and `{prefix}.bias`.
    pub(crate) fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        let device = self.weight.device();
        let [c_out, c_in] = self.weight.dims();
        self.weight = Param::from_tensor(weights.take(
            &join_key(prefix, "weight"),
            &[c_out, c_in, 1, 1],
            [c_out, c_in],
            &device,
        )?);
        self.bias = Param::from_tensor(weights.take(
            &join_key(prefix, "bias"),
            &[c_out],
            [c_out],
            &device,
        )?);
        Ok(())
    }

    /// Puts the tensors as [`Pointwise::load`] takes them.
    pub(crate) fn save(&self, weights: &mut Weights, prefix: &str) {
        let [c_out, c_in] = self.weight.dims();
        weights.put(
            join_key(prefix, "weight"),
            self.weight.val(),
            &[c_out, c_in, 1, 1],
        );
        weights.put(join_key(prefix, "bias"), self.bias.val(), &[c_out]);
    }
}

/// The 1×1 conv and BatchNorm of a shortcut that changes the channel count.
#[derive(Module, Debug)]
pub struct Shortcut<B: Backend> {
    /// The 1×1 conv, `C_in → C_out`.
    pub conv: Pointwise<B>,
    /// The BatchNorm after it.
    pub bn: BatchNorm<B>,
}

impl<B: Backend> Shortcut<B> {
    /// A shortcut `[c_in, c_out]` with random weights (replaced when weights are loaded).
    pub(crate) fn init(channels: [usize; 2], device: &B::Device) -> Self {
        Shortcut {
            conv: Pointwise::init(channels, device),
            bn: BatchNormConfig::new(channels[1]).init(device),
        }
    }

    /// The shortcut of `frames`: `shortcut`'s conv and BatchNorm, or the frames themselves.
    ///
    /// # Shapes
    /// - frames: `[N, C_in, V, P]`; output `[N, C_out, V, P]`
    pub(crate) fn apply_or_identity(shortcut: Option<&Self>, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let Some(shortcut) = shortcut else {
            return frames;
        };
        let [n, c_in, v, p] = frames.dims();
        let mixed = shortcut.conv.apply(frames.reshape([n, c_in, v * p]));
        let c_out = mixed.dims()[1];
        shortcut.bn.apply(mixed.reshape([n, c_out, v, p]))
    }

    /// Takes `gcn_residual.0.{weight,bias}` (`[C_out, C_in, 1, 1]`) and `gcn_residual.1.*`
    /// (BatchNorm) under `prefix`.
    pub(crate) fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        self.conv
            .load(weights, &join_key(prefix, "gcn_residual.0"))?;
        self.bn.load(weights, &join_key(prefix, "gcn_residual.1"))
    }

    /// Puts the tensors as [`Shortcut::load`] takes them.
    pub(crate) fn save(&self, weights: &mut Weights, prefix: &str) {
        self.conv.save(weights, &join_key(prefix, "gcn_residual.0"));
        self.bn.save(weights, &join_key(prefix, "gcn_residual.1"));
    }
}

/// `relu(bn(graph(x)) + shortcut(x))` per frame. PyTorch keys: the graph conv's
/// (`g_conv.{k}.*`, `A`, `graph_attn`), `bn.*`, and with a conv shortcut
/// `gcn_residual.0.{weight,bias}` (`[C_out, C_in, 1, 1]`) and `gcn_residual.1.*` (BatchNorm).
#[derive(Module, Debug)]
pub struct GcnUnit<B: Backend> {
    /// The graph convolution.
    pub graph: GraphConv<B>,
    /// BatchNorm after it.
    pub bn: BatchNorm<B>,
    /// The conv shortcut, when the channel count changes (else the identity).
    pub shortcut: Option<Shortcut<B>>,
}

impl<B: Backend> FrameOp<B> for GcnUnit<B> {
    fn name(&self) -> &'static str {
        "gcn_unit"
    }

    /// # Shapes
    /// - frames: `[N, C_in, V, P]`; output: `[N, C_out, V, P]`
    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let residual = Shortcut::apply_or_identity(self.shortcut.as_ref(), frames.clone());
        burn::tensor::activation::relu(self.bn.apply(self.graph.apply(frames)) + residual)
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        self.graph.load(weights, prefix)?;
        self.bn.load(weights, &join_key(prefix, "bn"))?;
        if let Some(shortcut) = &mut self.shortcut {
            shortcut.load(weights, prefix)?;
        }
        Ok(())
    }

    fn save(&self, weights: &mut Weights, prefix: &str) {
        self.graph.save(weights, prefix);
        self.bn.save(weights, &join_key(prefix, "bn"));
        if let Some(shortcut) = &self.shortcut {
            shortcut.save(weights, prefix);
        }
    }
}
