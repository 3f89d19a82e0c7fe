//! Normalisation per frame: BatchNorm (eval, folded to a scale and a shift), LayerNorm over
//! channels and GroupNorm over each frame.

use burn::module::{Param, RunningState};
use burn::prelude::*;

use crate::error::WeightError;
use crate::fill::TemporalFill;
use crate::flex_kernel;
use crate::module::CoModule;
use crate::per_frame::{frame_op_modules, per_channel, FrameOp};
use crate::state::{reshape_adding_dims, State};
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

frame_op_modules!(BatchNorm, LayerNorm, GroupNorm);

/// Configuration of a [`BatchNorm`].
#[derive(Config, Debug)]
pub struct BatchNormConfig {
    /// Channels normalised.
    pub channels: usize,
    /// Added to the running variance.
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Whether the checkpoint has `weight` and `bias` (torch's `affine`).
    #[config(default = true)]
    pub affine: bool,
}

impl BatchNormConfig {
    /// An identity normalisation (unit scale, zero shift) until weights are loaded.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchNorm<B> {
        BatchNorm {
            scale: Param::from_tensor(Tensor::ones([self.channels], device)),
            shift: Param::from_tensor(Tensor::zeros([self.channels], device)),
            running_mean: RunningState::new(Tensor::zeros([self.channels], device)),
            running_var: RunningState::new(folded_variance(self.channels, self.epsilon, device)),
            epsilon: self.epsilon,
            affine: self.affine,
            folded_into_conv: false,
        }
    }
}

/// BatchNorm (`torch.nn.BatchNorm1d/2d/3d`).
///
/// **Inference** (every backend without autodiff, and every step): folded at load time to
/// `y = x · scale + shift` per channel.
///
/// **Training** (an autodiff backend, offline [`CoModule::forward`] over clips): as torch's
/// train mode, `y = (x − μ) / √(σ² + eps) · scale + shift` with the batch's mean and (biased)
/// variance over batch, time and space, where `scale` and `shift` are torch's `weight` and
/// `bias`; the running statistics follow the batch's with momentum 0.1 (unbiased variance).
/// [`CoModule::save_weights`] then writes torch's four tensors, which load back folded.
/// A loaded (folded) module keeps running statistics `0` and `1 − eps`, which fold to itself.
///
/// PyTorch keys: `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`
/// (ignored).
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// `weight / sqrt(running_var + eps)` when folded; torch's `weight` while training.
    /// `[channels]`.
    pub scale: Param<Tensor<B, 1>>,
    /// `bias - running_mean · scale` when folded; torch's `bias` while training. `[channels]`.
    pub shift: Param<Tensor<B, 1>>,
    /// Running mean of the inputs seen in training; `0` when folded. `[channels]`.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running variance of the inputs seen in training; `1 − eps` when folded. `[channels]`.
    pub running_var: RunningState<Tensor<B, 1>>,
    #[module(skip)]
    epsilon: f64,
    #[module(skip)]
    affine: bool,
    /// Whether the preceding conv's step applies this normalisation
    /// ([`crate::Sequential::fold_into_convs`]): a step passes frames through unchanged.
    #[module(skip)]
    folded_into_conv: bool,
}

/// Torch's default momentum of the running statistics.
const MOMENTUM: f64 = 0.1;

/// The running variance of a folded BatchNorm: `1 − eps`, so that `√(var + eps) = 1`.
fn folded_variance<B: Backend>(channels: usize, epsilon: f64, device: &B::Device) -> Tensor<B, 1> {
    Tensor::ones([channels], device) - epsilon
}

impl<B: Backend> BatchNorm<B> {
    /// The normalisation as `(scale, shift)`, `y = x · scale + shift` per channel, for the
    /// conv before it to fold in; marks it folded, so that steps no longer apply it.
    ///
    /// # Shapes
    /// - scale, shift: `[channels]`
    pub(crate) fn take_for_folding(&mut self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        self.folded_into_conv = true;
        (self.scale.val(), self.shift.val())
    }

    /// Channels normalised.
    pub(crate) fn channels(&self) -> usize {
        self.scale.dims()[0]
    }

