//! AGCN's adaptive graph convolution (2s-AGCN, Shi et al. 2019) in continual-skeletons'
//! `AdaptiveGraphConvolution` form, applied per frame as CoAGCN does.
//!
//! For each of the `K` subsets, the graph is the fixed adjacency plus a learned offset
//! (`A_k + B_k`, keys `A` and `graph_attn`) plus a data-dependent attention between joints,
//! `C_k = softmax_rows(θ_k(x)ᵀ φ_k(x) / c_e)` with 1×1 convs `θ_k` (`a_conv.{k}`) and `φ_k`
//! (`b_conv.{k}`) to `c_e = C_out / 4` channels, the softmax normalising over the first joint
//! index (torch `Softmax(-2)`). Then
//!
//! `y = relu(bn(Σ_k W_k · x · (A_k + B_k + C_k) + b_k) + shortcut(x))`
//!
//! with 1×1 convs `W_k` (`g_conv.{k}`) and the shortcut of [`crate::GcnUnit`].
//!
//! # Frame scope
//! The offline AGCN computes `C_k` from a whole clip (its embedding spans every frame, which
//! no stream can wait for); continual-skeletons' CoAGCN, and this module, compute it from each
//! frame alone (as CoX3D's squeeze-excitation is frame-scope). Offline and streamed outputs of
//! this module agree with each other; they differ from the clip-scope AGCN's.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::graph::{adjacency_param, persons_into_batch, persons_out_of_batch};
use crate::graph_unit::{Pointwise, Shortcut};
use crate::module::CoModule;
use crate::norm::{BatchNorm, BatchNormConfig};
use crate::per_frame::{frame_op_modules, FrameOp};
use crate::state::State;
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

frame_op_modules!(AdaptiveGcnUnit);

/// Channels of the joint embeddings: `C_out / EMBEDDING_DIVISOR` (continual-skeletons'
/// `coff_embedding`).
const EMBEDDING_DIVISOR: usize = 4;

/// Configuration of an [`AdaptiveGcnUnit`].
#[derive(Config, Debug)]
pub struct AdaptiveGcnUnitConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Adjacency subsets `K` and joints `V`.
    pub graph: [usize; 2],
}

impl AdaptiveGcnUnitConfig {
    /// Builds the unit with `adjacency` as `A` (`[K, V, V]` row-major) and `B_k = 1`, as
    /// continual-skeletons initialises `graph_attn`.
    ///
    /// # Errors
    /// [`ConfigError`] when `adjacency` does not hold `K · V · V` values or `C_out < 4`.
    pub fn init<B: Backend>(
        &self,
        adjacency: &[f32],
        device: &B::Device,
    ) -> Result<AdaptiveGcnUnit<B>, ConfigError> {
        let [c_in, c_out] = self.channels;
        let [k, v] = self.graph;
        let adjacency = adjacency_param("AdaptiveGcnUnit", adjacency, self.graph, device)?;
        let embedding = c_out / EMBEDDING_DIVISOR;
        if embedding == 0 || c_in == 0 {
            return Err(ConfigError::new(
                "AdaptiveGcnUnit",
                format!("channels {c_in} → {c_out}: the output needs at least {EMBEDDING_DIVISOR} channels for the joint embeddings"),
            ));
        }
        let per_subset = |c: usize| (0..k).map(|_| Pointwise::init([c_in, c], device)).collect();
        Ok(AdaptiveGcnUnit {
            adjacency,
            offset: Param::from_tensor(Tensor::ones([k, v, v], device)),
            g_conv: per_subset(c_out),
            a_conv: per_subset(embedding),
            b_conv: per_subset(embedding),
            bn: BatchNormConfig::new(c_out).init(device),
            shortcut: (c_in != c_out).then(|| Shortcut::init(self.channels, device)),
        })
    }
}

