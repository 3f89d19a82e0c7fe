//! Spatial graph convolution over skeleton joints, per frame (ST-GCN's spatial part).
//!
//! With `K` adjacency subsets `A_k` (`[V, V]`, e.g. ST-GCN's spatial-configuration partition)
//! and a learned element-wise mask `E_k` of the same shape, one frame `x` (`[C_in, V]`) maps to
//!
//! `y = Σ_k W_k · x · (A_k ⊙ E_k) + bias`
//!
//! where `W_k` is a `[C_out, C_in]` 1×1 convolution per subset. Two checkpoint layouts differ
//! in where the bias sits and how tensors are named ([`GraphConvLayout`]).

use burn::module::Param;
use burn::prelude::*;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::module::CoModule;
use crate::per_frame::{eager, frame_op_modules, per_channel, FrameOp};
use crate::state::{contiguous, State};
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

frame_op_modules!(GraphConv);

/// The adjacency subsets `A` (`[K, V, V]`, row-major `values`) as a parameter that is not
/// trained.
///
/// # Errors
/// [`ConfigError`] of `module` when `values` does not hold `K · V · V` values.
pub(crate) fn adjacency_param<B: Backend>(
    module: &'static str,
    values: &[f32],
    graph: [usize; 2],
    device: &B::Device,
) -> Result<Param<Tensor<B, 3>>, ConfigError> {
    let [k, v] = graph;
    if values.len() != k * v * v {
        return Err(ConfigError::new(
            module,
            format!(
                "the adjacency holds {} values; {k} subsets of {v}×{v} joints need {}",
                values.len(),
                k * v * v
            ),
        ));
    }
    let tensor = Tensor::from_data(TensorData::new(values.to_vec(), [k, v, v]), device);
    Ok(Param::from_tensor(tensor).set_require_grad(false))
}

/// Skeleton frames with each person as its own batch row, laid out afresh (see
/// [`contiguous`] for why).
///
/// # Shapes
/// - frames: `[N, C, V, P]`; output `[N·P, C, V]`
pub(crate) fn persons_into_batch<B: Backend>(frames: Tensor<B, 4>) -> Tensor<B, 3> {
    let [n, c, v, p] = frames.dims();
    if p == 1 {
        contiguous(frames).reshape([n, c, v])
    } else {
        contiguous(frames.permute([0, 3, 1, 2])).reshape([n * p, c, v])
    }
}

/// The inverse of [`persons_into_batch`].
///
/// # Shapes
/// - rows: `[N·P, C, V]`; output `[N, C, V, P]`
pub(crate) fn persons_out_of_batch<B: Backend>(rows: Tensor<B, 3>, persons: usize) -> Tensor<B, 4> {
    let [np, c, v] = rows.dims();
    let n = np / persons;
    if persons == 1 {
        rows.reshape([n, c, v, 1])
    } else {
        contiguous(rows.reshape([n, persons, c, v]).permute([0, 2, 3, 1]))
    }
}

/// How a graph convolution's tensors are named and where its bias applies.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum GraphConvLayout {
    /// mmskeleton / ST-GCN's `ConvTemporalGraphical` (t_kernel 1): one 1×1 conv to `K·C_out`
    /// channels before the graph, so each subset's bias is spread by the graph:
    /// `y = Σ_k (W_k·x + b_k) · (A_k ⊙ E_k)`. Keys: `conv.weight` `[K·C_out, C_in, 1, 1]`,
    /// `conv.bias` `[K·C_out]`, `A` `[K, V, V]`, `edge_importance` `[K, V, V]`.
    Mmskeleton,
    /// continual-skeletons' `GraphConvolution`: a 1×1 conv per subset after the graph:
    /// `y = Σ_k (W_k·(x · (A_k ⊙ E_k)) + b_k)`. Keys: `g_conv.{k}.weight`
    /// `[C_out, C_in, 1, 1]`, `g_conv.{k}.bias` `[C_out]`, `A` `[K, V, V]`, `graph_attn`
    /// `[K, V, V]`.
    PerSubset,
}

/// Configuration of a [`GraphConv`].
#[derive(Config, Debug)]
pub struct GraphConvConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Adjacency subsets `K` and joints `V`.
    pub graph: [usize; 2],
    /// Checkpoint layout.
    #[config(default = "GraphConvLayout::Mmskeleton")]
    pub layout: GraphConvLayout,
}

