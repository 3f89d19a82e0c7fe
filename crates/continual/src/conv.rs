//! Continual convolution over time (1-D, 2-D and 3-D in torch terms), with temporal kernel,
//! padding, stride and dilation, spatial stride, padding and dilation, groups and bias.
//!
//! # Step algorithm
//! A temporal kernel of `k` taps and dilation `δ` spans `R = δ(k-1)+1` frames. Each step runs
//! one 2-D convolution of the new frame with all taps stacked along the output channels
//! (newest tap first), giving `Z[0..R]`. The state keeps `R-1` running partial sums `S`, one
//! per output still waiting for frames (the reference keeps `(k-1)` slots of `(k-1)` partial
//! products each). With `U = [S, 0] + Z`, the output is `U[0]` and the next state `U[1..R]`.

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::module::{conv2d, conv3d};
use burn::tensor::ops::ConvOptions;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::module::{stack_frames, CoModule};
use crate::per_frame::eager;
use crate::state::{take_slots, State};
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
        Ok(CoConv {
            weight: eager(init.init([c_out, c_in / self.groups, kt, kh, kw], device)),
            bias: self.bias.then(|| eager(init.init([c_out], device))),
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            spatial_dims: self.spatial_dims,
        })
    }
}

/// A continual convolution (`co.Conv1d/2d/3d`). Built by [`CoConvConfig::init`].
#[derive(Module, Debug)]
pub struct CoConv<B: Backend> {
    /// Kernel `[channels_out, channels_in / groups, time, height, width]`.
    pub weight: Param<Tensor<B, 5>>,
    /// Bias `[channels_out]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
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
}

impl<B: Backend> CoConv<B> {
    /// Temporal span of the kernel in frames, `dilation * (kernel - 1) + 1`.
    fn span(&self) -> usize {
        let kt = self.weight.dims()[2];
        self.dilation[0] * (kt - 1) + 1
    }

    /// Whether a step needs no memory of earlier frames (temporal kernel 1, no padding).
    fn is_stateless(&self) -> bool {
        self.span() == 1
    }

    fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    fn spatial_options(&self) -> ConvOptions<2> {
        ConvOptions::new(
            [self.stride[1], self.stride[2]],
            [self.padding[1], self.padding[2]],
            [self.dilation[1], self.dilation[2]],
            self.groups,
        )
    }

    /// The weight with temporal dilation written out as zero taps between the real ones.
    ///
    /// # Shapes
    /// - output: `[channels_out, channels_in / groups, span, kh, kw]`
    fn dilated_weight(&self) -> Tensor<B, 5> {
        let weight = self.weight.val();
        if self.dilation[0] == 1 {
            return weight;
        }
        let [c_out, c_in_g, kt, kh, kw] = weight.dims();
        let gap = Tensor::zeros(
            [c_out, c_in_g, self.dilation[0] - 1, kh, kw],
            &weight.device(),
        );
        let mut taps = Vec::with_capacity(self.span());
        for j in 0..kt {
            if j > 0 {
                taps.push(gap.clone());
            }
            taps.push(weight.clone().narrow(2, j, 1));
        }
        Tensor::cat(taps, 2)
    }

    /// All temporal taps as one 2-D kernel, newest tap first, grouped so that the output
    /// channels read `[groups, span, channels_out / groups]`. Dilation gaps are zero taps.
    ///
    /// # Shapes
    /// - output: `[groups * span * (channels_out / groups), channels_in / groups, height, width]`
    fn stacked_kernel(&self) -> Tensor<B, 4> {
        let [c_out, c_in_g, _, kh, kw] = self.weight.dims();
        let span = self.span();
        let g = self.groups;
        self.dilated_weight()
            .flip([2])
            .reshape([g, c_out / g, c_in_g, span, kh, kw])
            .permute([0, 3, 1, 2, 4, 5])
            .reshape([g * span * (c_out / g), c_in_g, kh, kw])
    }

    /// Whether every group has one input and one output channel (a depthwise conv).
    fn is_depthwise(&self) -> bool {
        let [c_out, c_in_g, ..] = self.weight.dims();
        c_in_g == 1 && c_out == self.groups
    }

