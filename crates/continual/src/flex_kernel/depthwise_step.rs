//! One step of a continual depthwise convolution, fused into a single pass on flex: every
//! temporal tap's 2-D depthwise convolution of the new frame is added to the running partial
//! sums in place, and the completed output comes out with its bias.
//!
//! The generic path (`CoConv::tap_products` and `CoConv::advance`) runs the same step as a
//! flex depthwise `conv2d` (a scalar loop, ~0.9 G multiply-adds/s on the development VM), a
//! gather and an add of the partial sums, another gather for the newest slot and a `cat`:
//! six passes over the step's largest buffers, and a third of a CoX3D-S step.
//!
//! # Methods
//! Two ways to vectorise the same sums ([`Method`]), chosen by the size of the output plane:
//! - [`planar`] vectorises along each channel's plane: for large planes, where a plane fills
//!   many registers.
//! - [`channels_last`] vectorises across channels, on a channels-last copy of the frame: for
//!   small planes (X3D's 10×10 and 5×5 stages), where the per-channel work around a few
//!   short rows dominated the planar method.
//!
//! Both sum every value in the same order (the spatial taps in row-major order from zero,
//! then the partial sum one frame older plus that, then the bias), so they give identical
//! results, at every vector width.

use burn::prelude::*;
use burn::tensor::DType;

use super::phases::Spatial;
use super::{flex_from_values, from_flex, is_flex, to_flex};

mod channels_last;
mod planar;

/// How [`DepthwiseStep::run`] vectorises a step (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// Along each channel's plane ([`planar`]).
    Planar,
    /// Across channels, on a channels-last copy of the frame ([`channels_last`]).
    ChannelsLast,
}

/// Output planes of at most this many values step channels-last. Measured on X3D-S's stage
/// shapes (BENCHMARKS.md): channels-last is faster at 10×10 and 5×5, planar at 20×20 and
/// 40×40.
const CHANNELS_LAST_MAX_PLANE: usize = 200;

/// Sizes of a continual depthwise conv's step: one kernel channel per input channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DepthwiseStep {
    /// Channels (input and output).
    pub(crate) channels: usize,
    /// Temporal taps `k` of the kernel.
    pub(crate) taps: usize,
    /// Temporal dilation: the kernel spans `dilation · (k − 1) + 1` frames.
    pub(crate) temporal_dilation: usize,
    /// The spatial correlation of each tap.
    pub(crate) spatial: Spatial,
}

impl DepthwiseStep {
    /// Frames the kernel spans; the state holds `span − 1` partial sums.
    fn span(&self) -> usize {
        self.temporal_dilation * (self.taps - 1) + 1
    }

    /// Output plane `[height, width]` for an input plane, `None` if the kernel does not fit.
    fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.spatial.output_size(input)
    }

    /// Runs the step on host slices, dispatched to the CPU's best vector instructions.
    ///
    /// # Shapes
    /// - frame: `[rows, C, H, W]`
    /// - kernel: `[k, C, kh, kw]`, newest tap first
    /// - bias: `[C]`
    /// - sums: `[rows, span − 1, C, H', W']`, updated in place
    /// - output: `[rows, C, H', W']`, overwritten
    pub(crate) fn run(
        &self,
        frame: &[f32],
        input: [usize; 2],
        kernel: &[f32],
        bias: Option<&[f32]>,
        sums: &mut [f32],
        output: &mut [f32],
    ) {
        let Some(output_size) = self.output_size(input) else {
            return;
        };
        let method = if output_size[0] * output_size[1] <= CHANNELS_LAST_MAX_PLANE {
            Method::ChannelsLast
        } else {
            Method::Planar
        };
        let buffers = StepBuffers {
            step: self,
            frame,
            input,
            output_size,
            kernel,
            bias,
            sums,
            output,
        };
        buffers.run(method);
    }
}

/// The operands of one step, as [`DepthwiseStep::run`] describes them.
struct StepBuffers<'a> {
    step: &'a DepthwiseStep,
    frame: &'a [f32],
    /// Input plane `[H, W]`.
    input: [usize; 2],
    /// Output plane `[H', W']`.
    output_size: [usize; 2],
    kernel: &'a [f32],
    bias: Option<&'a [f32]>,
    sums: &'a mut [f32],
    output: &'a mut [f32],
}