impl GraphConvConfig {
    /// Builds the layer with PyTorch's default conv initialisation, `adjacency` as `A`
    /// (`[K, V, V]`, row-major; zeros when `None`, to be loaded) and an all-ones mask.
    ///
    /// # Shapes
    /// - adjacency: `K · V · V` values
    ///
    /// # Errors
    /// [`ConfigError`] when `adjacency` does not hold `K · V · V` values.
    pub fn init<B: Backend>(
        &self,
        adjacency: Option<&[f32]>,
        device: &B::Device,
    ) -> Result<GraphConv<B>, ConfigError> {
        let [c_in, c_out] = self.channels;
        let [k, v] = self.graph;
        let bound = 1.0 / (c_in.max(1) as f64).sqrt();
        let init = burn::nn::Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        let adjacency = match adjacency {
            Some(values) => adjacency_param("GraphConv", values, self.graph, device)?,
            None => Param::from_tensor(Tensor::zeros([k, v, v], device)).set_require_grad(false),
        };
        Ok(GraphConv {
            weight: eager(init.init([c_out * k, c_in], device)),
            bias: eager(init.init([k, c_out], device)),
            adjacency,
            mask: Param::from_tensor(Tensor::ones([k, v, v], device)),
            layout: self.layout,
        })
    }
}

/// A spatial graph convolution applied to every frame (see the module docs). Frames are
/// `[N, C, V, P]`: joints along the first spatial dim, persons (or 1) along the second.
#[derive(Module, Debug)]
pub struct GraphConv<B: Backend> {
    /// The per-subset 1×1 convolutions, stacked channel-major: `[C_out·K, C_in]`, row
    /// `c·K + k` is subset `k`'s output channel `c` (so that the graph product needs no
    /// transposition; see [`GraphConv::subset_major`]).
    weight: Param<Tensor<B, 2>>,
    /// Their biases, `[K, C_out]`.
    pub bias: Param<Tensor<B, 2>>,
    /// The adjacency subsets `A`, `[K, V, V]` (a buffer: not trained).
    pub adjacency: Param<Tensor<B, 3>>,
    /// The learned mask `E` (`edge_importance` or `graph_attn`), `[K, V, V]`.
    pub mask: Param<Tensor<B, 3>>,
    #[module(skip)]
    layout: GraphConvLayout,
}

impl<B: Backend> GraphConv<B> {
    /// Adjacency subsets `K` and joints `V`.
    pub fn graph(&self) -> [usize; 2] {
        let [k, v, _] = self.adjacency.dims();
        [k, v]
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.bias.dims()[1]
    }

    /// The 1×1 convolutions as the checkpoints stack them, subset-major: `[K·C_out, C_in]`.
    pub fn subset_major(&self) -> Tensor<B, 2> {
        let [k, _] = self.graph();
        regroup_rows(self.weight.val(), self.out_channels(), k)
    }

    /// The graph of every subset acting on joints and persons, subsets stacked along the
    /// rows: `G[(k, v, p), (w, q)] = (A_k ⊙ E_k)[v, w] · δ(p, q)`, computed as one product
    /// `(A ⊙ E) · T` with `T[w', (p, w, q)] = δ(w', w) · δ(p, q)` (the CPU backend runs a
    /// broadcasting multiply of these shapes through a scalar strided loop, 20% of a
    /// CoST-GCN* step, and a product on its SIMD kernels).
    ///
    /// # Shapes
    /// - output: `[K·V·P, V·P]`
    fn person_graph(&self, persons: usize) -> Tensor<B, 2> {
        let [k, v] = self.graph();
        let graph = (self.adjacency.val() * self.mask.val()).reshape([k * v, v]);
        if persons == 1 {
            return graph;
        }
        let columns = persons * v * persons;
        let mut spread = vec![0.0f32; v * columns];
        for w in 0..v {
            for p in 0..persons {
                spread[w * columns + p * v * persons + w * persons + p] = 1.0;
            }
        }
        let spread =
            Tensor::<B, 1>::from_floats(spread.as_slice(), &graph.device()).reshape([v, columns]);
        graph.matmul(spread).reshape([k * v * persons, v * persons])
    }
}

/// A stack of `[outer, inner]` blocks of rows, regrouped as `[inner, outer]`.
///
/// # Shapes
/// - rows: `[outer·inner, C]`; output `[inner·outer, C]`
fn regroup_rows<B: Backend>(rows: Tensor<B, 2>, outer: usize, inner: usize) -> Tensor<B, 2> {
    let c = rows.dims()[1];
    contiguous(rows.reshape([outer, inner, c]).swap_dims(0, 1)).reshape([outer * inner, c])
}