    /// The tap products of a depthwise conv's step, tap-major: the frame is repeated once per
    /// tap along the channels and convolved with all taps' kernels as one depthwise conv
    /// (`span × C` groups of one channel each). The CPU backends run depthwise convolutions
    /// several times faster than grouped ones with several outputs per group, and the
    /// repetition is a contiguous copy (burn 0.21, 54 channels × 3 taps at 40×40: the
    /// grouped form took 10.5 ms on ndarray and 6.5 ms on flex, this one 3 and 0.8 ms).
    ///
    /// # Shapes
    /// - frame: `[N, C, H, W]`
    /// - output: `[N, 1, span, C, H', W']` (the partial-sum layout with one group of `C`)
    fn depthwise_taps(&self, frame: Tensor<B, 4>) -> Tensor<B, 6> {
        let [c, _, _, kh, kw] = self.weight.dims();
        let span = self.span();
        let rows = frame.dims()[0];
        let kernel = self
            .dilated_weight()
            .flip([2])
            .permute([2, 0, 1, 3, 4])
            .reshape([span * c, 1, kh, kw]);
        let repeated = Tensor::cat(vec![frame; span], 1);
        let options = ConvOptions::new(
            [self.stride[1], self.stride[2]],
            [self.padding[1], self.padding[2]],
            [self.dilation[1], self.dilation[2]],
            span * c,
        );
        let z = conv2d(repeated, kernel, None, options);
        let [_, _, h, w] = z.dims();
        z.reshape([rows, 1, span, c, h, w])
    }

    /// The per-frame (2-D) convolution of a step. A 1×1 kernel without spatial stride or
    /// padding runs as one (grouped) matrix product, which is faster than the backends'
    /// convolutions for pointwise layers and avoids a wrong result of burn 0.21's wgpu
    /// `conv2d` on frames of width 1.
    ///
    /// # Shapes
    /// - frame: `[N, C_in, H, W]`; kernel: `[C_out', C_in / groups, kh, kw]`
    /// - output: `[N, C_out', H', W']`
    fn spatial_conv(
        &self,
        frame: Tensor<B, 4>,
        kernel: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
    ) -> Tensor<B, 4> {
        let [c_out, c_in_g, kh, kw] = kernel.dims();
        let pointwise =
            [kh, kw] == [1, 1] && self.stride[1..] == [1, 1] && self.padding[1..] == [0, 0];
        if !pointwise {
            return conv2d(frame, kernel, bias, self.spatial_options());
        }
        let [n, _, h, w] = frame.dims();
        let g = self.groups;
        let x = frame.reshape([n, g, c_in_g, h * w]);
        let k = kernel
            .reshape([1, g, c_out / g, c_in_g])
            .expand([n, g, c_out / g, c_in_g]);
        let out = k.matmul(x).reshape([n, c_out, h, w]);
        match bias {
            Some(b) => out + b.reshape([1, c_out, 1, 1]),
            None => out,
        }
    }

    fn bias_frame(&self) -> Option<Tensor<B, 4>> {
        self.bias
            .as_ref()
            .map(|b| b.val().reshape([1, self.out_channels(), 1, 1]))
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
        let emit = state.row_decision(|s| self.timing().emits_at(s));
        state.advance();
        emit.then(|| {
            let out = output.reshape([rows, g * c_g, h, w]);
            match self.bias_frame() {
                Some(bias) => out + bias,
                None => out,
            }
        })
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
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
            options,
        )
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let [c_out, c_in_g, _, kh, kw] = self.weight.dims();
        if self.is_stateless() {
            let emit = state.row_decision(|s| self.timing().emits_at(s));
            state.advance();
            let kernel = self.weight.val().reshape([c_out, c_in_g, kh, kw]);
            return emit
                .then(|| self.spatial_conv(frame, kernel, self.bias.as_ref().map(Param::val)));
        }
        let rows = frame.dims()[0];
        let span = self.span();
        let z = if self.is_depthwise() {
            self.depthwise_taps(frame)
        } else {
            let g = self.groups;
            let z = self.spatial_conv(frame, self.stacked_kernel(), None);
            let [_, _, h, w] = z.dims();
            z.reshape([rows, g, span, c_out / g, h, w])
        };
        let [_, g, _, c_g, h, w] = z.dims();
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
        let shape = self.weight.dims();
        let stored = &shape[..3 + self.spatial_dims];
        weights.put(join_key(prefix, "weight"), self.weight.val(), stored);
        if let Some(bias) = &self.bias {
            weights.put(join_key(prefix, "bias"), bias.val(), &bias.dims());
        }
    }

    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        let device = self.weight.device();
        let shape = self.weight.dims();
        let stored = &shape[..3 + self.spatial_dims];
        self.weight = Param::from_tensor(weights.take(
            &join_key(prefix, "weight"),
            stored,
            shape,
            &device,
        )?);
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
