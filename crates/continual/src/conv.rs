//! Continual convolution over time (1-D, 2-D and 3-D in torch terms), with temporal kernel,
//! padding, stride and dilation, spatial stride, padding and dilation, groups and bias.
//!
//! # Step algorithm
//! A temporal kernel of `k` taps and dilation `δ` spans `R = δ(k-1)+1` frames. Each step runs
//! one 2-D convolution of the new frame with all taps stacked along the output channels
//! (newest tap first), giving `Z[0..R]`. The state keeps `R-1` running partial sums `S`, one
//! per output still waiting for frames (the reference keeps `(k-1)` slots of `(k-1)` partial
//! products each). With `U = [S, 0] + Z`, the output is `U[0]` and the next state `U[1..R]`.
//!
//! # Kernel layout
//! The kernel is stored as the step multiplies with it, all `k` taps stacked along the output
//! channels, newest first ([`KernelLayout`]); the offline `[C_out, C_in/g, k, kh, kw]` kernel is
//! derived from it when a clip runs or the weights are saved. Re-laying the taps out on every
//! step instead (a flip and a permutation of the whole kernel) took two thirds of a CoST-GCN*
//! step on the CPU backend, whose temporal convs hold 9 taps of 256 × 256 channels.

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::module::{conv2d, conv3d};
use burn::tensor::ops::ConvOptions;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::flex_kernel::{self, DepthwiseStep, PointwiseActivation, Spatial};
use crate::module::{stack_frames, CoModule};
use crate::per_frame::{activate, eager, per_channel, ActivationKind};
use crate::state::{contiguous, reshape_adding_dims, take_slots, State};
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

/// Configuration of a [`CoConv`]. Dimensions are `[time, height, width]`.
#[derive(Config, Debug)]
pub struct CoConvConfig {
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Kernel size `[time, height, width]`.
    pub kernel_size: [usize; 3],
    /// Stride `[time, height, width]`.
    #[config(default = "[1, 1, 1]")]
    pub stride: [usize; 3],
    /// Zero padding on both sides `[time, height, width]`; the temporal padding cannot exceed
    /// the temporal receptive field minus one.
    #[config(default = "[0, 0, 0]")]
    pub padding: [usize; 3],
    /// Dilation `[time, height, width]` (the reference rejects temporal dilation; costream
    /// supports it).
    #[config(default = "[1, 1, 1]")]
    pub dilation: [usize; 3],
    /// Groups: `channels` must both be multiples of it; `groups == channels` is depthwise.
    #[config(default = 1)]
    pub groups: usize,
    /// Whether the convolution adds a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Number of dimensions after time in the PyTorch weight (`Conv1d`: 0, `Conv2d`: 1,
    /// `Conv3d`: 2). Only the checkpoint layout depends on it.
    #[config(default = 2)]
    pub spatial_dims: usize,
}

impl CoConvConfig {
    /// A `co.Conv1d`: sequences `[B, C, T]` as `[B, C, T, 1, 1]`.
    pub fn conv1d(channels: [usize; 2], kernel: usize) -> Self {
        CoConvConfig::new(channels, [kernel, 1, 1]).with_spatial_dims(0)
    }

    /// A `co.Conv2d` over `[B, C, T, V]` (as `[B, C, T, V, 1]`); kernel `[time, V]`.
    pub fn conv2d(channels: [usize; 2], kernel: [usize; 2]) -> Self {
        CoConvConfig::new(channels, [kernel[0], kernel[1], 1]).with_spatial_dims(1)
    }

    /// A `co.Conv3d`.
    pub fn conv3d(channels: [usize; 2], kernel: [usize; 3]) -> Self {
        CoConvConfig::new(channels, kernel)
    }

