//! Multi-head self-attention weights and the offline (whole window) attention.
//!
//! Parameters are those of `torch.nn.MultiheadAttention` for self-attention: a packed
//! in-projection (`in_proj_weight` `[3d, d]`, `in_proj_bias` `[3d]`) or separate ones
//! (`q_proj_weight`, `k_proj_weight`, `v_proj_weight`, each `[d, d]`, with the packed
//! `in_proj_bias`), and `out_proj.weight` / `out_proj.bias`.

use burn::module::Param;
use burn::prelude::*;

use crate::error::{ConfigError, WeightError};
use crate::flex_kernel;
use crate::per_frame::{project_rows, FrameOp, Linear, LinearConfig};
use crate::state::{contiguous, index_tensor};
use crate::weights::{join_key, Weights};

/// How the checkpoint stores the query, key and value projections.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum InProjection {
    /// One `in_proj_weight` `[3d, d]` (torch's default when key and value sizes equal `d`).
    Packed,
    /// `q_proj_weight`, `k_proj_weight`, `v_proj_weight`, each `[d, d]`.
    Separate,
}

/// Multi-head self-attention over tokens of `d` features in `heads` heads.
#[derive(Module, Debug)]
pub struct MultiheadAttention<B: Backend> {
    /// Query, key and value projections side by side, `[d, 3d]` (transposed from PyTorch).
    pub in_proj: Param<Tensor<B, 2>>,
    /// Their biases, `[3d]`.
    pub in_bias: Option<Param<Tensor<B, 1>>>,
    /// The output projection.
    pub out_proj: Linear<B>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    layout: InProjection,
}

/// Queries (already scaled by `1/√head_dim`), keys and values of some tokens.
///
/// # Shapes
/// Each `[batch, heads, tokens, head_dim]`.
#[derive(Debug, Clone)]
pub struct Projected<B: Backend> {
    /// Scaled queries.
    pub q: Tensor<B, 4>,
    /// Keys.
    pub k: Tensor<B, 4>,
    /// Values.
    pub v: Tensor<B, 4>,
}

impl<B: Backend> MultiheadAttention<B> {
    /// Self-attention over `d_model` features in `heads` heads, weights and biases drawn
    /// uniformly in `±1/√d_model` (replaced when weights are loaded).
    ///
    /// # Errors
    /// If `heads` is 0 or does not divide `d_model`.
    pub fn new(
        d_model: usize,
        heads: usize,
        bias: bool,
        device: &B::Device,
    ) -> Result<Self, ConfigError> {
        if heads == 0 || d_model == 0 || !d_model.is_multiple_of(heads) {
            return Err(ConfigError::new(
                "MultiheadAttention",
                format!("d_model {d_model} is not a positive multiple of heads {heads}"),
            ));
        }
        let packed = LinearConfig::new([d_model, 3 * d_model])
            .with_bias(bias)
            .init::<B>(device);
        Ok(MultiheadAttention {
            in_proj: packed.weight,
            in_bias: packed.bias,
            out_proj: LinearConfig::new([d_model, d_model])
                .with_bias(bias)
                .init(device),
            heads,
            layout: InProjection::Packed,
        })
    }

