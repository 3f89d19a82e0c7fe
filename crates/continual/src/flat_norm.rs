//! BatchNorm over every value of a frame (ST-GCN's `data_bn`): one statistic per joint,
//! person and channel, as `torch.nn.BatchNorm1d(P·V·C)` over frames flattened person-major.

use burn::prelude::*;

use crate::error::WeightError;
use crate::fill::TemporalFill;
use crate::module::CoModule;
use crate::norm::{BatchNorm, BatchNormConfig};
use crate::per_frame::{frame_op_modules, FrameOp};
use crate::state::State;
use crate::timing::Timing;
use crate::weights::Weights;

frame_op_modules!(FlatBatchNorm);

/// BatchNorm of a frame `[C, V, P]` flattened as `[P, V, C]` (the reference's
/// `x.permute(0, 3, 2, 1).view(N, P·V·C)`): statistic `(p·V + v)·C + c` normalises channel
/// `c` of joint `v` of person `p`. PyTorch keys as [`BatchNorm`]'s, of `P·V·C` values.
#[derive(Module, Debug)]
pub struct FlatBatchNorm<B: Backend> {
    /// The normalisation over the flattened frame.
    pub norm: BatchNorm<B>,
    /// Channels, joints and persons of a frame.
    #[module(skip)]
    frame: [usize; 3],
}

impl<B: Backend> FlatBatchNorm<B> {
    /// An identity normalisation of frames of `[channels, joints, persons]` until weights are
    /// loaded.
    pub fn new(frame: [usize; 3], device: &B::Device) -> Self {
        let [c, v, p] = frame;
        FlatBatchNorm {
            norm: BatchNormConfig::new(c * v * p).init(device),
            frame,
        }
    }
}

impl<B: Backend> FrameOp<B> for FlatBatchNorm<B> {
    fn name(&self) -> &'static str {
        "flat_batch_norm"
    }

    /// # Shapes
    /// - frames: `[N, C, V, P]`; output: the same
    fn apply(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, v, p] = frames.dims();
        let flat = frames.permute([0, 3, 2, 1]).reshape([n, p * v * c, 1, 1]);
        self.norm
            .apply(flat)
            .reshape([n, p, v, c])
            .permute([0, 3, 2, 1])
    }

    fn load(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        self.norm.load(weights, prefix)
    }

    fn save(&self, weights: &mut Weights, prefix: &str) {
        self.norm.save(weights, prefix);
    }
}

impl<B: Backend> FlatBatchNorm<B> {
    /// Channels, joints and persons of the frames it normalises.
    pub fn frame(&self) -> [usize; 3] {
        self.frame
    }
}