    /// Builds the module with PyTorch's default initialisation (uniform in ±1/√fan_in).
    ///
    /// # Errors
    /// [`ConfigError`] naming the offending value: zero sizes, channels not divisible by
    /// groups, temporal padding larger than the receptive field allows, or a spatial layout
    /// that `spatial_dims` cannot express.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<CoConv<B>, ConfigError> {
        let [c_in, c_out] = self.channels;
        let err = |reason: String| ConfigError::new("Conv", reason);
        if c_in == 0
            || c_out == 0
            || self.groups == 0
            || c_in % self.groups != 0
            || c_out % self.groups != 0
        {
            return Err(err(format!(
                "channels {:?} must be non-zero multiples of groups {}",
                self.channels, self.groups
            )));
        }
        if self.kernel_size.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(err(format!(
                "kernel {:?}, stride {:?} and dilation {:?} must be non-zero",
                self.kernel_size, self.stride, self.dilation
            )));
        }
        let rf = self.dilation[0] * (self.kernel_size[0] - 1) + 1;
        if self.padding[0] > rf - 1 {
            return Err(err(format!(
                "temporal padding {} exceeds the temporal receptive field {rf} minus one; a continual \
                 module cannot emit outputs before its first input",
                self.padding[0]
            )));
        }
        if self.spatial_dims > 2
            || self.kernel_size[1 + self.spatial_dims..]
                .iter()
                .any(|&k| k != 1)
        {
            return Err(err(format!(
                "kernel {:?} has more spatial extent than spatial_dims {} allows",
                self.kernel_size, self.spatial_dims
            )));
        }
        let [kt, kh, kw] = self.kernel_size;
        let fan_in = c_in / self.groups * kt * kh * kw;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let init = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        let layout = if c_in == self.groups && c_out == self.groups {
            KernelLayout::TapMajor
        } else {
            KernelLayout::Grouped
        };
        let weight: Tensor<B, 5> = init
            .init([c_out, c_in / self.groups, kt, kh, kw], device)
            .val();
        Ok(CoConv {
            kernel: Param::from_tensor(layout.step_kernel(weight, self.groups)),
            bias: self.bias.then(|| eager(init.init([c_out], device))),
            layout,
            taps: kt,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            spatial_dims: self.spatial_dims,
            folded: None,
            fused_activation: None,
        })
    }
}

/// How a [`CoConv`] stacks its temporal taps along the rows of its step kernel
/// `[rows, channels_in / groups, kh, kw]`; in both, the newest tap (the offline kernel's last)
/// comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelLayout {
    /// Rows `[groups, taps, channels_out / groups]`: one (grouped) 2-D convolution of the
    /// frame gives every tap's products in the partial-sum layout.
    Grouped,
    /// Rows `[taps, channels]`, for depthwise convs: the frame repeated once per tap goes
    /// through one depthwise convolution (see [`CoConv::depthwise_taps`]).
    TapMajor,
}

impl KernelLayout {
    /// The step kernel of an offline kernel.
    ///
    /// # Shapes
    /// - weight: `[C_out, C_in / groups, k, kh, kw]`
    /// - output: `[C_out · k, C_in / groups, kh, kw]`
    fn step_kernel<B: Backend>(self, weight: Tensor<B, 5>, groups: usize) -> Tensor<B, 4> {
        let [c_out, c_in_g, kt, kh, kw] = weight.dims();
        let flipped = weight.flip([2]);
        match self {
            KernelLayout::Grouped => {
                let taps = flipped
                    .reshape([groups, c_out / groups, c_in_g, kt, kh, kw])
                    .permute([0, 3, 1, 2, 4, 5]);
                contiguous(taps).reshape([c_out * kt, c_in_g, kh, kw])
            }
            KernelLayout::TapMajor => {
                contiguous(flipped.permute([2, 0, 1, 3, 4])).reshape([c_out * kt, c_in_g, kh, kw])
            }
        }
    }

    /// The offline kernel of a step kernel (the inverse of [`KernelLayout::step_kernel`]).
    ///
    /// # Shapes
    /// - kernel: `[C_out · k, C_in / groups, kh, kw]`
    /// - output: `[C_out, C_in / groups, k, kh, kw]`
    fn offline_kernel<B: Backend>(
        self,
        kernel: Tensor<B, 4>,
        groups: usize,
        kt: usize,
    ) -> Tensor<B, 5> {
        let [rows, c_in_g, kh, kw] = kernel.dims();
        let c_out = rows / kt;
        let offline = match self {
            KernelLayout::Grouped => {
                let taps = kernel
                    .reshape([groups, kt, c_out / groups, c_in_g, kh, kw])
                    .permute([0, 2, 3, 1, 4, 5]);
                contiguous(taps).reshape([c_out, c_in_g, kt, kh, kw])
            }
            KernelLayout::TapMajor => contiguous(
                kernel
                    .reshape([kt, c_out, c_in_g, kh, kw])
                    .permute([1, 2, 0, 3, 4]),
            ),
        };
        offline.flip([2])
    }
}

