//! S-TR's spatial self-attention unit (Plizzari et al. 2021) in continual-skeletons'
//! `GcnUnitAttention` form (`only_attention=True`, no relative positions, no adjacency
//! term): the joints of each frame attend to each other in `heads` heads.
//!
//! Per frame and person, with `x` `[C_in, V]`:
//! 1. `x̂ = data_bn(x)`, a BatchNorm over the `C_in · V` values (index `c · V + v`);
//! 2. `q, k, v = split(W_qkv · x̂ + b)` into `d_k, d_k, d_v` channels (`d_k = ⌊C_out / 4⌋`,
//!    `d_v = C_out`), each split head-major into `heads` heads; `q` scaled by `(d_k/heads)^-½`;
//! 3. per head, `softmax_keys(qᵀ k) · vᵀ` over the joints, heads joined, then a 1×1 conv
//!    `W_o` (`attn_out`);
//! 4. `y = relu(bn(attn + x))` when `C_in = C_out`, else `relu(bn(attn))`.
//!
//! PyTorch keys: `data_bn.*`, `attention_conv.qkv_conv.{weight,bias}` (`[2d_k + d_v, C_in, 1,
//! 1]`), `attention_conv.attn_out.{weight,bias}` (`[d_v, d_v, 1, 1]`), `bn.*`, and `A`
//! (`[K, V, V]`, saved by the reference but unused in this form: kept only to save it back).
//!
//! Attention within a frame needs no other frame: streamed and offline outputs agree exactly.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::graph::{adjacency_param, persons_into_batch, persons_out_of_batch};
use crate::graph_unit::Pointwise;
use crate::module::CoModule;
use crate::norm::{BatchNorm, BatchNormConfig};
use crate::per_frame::{frame_op_modules, FrameOp};
use crate::state::{contiguous, State};
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

frame_op_modules!(AttentionGcnUnit);

/// Configuration of an [`AttentionGcnUnit`].
#[derive(Config, Debug)]
pub struct AttentionGcnUnitConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Adjacency subsets `K` (only for the unused `A` key) and joints `V`.
    pub graph: [usize; 2],
    /// Attention heads (`Nh`, 8 in S-TR).
    #[config(default = 8)]
    pub heads: usize,
}

impl AttentionGcnUnitConfig {
    /// Builds the unit with random weights (replaced when weights are loaded) and
    /// `adjacency` as the unused `A` (`[K, V, V]` row-major).
    ///
    /// # Errors
    /// [`ConfigError`] when the heads do not divide `d_k = ⌊C_out / 4⌋` and `d_v = C_out`.
    pub fn init<B: Backend>(
        &self,
        adjacency: &[f32],
        device: &B::Device,
    ) -> Result<AttentionGcnUnit<B>, ConfigError> {
        let [c_in, c_out] = self.channels;
        let v = self.graph[1];
        let adjacency = adjacency_param("AttentionGcnUnit", adjacency, self.graph, device)?;
        let d_k = c_out / 4;
        if self.heads == 0
            || d_k == 0
            || d_k % self.heads != 0
            || c_out % self.heads != 0
            || c_in == 0
        {
            return Err(ConfigError::new(
                "AttentionGcnUnit",
                format!(
                    "{} heads must divide d_k = {d_k} and d_v = {c_out} (channels {c_in} → {c_out})",
                    self.heads
                ),
            ));
        }
        Ok(AttentionGcnUnit {
            data_bn: BatchNormConfig::new(c_in * v).init(device),
            qkv: Pointwise::init([c_in, 2 * d_k + c_out], device),
            attn_out: Pointwise::init([c_out, c_out], device),
            bn: BatchNormConfig::new(c_out).init(device),
            adjacency,
            heads: self.heads,
        })
    }
}

/// The spatial self-attention unit; see the module documentation. Frames are `[N, C, V, P]`.
#[derive(Module, Debug)]
pub struct AttentionGcnUnit<B: Backend> {
    /// BatchNorm over each frame's `C_in · V` values.
    pub data_bn: BatchNorm<B>,
    /// The query, key and value projection.
    pub qkv: Pointwise<B>,
    /// The output projection.
    pub attn_out: Pointwise<B>,
    /// BatchNorm before the ReLU.
    pub bn: BatchNorm<B>,
    /// The checkpoint's `A`, `[K, V, V]`: not used by this form.
    pub adjacency: Param<Tensor<B, 3>>,
    #[module(skip)]
    heads: usize,
}

impl<B: Backend> FrameOp<B> for AttentionGcnUnit<B> {
    fn name(&self) -> &'static str {
        "attention_gcn_unit"
    }

    /// # Shapes
    /// - frames: `[N, C_in, V, P]`; output: `[N, C_out, V, P]`
    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c_in, v, p] = frames.dims();
        let heads = self.heads;
        let c_out = self.attn_out.bias.dims()[0];
        let d_k = (self.qkv.bias.dims()[0] - c_out) / 2;
        // Per person: [N·P, C, V].
        let x = persons_into_batch(frames.clone());
        let normed = self
            .data_bn
            .apply(x.reshape([n * p, c_in * v, 1, 1]))
            .reshape([n * p, c_in, v]);
        let qkv = self.qkv.apply(normed);
        let split = |start: usize, width: usize| {
            qkv.clone()
                .narrow(1, start, width)
                .reshape([n * p, heads, width / heads, v])
        };
        let q = split(0, d_k) * ((d_k / heads) as f64).powf(-0.5);
        let k = split(d_k, d_k);
        let values = split(2 * d_k, c_out);
        // [NP, heads, V(query), V(key)], softmax over keys.
        let weights = activation::softmax(q.swap_dims(2, 3).matmul(k), 3);
        // [NP, heads, V, d_v/heads] → [NP, heads, d_v/heads, V] → [NP, d_v, V]
        let attended = contiguous(weights.matmul(values.swap_dims(2, 3)).swap_dims(2, 3))
            .reshape([n * p, c_out, v]);
        let mut y = persons_out_of_batch(self.attn_out.apply(attended), p);
        if c_in == c_out {
            y = y + frames;
        }
        activation::relu(self.bn.apply(y))
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        self.data_bn.load(weights, &join_key(prefix, "data_bn"))?;
        self.qkv
            .load(weights, &join_key(prefix, "attention_conv.qkv_conv"))?;
        self.attn_out
            .load(weights, &join_key(prefix, "attention_conv.attn_out"))?;
        self.bn.load(weights, &join_key(prefix, "bn"))?;
        let [k, v, _] = self.adjacency.dims();
        let device = self.adjacency.device();
        self.adjacency = Param::from_tensor(weights.take(
            &join_key(prefix, "A"),
            &[k, v, v],
            [k, v, v],
            &device,
        )?)
        .set_require_grad(false);
        Ok(())
    }

    fn save(&self, weights: &mut Weights, prefix: &str) {
        self.data_bn.save(weights, &join_key(prefix, "data_bn"));
        self.qkv
            .save(weights, &join_key(prefix, "attention_conv.qkv_conv"));
        self.attn_out
            .save(weights, &join_key(prefix, "attention_conv.attn_out"));
        self.bn.save(weights, &join_key(prefix, "bn"));
        let [k, v, _] = self.adjacency.dims();
        weights.put(join_key(prefix, "A"), self.adjacency.val(), &[k, v, v]);
    }
}