    /// Training mode: normalises the clip with its own statistics and updates the running ones.
    fn train_clip(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, c, t, h, w] = clip.dims();
        let per_channel = clip.clone().swap_dims(0, 1).reshape([c, b * t * h * w]);
        let (var, mean) = per_channel.var_mean_bias(1);
        let count = (b * t * h * w) as f64;
        let unbiased = var.clone().detach() * (count / (count - 1.0).max(1.0));
        let mean_c = mean.clone().detach().reshape([c]);
        let running_mean = self.running_mean.value_sync() * (1.0 - MOMENTUM) + mean_c * MOMENTUM;
        let running_var =
            self.running_var.value_sync() * (1.0 - MOMENTUM) + unbiased.reshape([c]) * MOMENTUM;
        self.running_mean.update(running_mean);
        self.running_var.update(running_var);
        let normed = (clip - mean.reshape([1, c, 1, 1, 1]))
            / (var.reshape([1, c, 1, 1, 1]) + self.epsilon).sqrt();
        normed * self.scale.val().reshape([1, c, 1, 1, 1])
            + self.shift.val().reshape([1, c, 1, 1, 1])
    }
}

impl<B: Backend> FrameOp<B> for BatchNorm<B> {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        if self.folded_into_conv {
            return frames;
        }
        let rows = frames.dims()[0];
        frames * per_channel(self.scale.val(), rows) + per_channel(self.shift.val(), rows)
    }

    fn apply_clip(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        if B::ad_enabled(&clip.device()) {
            return self.train_clip(clip);
        }
        let c = self.scale.dims()[0];
        clip * self.scale.val().reshape([1, c, 1, 1, 1]) + self.shift.val().reshape([1, c, 1, 1, 1])
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        self.folded_into_conv = false;
        let c = self.scale.dims()[0];
        let key = |name: &str| join_key(prefix, name);
        let (gamma, beta) = if self.affine {
            (
                weights.take_raw(&key("weight"), &[c])?.values,
                weights.take_raw(&key("bias"), &[c])?.values,
            )
        } else {
            (vec![1.0; c], vec![0.0; c])
        };
        let mean = weights.take_raw(&key("running_mean"), &[c])?.values;
        let var = weights.take_raw(&key("running_var"), &[c])?.values;
        weights.discard(&key("num_batches_tracked"));
        let mut scale = Vec::with_capacity(c);
        let mut shift = Vec::with_capacity(c);
        for i in 0..c {
            let denominator = (f64::from(var[i]) + self.epsilon).sqrt();
            if !(denominator.is_finite() && denominator > 0.0) {
                return Err(WeightError::Invalid {
                    key: key("running_var"),
                    reason: format!(
                        "variance {} at channel {i} plus eps {} is not positive",
                        var[i], self.epsilon
                    ),
                });
            }
            let s = f64::from(gamma[i]) / denominator;
            scale.push(s as f32);
            shift.push((f64::from(beta[i]) - f64::from(mean[i]) * s) as f32);
        }
        let device = self.scale.device();
        self.scale = Param::from_tensor(Tensor::from_data(TensorData::new(scale, [c]), &device));
        self.shift = Param::from_tensor(Tensor::from_data(TensorData::new(shift, [c]), &device));
        self.running_mean = RunningState::new(Tensor::zeros([c], &device));
        self.running_var = RunningState::new(folded_variance(c, self.epsilon, &device));
        Ok(())
    }

    /// Writes torch's tensors. With `affine`: `weight = scale`, `bias = shift` and the
    /// running statistics as they are (for a folded module `0` and `1 − eps`, which fold back
    /// to it exactly). Without: the running statistics that give the same function with unit
    /// weight and zero bias, `running_var = 1/s² − eps` and `running_mean = −b/s`, where
    /// `s = scale/√(var + eps)` and `b = shift − mean · s` (the folded function).
    fn save(&self, weights: &mut Weights, prefix: &str) {
        let c = self.scale.dims()[0];
        let key = |name: &str| join_key(prefix, name);
        let (scale, shift) = (self.scale.val(), self.shift.val());
        let (mean, var) = (
            self.running_mean.value_sync(),
            self.running_var.value_sync(),
        );
        if self.affine {
            weights.put(key("weight"), scale, &[c]);
            weights.put(key("bias"), shift, &[c]);
            weights.put(key("running_mean"), mean, &[c]);
            weights.put(key("running_var"), var, &[c]);
        } else {
            let s = scale / (var + self.epsilon).sqrt();
            let b = shift - mean * s.clone();
            weights.put(key("running_mean"), -b / s.clone(), &[c]);
            weights.put(key("running_var"), s.powi_scalar(-2) - self.epsilon, &[c]);
        }
    }
}

/// Configuration of a [`LayerNorm`] or [`GroupNorm`].
#[derive(Config, Debug)]
pub struct NormConfig {
    /// Channels normalised.
    pub channels: usize,
    /// Channel groups (GroupNorm); 1 for LayerNorm.
    #[config(default = 1)]
    pub groups: usize,
    /// Added to the variance.
    #[config(default = 1e-5)]
    pub epsilon: f64,
}