/// A continual convolution (`co.Conv1d/2d/3d`). Built by [`CoConvConfig::init`].
#[derive(Module, Debug)]
pub struct CoConv<B: Backend> {
    /// Step kernel `[channels_out · time, channels_in / groups, height, width]`, taps stacked
    /// as [`KernelLayout`] says; [`CoConv::weight`] gives the offline kernel.
    kernel: Param<Tensor<B, 4>>,
    /// Bias `[channels_out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    #[module(skip)]
    layout: KernelLayout,
    #[module(skip)]
    taps: usize,
    #[module(skip)]
    stride: [usize; 3],
    #[module(skip)]
    padding: [usize; 3],
    #[module(skip)]
    dilation: [usize; 3],
    #[module(skip)]
    groups: usize,
    #[module(skip)]
    spatial_dims: usize,
    /// A following BatchNorm folded into the weights a step uses ([`CoConv::fold_affine`]).
    folded: Option<FoldedAffine<B>>,
    /// The activation that follows this conv (after a folded BatchNorm, if any), applied
    /// by its steps ([`CoConv::fuse_activation`]).
    #[module(skip)]
    fused_activation: Option<ActivationKind>,
}

/// The step weights of a [`CoConv`] with a per-channel affine map folded in (constants:
/// they follow the module to other devices but are not trained).
#[derive(Module, Debug)]
struct FoldedAffine<B: Backend> {
    /// The step kernel, each output channel's rows times its scale.
    kernel: Tensor<B, 4>,
    /// `bias · scale + shift` (`shift` without a bias). `[channels_out]`.
    bias: Tensor<B, 1>,
}

impl<B: Backend> CoConv<B> {
    /// Folds a per-channel affine map `y = x · scale + shift` that follows this conv (an
    /// inference BatchNorm, see [`crate::Sequential::fold_into_convs`]) into the kernel and
    /// bias that [`CoModule::forward_step`] and [`CoModule::flush`] use. The offline
    /// [`CoModule::forward`], the parameters and the saved weights stay the conv's own;
    /// loading weights drops the folded copy, and training does not update it: fold again
    /// after changing the parameters.
    ///
    /// # Shapes
    /// - scale, shift: `[channels_out]`
    pub(crate) fn fold_affine(&mut self, scale: Tensor<B, 1>, shift: Tensor<B, 1>) {
        let [rows, ..] = self.kernel.dims();
        let c_out = self.out_channels();
        let row_scale = match self.layout {
            KernelLayout::TapMajor => Tensor::cat(vec![scale.clone(); self.taps], 0),
            KernelLayout::Grouped => {
                let (g, c_g) = (self.groups, c_out / self.groups);
                scale
                    .clone()
                    .reshape([g, 1, c_g])
                    .expand([g, self.taps, c_g])
                    .reshape([rows])
            }
        };
        let kernel = self.kernel.val() * row_scale.reshape([rows, 1, 1, 1]);
        let bias = match &self.bias {
            Some(bias) => bias.val() * scale + shift,
            None => shift,
        };
        self.folded = Some(FoldedAffine { kernel, bias });
    }

    /// Makes steps apply `kind` to their outputs, for the activation that follows this conv
    /// (see [`crate::Sequential::fold_into_convs`]); on flex, a pointwise conv applies a
    /// ReLU in the pass that computes its outputs. Loading weights undoes it.
    pub(crate) fn fuse_activation(&mut self, kind: ActivationKind) {
        self.fused_activation = Some(kind);
    }

    /// A step's output with the fused activation applied.
    ///
    /// # Shapes
    /// - output: `[N, C_out, H', W']`
    fn activated(&self, output: Tensor<B, 4>) -> Tensor<B, 4> {
        activate_if(self.fused_activation, output)
    }

    /// The kernel a step multiplies with: the step kernel, or its folded copy.
    fn step_kernel(&self) -> Tensor<B, 4> {
        match &self.folded {
            Some(folded) => folded.kernel.clone(),
            None => self.kernel.val(),
        }
    }

    /// The bias a step adds: the bias, or its folded copy.
    fn step_bias(&self) -> Option<Tensor<B, 1>> {
        match &self.folded {
            Some(folded) => Some(folded.bias.clone()),
            None => self.bias.as_ref().map(Param::val),
        }
    }