impl StepBuffers<'_> {
    /// Runs the step by `method`, dispatched to the CPU's best vector instructions.
    fn run(self, method: Method) {
        pulp::Arch::new().dispatch(Dispatched {
            method,
            buffers: self,
        });
    }

    /// Batch rows in the step.
    fn rows(&self) -> usize {
        let [oh, ow] = self.output_size;
        self.output.len() / (self.step.channels * oh * ow)
    }

    /// Advances channel `channel` of batch row `row` by one frame: each partial sum becomes
    /// the one a frame older plus the products of the tap that covers its position (with
    /// temporal dilation, not every position is covered), the oldest completes into the
    /// output (plus the bias), and the newest starts from the products alone.
    #[inline(always)]
    fn advance_channel(&mut self, row: usize, channel: usize, products: &mut impl TapProducts) {
        let step = self.step;
        let channels = step.channels;
        let plane = self.output_size[0] * self.output_size[1];
        let slots = step.span() - 1;
        let slot = |i: usize| ((row * slots + i) * channels + channel) * plane;
        for position in 0..=slots {
            // Position 0 is the output; position i > 0 is partial sum i − 1 of the next state.
            let (dest, older) = if position == 0 {
                let out = &mut self.output[(row * channels + channel) * plane..][..plane];
                (out, Some(&self.sums[slot(0)..][..plane]))
            } else if position < slots {
                let (newer, older) = self.sums.split_at_mut(slot(position));
                let dest = &mut newer[slot(position - 1)..][..plane];
                (dest, Some(&older[..plane]))
            } else {
                (&mut self.sums[slot(position - 1)..][..plane], None)
            };
            if position % step.temporal_dilation == 0 {
                products.sum_into(position / step.temporal_dilation, channel, older, dest);
            } else {
                match older {
                    Some(older) => dest.copy_from_slice(older),
                    None => dest.fill(0.0),
                }
            }
            if let (0, Some(bias)) = (position, self.bias) {
                dest.iter_mut().for_each(|d| *d += bias[channel]);
            }
        }
    }
}

/// One method's products of the new frame with each temporal tap, for
/// [`StepBuffers::advance_channel`]. A trait rather than a closure: its `#[inline(always)]`
/// method is compiled into pulp's instruction-set variants, where a closure's body may be
/// called out of line and compiled for the baseline CPU.
trait TapProducts {
    /// `dest = older + products` of temporal tap `tap` for `channel` (`older` absent:
    /// `dest = products`); all `[H', W']`.
    fn sum_into(&mut self, tap: usize, channel: usize, older: Option<&[f32]>, dest: &mut [f32]);
}

/// `dest = older + products` element by element (`older` absent: `dest = products`).
#[inline(always)]
fn sum_into<'a>(dest: &mut [f32], older: Option<&[f32]>, products: impl Iterator<Item = &'a f32>) {
    match older {
        Some(older) => {
            for ((d, o), z) in dest.iter_mut().zip(older).zip(products) {
                *d = o + z;
            }
        }
        None => {
            for (d, z) in dest.iter_mut().zip(products) {
                *d = *z;
            }
        }
    }
}

/// A step and its method, for pulp to compile once per instruction set: everything the step
/// calls is `#[inline(always)]`, so it is generated inside pulp's `#[target_feature]`
/// functions (a closure handed to `dispatch` would be called out of line and compiled for the
/// baseline CPU).
struct Dispatched<'a> {
    method: Method,
    buffers: StepBuffers<'a>,
}

impl pulp::WithSimd for Dispatched<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        match self.method {
            Method::Planar => planar::step(self.buffers),
            Method::ChannelsLast => channels_last::step(self.buffers),
        }
    }
}

/// One fused step of a continual depthwise conv on flex: the output for the new `frame`,
/// with the partial sums advanced in place. `None` (with `sums` untouched) when `B` is not
/// flex or a tensor is not `f32`; the caller then runs the generic step.
///
/// # Shapes
/// - frame: `[N, C, H, W]`
/// - kernel: `[k · C, 1, kh, kw]`, tap-major, newest tap first
/// - bias: `[C]`
/// - sums: `[N, 1, span − 1, C, H', W']`
/// - output: `[N, C, H', W']`
pub(crate) fn depthwise_step<B: Backend>(
    step: &DepthwiseStep,
    frame: Tensor<B, 4>,
    kernel: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    sums: &mut Option<Tensor<B, 6>>,
) -> Option<Tensor<B, 4>> {
    let all_f32 = frame.dtype() == DType::F32
        && kernel.dtype() == DType::F32
        && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32)
        && sums.as_ref().is_some_and(|s| s.dtype() == DType::F32);
    if !is_flex::<B>() || !all_f32 {
        return None;
    }
    let [rows, _, h, w] = frame.dims();
    let [oh, ow] = step.output_size([h, w])?;
    let sums_shape = sums.as_ref()?.dims();
    if sums_shape != [rows, 1, step.span() - 1, step.channels, oh, ow] {
        return None;
    }
    let frame = to_flex(frame)?;
    let kernel = to_flex(kernel)?;
    let bias = match bias {
        Some(bias) => Some(to_flex(bias)?),
        None => None,
    };
    let mut partial = to_flex(sums.take()?)?;
    let mut output = vec![0.0; rows * step.channels * oh * ow];
    step.run(
        frame.as_slice()?,
        [h, w],
        kernel.as_slice()?,
        bias.as_ref().and_then(|b| b.as_slice()),
        partial.storage_mut(),
        &mut output,
    );
    *sums = Some(from_flex(partial)?);
    from_flex(flex_from_values(output, vec![rows, step.channels, oh, ow]))
}

#[cfg(test)]
mod tests {
    use super::{DepthwiseStep, Method, Spatial, StepBuffers};
    use crate::flex_kernel::test_values as values;