/// The adaptive graph convolution unit; see the module documentation. Frames are
/// `[N, C, V, P]`: joints along the first spatial dim, persons (each its own graph) along the
/// second.
#[derive(Module, Debug)]
pub struct AdaptiveGcnUnit<B: Backend> {
    /// The adjacency subsets `A_k`, `[K, V, V]` (not trained).
    pub adjacency: Param<Tensor<B, 3>>,
    /// The learned offsets `B_k` (`graph_attn`), `[K, V, V]`.
    pub offset: Param<Tensor<B, 3>>,
    /// `W_k`, one per subset.
    pub g_conv: Vec<Pointwise<B>>,
    /// `θ_k`, one per subset.
    pub a_conv: Vec<Pointwise<B>>,
    /// `φ_k`, one per subset.
    pub b_conv: Vec<Pointwise<B>>,
    /// BatchNorm after the sum over subsets.
    pub bn: BatchNorm<B>,
    /// The conv shortcut when the channel count changes (else the identity).
    pub shortcut: Option<Shortcut<B>>,
}

impl<B: Backend> FrameOp<B> for AdaptiveGcnUnit<B> {
    fn name(&self) -> &'static str {
        "adaptive_gcn_unit"
    }

    /// # Shapes
    /// - frames: `[N, C_in, V, P]`; output: `[N, C_out, V, P]`
    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let p = frames.dims()[3];
        // One graph per person: [N·P, C, V].
        let x = persons_into_batch(frames.clone());
        let graphs = self.adjacency.val() + self.offset.val();
        let mut sum: Option<Tensor<B, 3>> = None;
        for (k, ((g, a), b)) in self
            .g_conv
            .iter()
            .zip(&self.a_conv)
            .zip(&self.b_conv)
            .enumerate()
        {
            let theta = a.apply(x.clone()); // [NP, c_e, V]
            let phi = b.apply(x.clone());
            let embedding = theta.dims()[1];
            let attention =
                activation::softmax(theta.swap_dims(1, 2).matmul(phi) / embedding as f64, 1);
            let graph = attention + graphs.clone().narrow(0, k, 1);
            let z = g.apply(x.clone().matmul(graph));
            sum = Some(match sum {
                Some(s) => s + z,
                None => z,
            });
        }
        let out = sum.expect("a graph has at least one subset");
        let out = persons_out_of_batch(out, p);
        let residual = Shortcut::apply_or_identity(self.shortcut.as_ref(), frames);
        activation::relu(self.bn.apply(out) + residual)
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        let [k, v, _] = self.adjacency.dims();
        let device = self.adjacency.device();
        self.adjacency = Param::from_tensor(weights.take(
            &join_key(prefix, "A"),
            &[k, v, v],
            [k, v, v],
            &device,
        )?)
        .set_require_grad(false);
        self.offset = Param::from_tensor(weights.take(
            &join_key(prefix, "graph_attn"),
            &[k, v, v],
            [k, v, v],
            &device,
        )?);
        for (name, convs) in [
            ("g_conv", &mut self.g_conv),
            ("a_conv", &mut self.a_conv),
            ("b_conv", &mut self.b_conv),
        ] {
            for (i, conv) in convs.iter_mut().enumerate() {
                conv.load(weights, &join_key(prefix, &format!("{name}.{i}")))?;
            }
        }
        self.bn.load(weights, &join_key(prefix, "bn"))?;
        if let Some(shortcut) = &mut self.shortcut {
            shortcut.load(weights, prefix)?;
        }
        Ok(())
    }

    fn save(&self, weights: &mut Weights, prefix: &str) {
        let [k, v, _] = self.adjacency.dims();
        weights.put(join_key(prefix, "A"), self.adjacency.val(), &[k, v, v]);
        weights.put(
            join_key(prefix, "graph_attn"),
            self.offset.val(),
            &[k, v, v],
        );
        for (name, convs) in [
            ("g_conv", &self.g_conv),
            ("a_conv", &self.a_conv),
            ("b_conv", &self.b_conv),
        ] {
            for (i, conv) in convs.iter().enumerate() {
                conv.save(weights, &join_key(prefix, &format!("{name}.{i}")));
            }
        }
        self.bn.save(weights, &join_key(prefix, "bn"));
        if let Some(shortcut) = &self.shortcut {
            shortcut.save(weights, prefix);
        }
    }
}