    /// Features per token (`d`).
    pub fn d_model(&self) -> usize {
        self.in_proj.dims()[0]
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Features per head.
    pub fn head_dim(&self) -> usize {
        self.d_model() / self.heads
    }

    /// Projects tokens to scaled queries, keys and values, split into heads.
    ///
    /// # Shapes
    /// - tokens: `[batch, n, d]`; each output `[batch, heads, n, head_dim]`
    pub fn project(&self, tokens: Tensor<B, 3>) -> Projected<B> {
        let [q, k, v] = self.project_parts(tokens, 0);
        Projected {
            q: self.scaled(q),
            k,
            v,
        }
    }

    /// Queries scaled by `1/√head_dim`.
    fn scaled(&self, q: Tensor<B, 4>) -> Tensor<B, 4> {
        q * (1.0 / (self.head_dim() as f64).sqrt())
    }

    /// Projects tokens with `P` parts of the in-projection from part `first` on (0 queries,
    /// 1 keys, 2 values; queries unscaled), each split into heads.
    ///
    /// # Shapes
    /// - tokens: `[batch, n, d]`; each output `[batch, heads, n, head_dim]`
    fn project_parts<const P: usize>(
        &self,
        tokens: Tensor<B, 3>,
        first: usize,
    ) -> [Tensor<B, 4>; P] {
        let [batch, n, d] = tokens.dims();
        let columns = first * d..(first + P) * d;
        let weight = self.in_proj.val().narrow(1, columns.start, columns.len());
        let mut projected = project_rows(tokens.reshape([batch * n, d]), weight);
        if let Some(bias) = &self.in_bias {
            let bias = bias.val().narrow(0, columns.start, columns.len());
            projected = projected + bias.unsqueeze_dim(0);
        }
        let (heads, head_dim) = (self.heads, self.head_dim());
        let device = projected.device();
        // Gathered rather than sliced, and laid out afresh: the parts go into state windows
        // that are reshaped and concatenated, which cubecl backends get wrong for sliced and
        // permuted views (see `state::take_slots` and `state::contiguous`).
        let split = |part: usize| {
            let columns: Vec<usize> = (part * d..(part + 1) * d).collect();
            let gathered = projected
                .clone()
                .select(1, index_tensor::<B>(&columns, &device));
            if n == 1 {
                // One token (a step): `[batch, 1, heads, head_dim]` is already head-major.
                gathered.reshape([batch, heads, 1, head_dim])
            } else {
                contiguous(
                    gathered
                        .reshape([batch, n, heads, head_dim])
                        .swap_dims(1, 2),
                )
            }
        };
        std::array::from_fn(split)
    }

    /// Joins the heads of per-head attention outputs and applies the output projection.
    ///
    /// # Shapes
    /// - heads: `[batch, heads, n, head_dim]`; output `[batch, n, d]`
    pub fn merge(&self, heads: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, _, n, _] = heads.dims();
        let d = self.d_model();
        let joined = contiguous(heads.swap_dims(1, 2)).reshape([batch * n, d, 1, 1]);
        self.out_proj.apply(joined).reshape([batch, n, d])
    }

    /// Offline self-attention over a window of tokens: every query, or only the last one,
    /// against every key (no mask), as `torch.nn.MultiheadAttention`.
    ///
    /// # Shapes
    /// - tokens: `[batch, n, d]`; output `[batch, n, d]`, or `[batch, 1, d]` with `last_only`
    pub fn forward_window(&self, tokens: Tensor<B, 3>, last_only: bool) -> Tensor<B, 3> {
        if !last_only {
            let Projected { q, k, v } = self.project(tokens);
            return self.merge(attend(q, k, v));
        }
        // The last token's query only: a third less projection work than every query's.
        let n = tokens.dims()[1];
        let last = contiguous(tokens.clone().narrow(1, n - 1, 1));
        let [q] = self.project_parts(last, 0);
        let [k, v] = self.project_parts(tokens, 1);
        self.merge(attend(self.scaled(q), k, v))
    }

    /// Takes the projections from `weights` under `prefix`, packed or separate.
    ///
    /// # Errors
    /// [`WeightError`] naming a missing or mis-shaped key.
    pub fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        let d = self.d_model();
        let device = self.in_proj.device();
        let packed_key = join_key(prefix, "in_proj_weight");
        let stacked: Tensor<B, 2> = if weights.contains(&packed_key) {
            self.layout = InProjection::Packed;
            weights.take(&packed_key, &[3 * d, d], [3 * d, d], &device)?
        } else {
            self.layout = InProjection::Separate;
            let mut parts = Vec::with_capacity(3);
            for name in ["q_proj_weight", "k_proj_weight", "v_proj_weight"] {
                parts.push(weights.take::<B, 2>(
                    &join_key(prefix, name),
                    &[d, d],
                    [d, d],
                    &device,
                )?);
            }
            Tensor::cat(parts, 0)
        };
        self.in_proj = Param::from_tensor(stacked.transpose().detach());
        if self.in_bias.is_some() {
            let bias = weights.take(
                &join_key(prefix, "in_proj_bias"),
                &[3 * d],
                [3 * d],
                &device,
            )?;
            self.in_bias = Some(Param::from_tensor(bias));
        }
        self.out_proj.load(weights, &join_key(prefix, "out_proj"))
    }

    /// Puts the projections into `weights` in the layout they were loaded from.
    pub fn save(&self, weights: &mut Weights, prefix: &str) {
        let d = self.d_model();
        let stacked = self.in_proj.val().transpose();
        match self.layout {
            InProjection::Packed => {
                weights.put(join_key(prefix, "in_proj_weight"), stacked, &[3 * d, d])
            }
            InProjection::Separate => {
                for (i, name) in ["q_proj_weight", "k_proj_weight", "v_proj_weight"]
                    .iter()
                    .enumerate()
                {
                    weights.put(
                        join_key(prefix, name),
                        stacked.clone().narrow(0, i * d, d),
                        &[d, d],
                    );
                }
            }
        }
        if let Some(bias) = &self.in_bias {
            weights.put(join_key(prefix, "in_proj_bias"), bias.val(), &[3 * d]);
        }
        self.out_proj.save(weights, &join_key(prefix, "out_proj"));
    }
}