    /// The offline kernel, PyTorch's layout.
    ///
    /// # Shapes
    /// - output: `[channels_out, channels_in / groups, time, height, width]`
    pub fn weight(&self) -> Tensor<B, 5> {
        self.layout
            .offline_kernel(self.kernel.val(), self.groups, self.taps)
    }

    /// Temporal span of the kernel in frames, `dilation * (kernel - 1) + 1`.
    fn span(&self) -> usize {
        self.dilation[0] * (self.taps - 1) + 1
    }

    /// Whether a step needs no memory of earlier frames (temporal kernel 1, no padding).
    fn is_stateless(&self) -> bool {
        self.span() == 1
    }

    /// Output channels.
    pub(crate) fn out_channels(&self) -> usize {
        self.kernel.dims()[0] / self.taps
    }

    /// The spatial geometry of a step's per-frame convolution with a `[kh, kw]` kernel.
    fn spatial(&self, kernel: [usize; 2]) -> Spatial {
        Spatial {
            kernel,
            stride: [self.stride[1], self.stride[2]],
            padding: [self.padding[1], self.padding[2]],
            dilation: [self.dilation[1], self.dilation[2]],
        }
    }

    /// The products of one frame with every tap, newest first, in the partial-sum layout;
    /// with temporal dilation the taps between the kernel's are zero.
    ///
    /// # Shapes
    /// - frame: `[N, C_in, H, W]`
    /// - output: `[N, G, span, C_out / G, H', W']` (`G` is 1 for a depthwise conv, else the
    ///   groups)
    fn tap_products(&self, frame: Tensor<B, 4>) -> Tensor<B, 6> {
        let rows = frame.dims()[0];
        let c_out = self.out_channels();
        let (z, groups) = match self.layout {
            KernelLayout::TapMajor => (self.depthwise_taps(frame), 1),
            KernelLayout::Grouped => (
                self.spatial_conv(frame, self.step_kernel(), None, None),
                self.groups,
            ),
        };
        let [_, _, h, w] = z.dims();
        let z = reshape_adding_dims(z, [rows, groups, self.taps, c_out / groups, h, w]);
        let dilation = self.dilation[0];
        if dilation == 1 {
            return z;
        }
        let gap = Tensor::zeros(
            [rows, groups, dilation - 1, c_out / groups, h, w],
            &z.device(),
        );
        let mut taps = Vec::with_capacity(self.span());
        for j in 0..self.taps {
            if j > 0 {
                taps.push(gap.clone());
            }
            taps.push(take_slots(z.clone(), j, 1));
        }
        Tensor::cat(taps, 2)
    }

    /// The tap products of a depthwise conv's step, tap-major: the frame is repeated once per
    /// tap along the channels and convolved with all taps' kernels as one depthwise conv
    /// (`k × C` groups of one channel each). The CPU backends run depthwise convolutions
    /// several times faster than grouped ones with several outputs per group, and the
    /// repetition is a contiguous copy (burn 0.21, 54 channels × 3 taps at 40×40: the
    /// grouped form took 10.5 ms on ndarray and 6.5 ms on flex, this one 3 and 0.8 ms).
    ///
    /// # Shapes
    /// - frame: `[N, C, H, W]`
    /// - output: `[N, k · C, H', W']`
    fn depthwise_taps(&self, frame: Tensor<B, 4>) -> Tensor<B, 4> {
        let channels = self.kernel.dims()[0];
        let repeated = Tensor::cat(vec![frame; self.taps], 1);
        let [_, _, kh, kw] = self.kernel.dims();
        let options = self.spatial([kh, kw]).conv_options(channels);
        conv2d(repeated, self.step_kernel(), None, options)
    }

    /// The sizes of this depthwise conv's step for the fused CPU kernel.
    fn depthwise_step(&self) -> DepthwiseStep {
        let [_, _, kh, kw] = self.kernel.dims();
        DepthwiseStep {
            channels: self.out_channels(),
            taps: self.taps,
            temporal_dilation: self.dilation[0],
            spatial: self.spatial([kh, kw]),
        }
    }