    /// The step by the definition: the correlation of every tap, then the partial sums
    /// shifted by one frame.
    fn naive(
        step: &DepthwiseStep,
        rows: usize,
        [h, w]: [usize; 2],
        frame: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        sums: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let c = step.channels;
        let [oh, ow] = step.output_size([h, w]).unwrap();
        let [kh, kw] = step.spatial.kernel;
        let Spatial {
            stride,
            dilation,
            padding,
            ..
        } = step.spatial;
        let span = step.span();
        let slot = |n: usize, i: usize, ch: usize| ((n * (span - 1) + i) * c + ch) * oh * ow;
        let mut output = vec![0.0; rows * c * oh * ow];
        let mut next = vec![0.0; sums.len()];
        for n in 0..rows {
            for ch in 0..c {
                for position in 0..span {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut z = 0.0;
                            if position % step.temporal_dilation == 0 {
                                let tap = position / step.temporal_dilation;
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let y = (oy * stride[0] + ky * dilation[0])
                                            .checked_sub(padding[0]);
                                        let x = (ox * stride[1] + kx * dilation[1])
                                            .checked_sub(padding[1]);
                                        if let (Some(y), Some(x)) = (y, x) {
                                            if y < h && x < w {
                                                z += kernel[((tap * c + ch) * kh + ky) * kw + kx]
                                                    * frame[((n * c + ch) * h + y) * w + x];
                                            }
                                        }
                                    }
                                }
                            }
                            let at = oy * ow + ox;
                            let older = if position < span - 1 {
                                sums[slot(n, position, ch) + at]
                            } else {
                                0.0
                            };
                            if position == 0 {
                                let b = bias.map_or(0.0, |b| b[ch]);
                                output[(n * c + ch) * oh * ow + at] = older + z + b;
                            } else {
                                next[slot(n, position - 1, ch) + at] = older + z;
                            }
                        }
                    }
                }
            }
        }
        (output, next)
    }

    fn check(step: DepthwiseStep, rows: usize, input: [usize; 2], with_bias: bool) {
        let c = step.channels;
        let [oh, ow] = step.output_size(input).unwrap();
        let frame = values(rows * c * input[0] * input[1], 1);
        let kernel = values(
            step.taps * c * step.spatial.kernel[0] * step.spatial.kernel[1],
            2,
        );
        let bias = with_bias.then(|| values(c, 3));
        let sums = values(rows * (step.span() - 1) * c * oh * ow, 4);
        let (expected_output, expected_sums) =
            naive(&step, rows, input, &frame, &kernel, bias.as_deref(), &sums);
        let mut results = Vec::new();
        for method in [Method::Planar, Method::ChannelsLast] {
            let mut method_sums = sums.clone();
            let mut output = vec![f32::NAN; rows * c * oh * ow];
            let buffers = StepBuffers {
                step: &step,
                frame: &frame,
                input,
                output_size: [oh, ow],
                kernel: &kernel,
                bias: bias.as_deref(),
                sums: &mut method_sums,
                output: &mut output,
            };
            buffers.run(method);
            for (name, got, want) in [
                ("output", &output, &expected_output),
                ("sums", &method_sums, &expected_sums),
            ] {
                for (i, (g, e)) in got.iter().zip(want.iter()).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-5,
                        "{method:?} {step:?} {name}[{i}]: {g} != {e}"
                    );
                }
            }
            results.push((output, method_sums));
        }
        // Both methods sum in the same order: their results are identical, not only close.
        assert!(
            results.windows(2).all(|pair| pair[0] == pair[1]),
            "{step:?}: the methods differ"
        );
    }

    #[test]
    fn fused_step_matches_the_definition() {
        // X3D's blocks (stride 1 and 2), its stem's temporal conv (1×1, five taps), and
        // geometries no model uses: dilations, asymmetric kernels, strides and padding,
        // planes narrower than a register block and wider than one.
        // (taps, temporal dilation, kernel, stride, padding, dilation, input)
        let cases = [
            (3, 1, [3, 3], [1, 1], [1, 1], [1, 1], [7, 9]),
            (3, 1, [3, 3], [2, 2], [1, 1], [1, 1], [8, 9]),
            (5, 1, [1, 1], [1, 1], [0, 0], [1, 1], [5, 6]),
            (3, 2, [3, 3], [1, 1], [1, 1], [1, 1], [6, 5]),
            (3, 1, [3, 3], [1, 1], [2, 0], [2, 1], [9, 7]),
            (3, 1, [2, 5], [3, 1], [0, 2], [1, 1], [10, 11]),
            (2, 1, [3, 3], [1, 2], [1, 1], [1, 1], [4, 70]),
        ];
        // Channels fewer than a register block of the channels-last method, and more.
        for channels in [3, 18] {
            for (taps, temporal_dilation, kernel, stride, padding, dilation, input) in cases {
                let step = DepthwiseStep {
                    channels,
                    taps,
                    temporal_dilation,
                    spatial: Spatial {
                        kernel,
                        stride,
                        padding,
                        dilation,
                    },
                };
                check(step, 2, input, true);
                check(step, 1, input, false);
            }
        }
    }
}
