//! One transformer encoder layer (`torch.nn.TransformerEncoderLayer`): self-attention and a
//! feed-forward block, each with a residual connection and a LayerNorm, after (post-norm, the
//! torch and reference default) or before (pre-norm, `norm_first`) the block.
//!
//! PyTorch keys under the layer's prefix: `self_attn.*` (see [`MultiheadAttention`]),
//! `linear1.*`, `linear2.*`, `norm1.*`, `norm2.*`.

use burn::prelude::*;

use crate::error::{ConfigError, WeightError};
use crate::norm::{LayerNorm, NormConfig};
use crate::per_frame::{Activation, ActivationKind, FrameOp, Linear, LinearConfig};
use crate::state::contiguous;
use crate::transformer::attention::MultiheadAttention;
use crate::weights::{join_key, Weights};

/// Sizes and options of an encoder layer.
#[derive(Config, Debug, Copy, PartialEq)]
pub struct EncoderLayerConfig {
    /// Features per token, `d`.
    pub d_model: usize,
    /// Attention heads (dividing `d_model`).
    pub heads: usize,
    /// Width of the feed-forward block.
    pub dim_feedforward: usize,
    /// The feed-forward activation: ReLU or exact GELU.
    #[config(default = "ActivationKind::Relu")]
    pub activation: ActivationKind,
    /// LayerNorm before each block instead of after its residual sum.
    #[config(default = false)]
    pub norm_first: bool,
    /// The LayerNorms' epsilon.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
    /// Biases in the attention projections.
    #[config(default = true)]
    pub bias: bool,
}

impl EncoderLayerConfig {
    /// Builds the layer with random weights (replaced when weights are loaded).
    ///
    /// # Errors
    /// If a size is 0, the heads do not divide `d_model`, or the activation is neither ReLU
    /// nor GELU.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<EncoderLayer<B>, ConfigError> {
        if self.dim_feedforward == 0 {
            return Err(ConfigError::new(
                "TransformerEncoderLayer",
                "dim_feedforward is 0",
            ));
        }
        if !matches!(self.activation, ActivationKind::Relu | ActivationKind::Gelu) {
            return Err(ConfigError::new(
                "TransformerEncoderLayer",
                format!(
                    "activation {:?}: only ReLU and GELU are supported",
                    self.activation
                ),
            ));
        }
        let norm = NormConfig::new(self.d_model).with_epsilon(self.layer_norm_eps);
        Ok(EncoderLayer {
            self_attn: MultiheadAttention::new(self.d_model, self.heads, self.bias, device)?,
            linear1: LinearConfig::new([self.d_model, self.dim_feedforward]).init(device),
            linear2: LinearConfig::new([self.dim_feedforward, self.d_model]).init(device),
            norm1: norm.init_layer_norm(device),
            norm2: norm.init_layer_norm(device),
            activation: Activation::new(self.activation),
            norm_first: self.norm_first,
        })
    }
}

/// A transformer encoder layer; see the module documentation.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// Self-attention.
    pub self_attn: MultiheadAttention<B>,
    /// First feed-forward linear map, `d → dim_feedforward`.
    pub linear1: Linear<B>,
    /// Second feed-forward linear map, `dim_feedforward → d`.
    pub linear2: Linear<B>,
    /// The attention block's LayerNorm.
    pub norm1: LayerNorm<B>,
    /// The feed-forward block's LayerNorm.
    pub norm2: LayerNorm<B>,
    activation: Activation<B>,
    #[module(skip)]
    norm_first: bool,
}

/// Applies a per-frame op to tokens.
///
/// # Shapes
/// - tokens: `[batch, n, c]`; output `[batch, n, c']`
pub(crate) fn on_tokens<B: Backend>(op: &impl FrameOp<B>, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch, n, c] = tokens.dims();
    let out = op.apply(contiguous(tokens).reshape([batch * n, c, 1, 1]));
    let c_out = out.dims()[1];
    out.reshape([batch, n, c_out])
}

impl<B: Backend> EncoderLayer<B> {
    /// What the attention sees of the layer's input: the input itself (post-norm) or its
    /// `norm1` (pre-norm). Per token, so a stream can cache it.
    ///
    /// # Shapes
    /// - tokens: `[batch, n, d]`; output the same
    pub fn attention_input(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        if self.norm_first {
            on_tokens(&self.norm1, tokens)
        } else {
            tokens
        }
    }

    /// The rest of the layer once the attention output is known: residual sums, norms and
    /// the feed-forward block, per token.
    ///
    /// # Shapes
    /// - input, attended: `[batch, n, d]` (the layer's input tokens and their attention
    ///   outputs); output the same
    pub fn finish(&self, input: Tensor<B, 3>, attended: Tensor<B, 3>) -> Tensor<B, 3> {
        let summed = input + attended;
        if self.norm_first {
            let ff = self.feed_forward(on_tokens(&self.norm2, summed.clone()));
            summed + ff
        } else {
            let normed = on_tokens(&self.norm1, summed);
            let ff = self.feed_forward(normed.clone());
            on_tokens(&self.norm2, normed + ff)
        }
    }

    fn feed_forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        let hidden = on_tokens(&self.activation, on_tokens(&self.linear1, tokens));
        on_tokens(&self.linear2, hidden)
    }

    /// The offline layer over a window: every token attends to every token; with
    /// `last_only`, only the last token's output is computed.
    ///
    /// # Shapes
    /// - tokens: `[batch, n, d]`; output `[batch, n, d]`, or `[batch, 1, d]` with `last_only`
    pub fn forward_window(&self, tokens: Tensor<B, 3>, last_only: bool) -> Tensor<B, 3> {
        let attended = self
            .self_attn
            .forward_window(self.attention_input(tokens.clone()), last_only);
        let input = if last_only {
            let n = tokens.dims()[1];
            tokens.narrow(1, n - 1, 1)
        } else {
            tokens
        };
        self.finish(input, attended)
    }

    /// Takes the layer's tensors from `weights` under `prefix`.
    ///
    /// # Errors
    /// [`WeightError`] naming a missing or mis-shaped key.
    pub fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        self.self_attn
            .load(weights, &join_key(prefix, "self_attn"))?;
        self.linear1.load(weights, &join_key(prefix, "linear1"))?;
        self.linear2.load(weights, &join_key(prefix, "linear2"))?;
        self.norm1.load(weights, &join_key(prefix, "norm1"))?;
        self.norm2.load(weights, &join_key(prefix, "norm2"))
    }

    /// Puts the layer's tensors into `weights` under `prefix`, as [`EncoderLayer::load`]
    /// takes them.
    pub fn save(&self, weights: &mut Weights, prefix: &str) {
        self.self_attn.save(weights, &join_key(prefix, "self_attn"));
        self.linear1.save(weights, &join_key(prefix, "linear1"));
        self.linear2.save(weights, &join_key(prefix, "linear2"));
        self.norm1.save(weights, &join_key(prefix, "norm1"));
        self.norm2.save(weights, &join_key(prefix, "norm2"));
    }
}