impl<B: Backend> FrameOp<B> for GraphConv<B> {
    fn name(&self) -> &'static str {
        "graph_conv"
    }

    /// # Shapes
    /// - frames: `[N, C_in, V, P]`; output: `[N, C_out, V, P]` (each of the `P` persons alike)
    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c_in, v, persons] = frames.dims();
        let [k, _] = self.graph();
        let c_out = self.out_channels();
        // Joints and persons stay together as the columns `(v, p)`, and the rows of W_k·x
        // come out as `(c, k)`, so both products read their operands as they lie.
        // W_k · x for every subset at once: [1, C_out·K, C_in] @ [N, C_in, V·P].
        let x = frames.reshape([n, c_in, v * persons]);
        let mut mixed = self.weight.val().unsqueeze_dim::<3>(0).matmul(x);
        if self.layout == GraphConvLayout::Mmskeleton {
            let bias = contiguous(self.bias.val().swap_dims(0, 1));
            mixed = mixed + bias.reshape([1, c_out * k, 1]);
        }
        // Σ_k over subsets and joints: [N·C_out, K·V·P] @ [K·V·P, V·P].
        let mut out = mixed
            .reshape([n * c_out, k * v * persons])
            .matmul(self.person_graph(persons))
            .reshape([n, c_out, v, persons]);
        if self.layout == GraphConvLayout::PerSubset {
            out = out + per_channel(self.bias.val().sum_dim(0).reshape([c_out]), n);
        }
        out
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        let device = self.weight.device();
        let [k, v] = self.graph();
        let c_out = self.out_channels();
        let c_in = self.weight.dims()[1];
        let key = |name: &str| join_key(prefix, name);
        let (weight, bias, mask_key) = match self.layout {
            GraphConvLayout::Mmskeleton => (
                weights.take(
                    &key("conv.weight"),
                    &[k * c_out, c_in, 1, 1],
                    [k * c_out, c_in],
                    &device,
                )?,
                weights.take(&key("conv.bias"), &[k * c_out], [k, c_out], &device)?,
                "edge_importance",
            ),
            GraphConvLayout::PerSubset => {
                let mut weight = Vec::with_capacity(k);
                let mut bias = Vec::with_capacity(k);
                for subset in 0..k {
                    let conv = |name: &str| key(&format!("g_conv.{subset}.{name}"));
                    weight.push(weights.take::<B, 2>(
                        &conv("weight"),
                        &[c_out, c_in, 1, 1],
                        [c_out, c_in],
                        &device,
                    )?);
                    bias.push(weights.take::<B, 2>(
                        &conv("bias"),
                        &[c_out],
                        [1, c_out],
                        &device,
                    )?);
                }
                (Tensor::cat(weight, 0), Tensor::cat(bias, 0), "graph_attn")
            }
        };
        self.weight = Param::from_tensor(regroup_rows(weight, k, c_out));
        self.bias = Param::from_tensor(bias);
        self.adjacency =
            Param::from_tensor(weights.take(&key("A"), &[k, v, v], [k, v, v], &device)?)
                .set_require_grad(false);
        self.mask =
            Param::from_tensor(weights.take(&key(mask_key), &[k, v, v], [k, v, v], &device)?);
        Ok(())
    }

    fn save(&self, weights: &mut Weights, prefix: &str) {
        let [k, v] = self.graph();
        let c_out = self.out_channels();
        let c_in = self.weight.dims()[1];
        let key = |name: &str| join_key(prefix, name);
        match self.layout {
            GraphConvLayout::Mmskeleton => {
                weights.put(
                    key("conv.weight"),
                    self.subset_major(),
                    &[k * c_out, c_in, 1, 1],
                );
                weights.put(key("conv.bias"), self.bias.val(), &[k * c_out]);
                weights.put(key("edge_importance"), self.mask.val(), &[k, v, v]);
            }
            GraphConvLayout::PerSubset => {
                let weight = self.subset_major();
                for subset in 0..k {
                    let conv = |name: &str| key(&format!("g_conv.{subset}.{name}"));
                    let rows = subset * c_out..(subset + 1) * c_out;
                    weights.put(
                        conv("weight"),
                        weight.clone().slice(rows.clone()),
                        &[c_out, c_in, 1, 1],
                    );
                    weights.put(
                        conv("bias"),
                        self.bias.val().slice(subset..subset + 1),
                        &[c_out],
                    );
                }
                weights.put(key("graph_attn"), self.mask.val(), &[k, v, v]);
            }
        }
        weights.put(key("A"), self.adjacency.val(), &[k, v, v]);
    }
}