    /// The per-frame (2-D) convolution of a step. A 1×1 kernel without spatial stride or
    /// padding runs as one (grouped) matrix product, which is faster than the backends'
    /// convolutions for pointwise layers and avoids a wrong result of burn 0.21's wgpu
    /// `conv2d` on frames of width 1. On flex, a strided 1×1 kernel subsamples the frame
    /// first, and a spatial kernel with few taps per output (X3D's stem) runs as
    /// [`flex_kernel::conv2d`]. The output is biased, then `activation` is applied (on flex,
    /// a pointwise conv's ReLU in the same pass, [`flex_kernel::pointwise`]).
    ///
    /// # Shapes
    /// - frame: `[N, C_in, H, W]`; kernel: `[C_out', C_in / groups, kh, kw]`
    /// - output: `[N, C_out', H', W']`
    fn spatial_conv(
        &self,
        frame: Tensor<B, 4>,
        kernel: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        activation: Option<ActivationKind>,
    ) -> Tensor<B, 4> {
        let [c_out, c_in_g, kh, kw] = kernel.dims();
        let one_by_one = [kh, kw] == [1, 1] && self.padding[1..] == [0, 0];
        let [sh, sw] = [self.stride[1], self.stride[2]];
        // On flex, a strided 1×1 conv is a pointwise one of the subsampled frame (flex's
        // `conv2d` runs it through im2col).
        let subsample = one_by_one && [sh, sw] != [1, 1] && flex_kernel::is_flex::<B>();
        let frame = if subsample {
            let [_, _, h, w] = frame.dims();
            frame.slice(s![.., .., 0..h;sh as isize, 0..w;sw as isize])
        } else {
            frame
        };
        let pointwise = one_by_one && ([sh, sw] == [1, 1] || subsample);
        if !pointwise {
            let spatial = self.spatial([kh, kw]);
            if self.groups == 1 {
                let (in_pass, after) = relu_in_pass(activation);
                let small =
                    flex_kernel::small_plane_conv(&frame, &kernel, bias.as_ref(), spatial, in_pass);
                if let Some(output) = small {
                    return activate_if(after, output);
                }
            }
            let phases = flex_kernel::conv2d(&frame, &kernel, bias.as_ref(), spatial, self.groups);
            return activate_if(
                activation,
                phases.unwrap_or_else(|| {
                    conv2d(frame, kernel, bias, spatial.conv_options(self.groups))
                }),
            );
        }
        if self.groups == 1 {
            let (in_pass, after) = relu_in_pass(activation);
            let rows = kernel.clone().reshape([c_out, c_in_g]);
            if let Some(output) = flex_kernel::pointwise(&frame, &rows, bias.as_ref(), in_pass) {
                return activate_if(after, output);
            }
        }
        let [n, _, h, w] = frame.dims();
        let g = self.groups;
        let x = frame.reshape([n, g, c_in_g, h * w]);
        let k = kernel
            .reshape([1, g, c_out / g, c_in_g])
            .expand([n, g, c_out / g, c_in_g]);
        let out = k.matmul(x).reshape([n, c_out, h, w]);
        let out = match bias {
            Some(b) => out + per_channel(b, n),
            None => out,
        };
        activate_if(activation, out)
    }

    /// The bias as an operand for `rows` output frames.
    fn bias_frame(&self, rows: usize) -> Option<Tensor<B, 4>> {
        self.step_bias().map(|b| per_channel(b, rows))
    }

    /// Counts one more step in `state` and says whether this step emits an output (the
    /// same for every row).
    fn advance_step(&self, state: &mut State<B>) -> bool {
        let emit = state.row_decision(|s| self.timing().emits_at(s));
        state.advance();
        emit
    }

    /// Advances the partial sums by one frame whose stacked tap products are `z` (`None`: a
    /// zero frame, as in the end padding) and returns the completed output if it is emitted.
    fn advance(&self, z: Option<Tensor<B, 6>>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let slots = self.span() - 1;
        let sums = state.buffers[0].take()?;
        let [rows, g, _, c_g, h, w] = sums.dims();
        let (head, newest) = match z {
            Some(z) => (
                sums + take_slots(z.clone(), 0, slots),
                take_slots(z, slots, 1),
            ),
            None => (sums, Tensor::zeros([rows, g, 1, c_g, h, w], &state.device)),
        };
        let output = take_slots(head.clone(), 0, 1);
        state.buffers[0] = Some(if slots > 1 {
            Tensor::cat(vec![take_slots(head, 1, slots - 1), newest], 2)
        } else {
            newest
        });
        self.advance_step(state).then(|| {
            let out = output.reshape([rows, g * c_g, h, w]);
            self.activated(match self.bias_frame(rows) {
                Some(bias) => out + bias,
                None => out,
            })
        })
    }
}