/// Scaled dot-product attention with a numerically stable softmax (the largest logit of each
/// query is subtracted before `exp`).
///
/// # Shapes
/// - q: `[batch, heads, queries, head_dim]` (already scaled), k and v `[batch, heads, n,
///   head_dim]`; output `[batch, heads, queries, head_dim]`
pub fn attend<B: Backend>(q: Tensor<B, 4>, k: Tensor<B, 4>, v: Tensor<B, 4>) -> Tensor<B, 4> {
    let SoftmaxSums {
        numerator,
        denominator,
        ..
    } = softmax_sums(q, k, v);
    numerator / denominator
}

/// [`attend`] for one query per head (a single-output step): on flex in one pass per head
/// (`flex_kernel::attend_one_query`); elsewhere with the logits computed as `k · qᵀ`, so
/// that the keys are read where they lie rather than transposed.
///
/// # Shapes
/// - q: `[batch, heads, 1, head_dim]` (already scaled), k and v `[batch, heads, n, head_dim]`;
///   output `[batch, heads, 1, head_dim]`
pub fn attend_one_query<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> Tensor<B, 4> {
    if let Some(attended) = flex_kernel::attend_one_query(&q, &k, &v) {
        return attended;
    }
    let [batch, heads, n, head_dim] = k.dims();
    // `[batch, heads, 1, head_dim]` and `[batch, heads, head_dim, 1]` share their layout, as do
    // the logits' `[batch, heads, n, 1]` and `[batch, heads, 1, n]`.
    let logits = k
        .matmul(q.reshape([batch, heads, head_dim, 1]))
        .reshape([batch, heads, 1, n]);
    let SoftmaxSums {
        numerator,
        denominator,
        ..
    } = sums_of_logits(logits, v);
    numerator / denominator
}

/// The parts of a softmax-weighted sum kept apart: `max` is each query's largest logit,
/// `denominator = Σ exp(l − max)` and `numerator = Σ exp(l − max) · v`.
///
/// # Shapes
/// `max`, `denominator`: `[batch, heads, queries, 1]`; `numerator`: `[batch, heads, queries,
/// head_dim]`.
#[derive(Debug, Clone)]
pub struct SoftmaxSums<B: Backend> {
    /// Largest logit of each query.
    pub max: Tensor<B, 4>,
    /// `Σ_j exp(l_j − max)`.
    pub denominator: Tensor<B, 4>,
    /// `Σ_j exp(l_j − max) v_j`.
    pub numerator: Tensor<B, 4>,
}

/// Each query's softmax sums over all keys, computed exactly.
///
/// # Shapes
/// - q: `[batch, heads, queries, head_dim]`, k and v `[batch, heads, n, head_dim]`
pub fn softmax_sums<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> SoftmaxSums<B> {
    sums_of_logits(q.matmul(k.swap_dims(2, 3)), v)
}

/// The softmax sums from the logits `[batch, heads, queries, n]` and values.
fn sums_of_logits<B: Backend>(logits: Tensor<B, 4>, v: Tensor<B, 4>) -> SoftmaxSums<B> {
    let max = logits.clone().max_dim(3);
    let weights = (logits - max.clone()).exp();
    SoftmaxSums {
        max,
        denominator: weights.clone().sum_dim(3),
        numerator: weights.matmul(v),
    }
}