impl NormConfig {
    /// A `torch.nn.LayerNorm(channels)` over the channel dim of each frame (token).
    pub fn init_layer_norm<B: Backend>(&self, device: &B::Device) -> LayerNorm<B> {
        LayerNorm {
            gamma: Param::from_tensor(Tensor::ones([self.channels], device)),
            beta: Param::from_tensor(Tensor::zeros([self.channels], device)),
            epsilon: self.epsilon,
        }
    }

    /// A GroupNorm over each frame.
    ///
    /// # Errors
    /// If `channels` is not a multiple of `groups`.
    pub fn init_group_norm<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<GroupNorm<B>, crate::ConfigError> {
        if self.groups == 0 || !self.channels.is_multiple_of(self.groups) {
            return Err(crate::ConfigError::new(
                "GroupNorm",
                format!(
                    "channels {} are not a multiple of groups {}",
                    self.channels, self.groups
                ),
            ));
        }
        Ok(GroupNorm {
            gamma: Param::from_tensor(Tensor::ones([self.channels], device)),
            beta: Param::from_tensor(Tensor::zeros([self.channels], device)),
            groups: self.groups,
            epsilon: self.epsilon,
        })
    }
}

fn load_affine<B: Backend>(
    gamma: &mut Param<Tensor<B, 1>>,
    beta: &mut Param<Tensor<B, 1>>,
    weights: &mut Weights,
    prefix: &str,
) -> Result<(), WeightError> {
    let c = gamma.dims()[0];
    let device = gamma.device();
    *gamma = Param::from_tensor(weights.take(&join_key(prefix, "weight"), &[c], [c], &device)?);
    *beta = Param::from_tensor(weights.take(&join_key(prefix, "bias"), &[c], [c], &device)?);
    Ok(())
}

fn save_affine<B: Backend>(
    gamma: &Param<Tensor<B, 1>>,
    beta: &Param<Tensor<B, 1>>,
    weights: &mut Weights,
    prefix: &str,
) {
    let c = gamma.dims()[0];
    weights.put(join_key(prefix, "weight"), gamma.val(), &[c]);
    weights.put(join_key(prefix, "bias"), beta.val(), &[c]);
}

/// LayerNorm over the channels of each frame (position). PyTorch keys: `weight`, `bias`.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale `[channels]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift `[channels]`.
    pub beta: Param<Tensor<B, 1>>,
    #[module(skip)]
    epsilon: f64,
}

impl<B: Backend> FrameOp<B> for LayerNorm<B> {
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let (gamma, beta) = (self.gamma.val(), self.beta.val());
        if let Some(normed) = flex_kernel::layer_norm(&frames, &gamma, &beta, self.epsilon) {
            return normed;
        }
        let rows = frames.dims()[0];
        let (var, mean) = frames.clone().var_mean_bias(1);
        let normed = (frames - mean) / (var + self.epsilon).sqrt();
        normed * per_channel(gamma, rows) + per_channel(beta, rows)
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        load_affine(&mut self.gamma, &mut self.beta, weights, prefix)
    }

    fn save(&self, weights: &mut Weights, prefix: &str) {
        save_affine(&self.gamma, &self.beta, weights, prefix);
    }
}

/// GroupNorm over each frame: channels in `groups` groups, each normalised over its channels
/// and the frame's positions. (Offline torch GroupNorm over a clip also pools over time; the
/// continual form is per frame, as the reference's `co.forward_stepping` applies it.)
/// PyTorch keys: `weight`, `bias`.
#[derive(Module, Debug)]
pub struct GroupNorm<B: Backend> {
    /// Scale `[channels]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift `[channels]`.
    pub beta: Param<Tensor<B, 1>>,
    #[module(skip)]
    groups: usize,
    #[module(skip)]
    epsilon: f64,
}

impl<B: Backend> FrameOp<B> for GroupNorm<B> {
    fn name(&self) -> &'static str {
        "group_norm"
    }

    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = frames.dims();
        let grouped = frames.reshape([n, self.groups, c / self.groups * h * w]);
        let (var, mean) = grouped.clone().var_mean_bias(2);
        let normed =
            reshape_adding_dims((grouped - mean) / (var + self.epsilon).sqrt(), [n, c, h, w]);
        normed * per_channel(self.gamma.val(), n) + per_channel(self.beta.val(), n)
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        load_affine(&mut self.gamma, &mut self.beta, weights, prefix)
    }

    fn save(&self, weights: &mut Weights, prefix: &str) {
        save_affine(&self.gamma, &self.beta, weights, prefix);
    }
}