/// How a flex kernel that can fuse a ReLU applies `activation`: a ReLU in its own pass,
/// anything else after it (the second value, for [`activate_if`]).
fn relu_in_pass(
    activation: Option<ActivationKind>,
) -> (PointwiseActivation, Option<ActivationKind>) {
    match activation {
        Some(ActivationKind::Relu) => (PointwiseActivation::Relu, None),
        other => (PointwiseActivation::Identity, other),
    }
}

/// `x` with `kind` applied, if any.
///
/// # Shapes
/// - x and output: `[N, C, H, W]`
fn activate_if<B: Backend>(kind: Option<ActivationKind>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    match kind {
        Some(kind) => activate(kind, x),
        None => x,
    }
}

impl<B: Backend> CoModule<B> for CoConv<B> {
    fn timing(&self) -> Timing {
        Timing::primitive(self.span(), self.padding[0] as i64, self.stride[0])
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        let kind = format!(
            "conv(g={},slots={},c={})",
            self.groups,
            self.span() - 1,
            self.out_channels()
        );
        let buffers = usize::from(!self.is_stateless());
        State::new(kind, buffers, rows, fill, Vec::new(), device)
    }

    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let options = ConvOptions::new(self.stride, self.padding, self.dilation, self.groups);
        conv3d(
            clip,
            self.weight(),
            self.bias.as_ref().map(Param::val),
            options,
        )
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        if self.is_stateless() {
            return self.advance_step(state).then(|| {
                let (kernel, bias) = (self.step_kernel(), self.step_bias());
                self.spatial_conv(frame, kernel, bias, self.fused_activation)
            });
        }
        if self.layout == KernelLayout::TapMajor && !state.is_first_step() {
            let fused = flex_kernel::depthwise_step(
                &self.depthwise_step(),
                frame.clone(),
                self.step_kernel(),
                self.step_bias(),
                &mut state.buffers[0],
            );
            if let Some(output) = fused {
                return self.advance_step(state).then(|| self.activated(output));
            }
        }
        let span = self.span();
        let z = self.tap_products(frame);
        let [rows, g, _, c_g, h, w] = z.dims();
        if state.is_first_step() {
            let zeros = Tensor::zeros([rows, g, span - 1, c_g, h, w], &state.device);
            // Replicate: the steady state after the first frame forever, S[i] = Σ_{m>i} Z[m].
            let steady = || {
                take_slots(z.clone(), 1, span - 1)
                    .flip([2])
                    .cumsum(2)
                    .flip([2])
            };
            state.buffers[0] = Some(state.filled(zeros, steady));
        }
        self.advance(Some(z), state)
    }

    fn flush(&self, state: &mut State<B>) -> Option<Tensor<B, 5>> {
        if self.is_stateless() || state.buffers[0].is_none() {
            return None;
        }
        let outputs = (0..self.padding[0])
            .filter_map(|_| self.advance(None, state))
            .collect();
        stack_frames(outputs)
    }

    fn save_weights(&self, weights: &mut Weights, prefix: &str) {
        let weight = self.weight();
        let shape = weight.dims();
        let stored = &shape[..3 + self.spatial_dims];
        weights.put(join_key(prefix, "weight"), weight, stored);
        if let Some(bias) = &self.bias {
            weights.put(join_key(prefix, "bias"), bias.val(), &bias.dims());
        }
    }

    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        self.folded = None;
        self.fused_activation = None;
        let device = self.kernel.device();
        let [rows, c_in_g, kh, kw] = self.kernel.dims();
        let shape = [rows / self.taps, c_in_g, self.taps, kh, kw];
        let stored = &shape[..3 + self.spatial_dims];
        let weight = weights.take(&join_key(prefix, "weight"), stored, shape, &device)?;
        self.kernel = Param::from_tensor(self.layout.step_kernel(weight, self.groups));
        if let Some(bias) = &self.bias {
            let shape = bias.dims();
            self.bias = Some(Param::from_tensor(weights.take(
                &join_key(prefix, "bias"),
                &shape,
                shape,
                &device,
            )?));
        }
        Ok(())
    }
}
