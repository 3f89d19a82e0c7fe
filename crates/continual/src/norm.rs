//! Normalisation per frame: BatchNorm (eval, folded to a scale and a shift), LayerNorm over
//! channels and GroupNorm over each frame.

use burn::module::Param;
use burn::prelude::*;

use crate::error::WeightError;
use crate::fill::TemporalFill;
use crate::module::CoModule;
use crate::per_frame::{frame_op_modules, FrameOp};
use crate::state::State;
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
            epsilon: self.epsilon,
            affine: self.affine,
        }
    }
}

/// BatchNorm in evaluation mode (`torch.nn.BatchNorm1d/2d/3d`), folded at load time to
/// `y = x · scale + shift` per channel. PyTorch keys: `weight`, `bias`, `running_mean`,
/// `running_var`, `num_batches_tracked` (ignored).
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// `weight / sqrt(running_var + eps)`, `[channels]`.
    pub scale: Param<Tensor<B, 1>>,
    /// `bias - running_mean · scale`, `[channels]`.
    pub shift: Param<Tensor<B, 1>>,
    #[module(skip)]
    epsilon: f64,
    #[module(skip)]
    affine: bool,
}

impl<B: Backend> FrameOp<B> for BatchNorm<B> {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let c = self.scale.dims()[0];
        frames * self.scale.val().reshape([1, c, 1, 1]) + self.shift.val().reshape([1, c, 1, 1])
    }

    fn apply_clip(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let c = self.scale.dims()[0];
        clip * self.scale.val().reshape([1, c, 1, 1, 1]) + self.shift.val().reshape([1, c, 1, 1, 1])
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
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
        Ok(())
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
        let c = self.gamma.dims()[0];
        let (var, mean) = frames.clone().var_mean_bias(1);
        let normed = (frames - mean) / (var + self.epsilon).sqrt();
        normed * self.gamma.val().reshape([1, c, 1, 1]) + self.beta.val().reshape([1, c, 1, 1])
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        load_affine(&mut self.gamma, &mut self.beta, weights, prefix)
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
        let normed = ((grouped - mean) / (var + self.epsilon).sqrt()).reshape([n, c, h, w]);
        normed * self.gamma.val().reshape([1, c, 1, 1]) + self.beta.val().reshape([1, c, 1, 1])
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        load_affine(&mut self.gamma, &mut self.beta, weights, prefix)
    }
}
