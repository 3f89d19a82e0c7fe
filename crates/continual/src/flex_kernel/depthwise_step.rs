//! One step of a continual depthwise convolution, fused into a single pass on flex: every
//! temporal tap's 2-D depthwise convolution of the new frame is added to the running partial
//! sums in place, and the completed output comes out with its bias.
//!
//! The generic path (`CoConv::tap_products` and `CoConv::advance`) runs the same step as a
//! flex depthwise `conv2d` (a scalar loop, ~0.9 G multiply-adds/s on the development VM), a
//! gather and an add of the partial sums, another gather for the newest slot and a `cat`:
//! six passes over the step's largest buffers, and a third of a CoX3D-S step.
//!
//! # Method
//! A 2-D correlation with stride `s` is a set of stride-1 correlations over the input's
//! `s_h · s_w` phases (the input sampled at rows `≡ a (mod s_h)` and columns
//! `≡ b (mod s_w)`). Each input plane is copied once into its zero-padded phases
//! ([`PhaseGrid`]), in which every spatial tap reads one contiguous run: the output rows,
//! laid side by side at the phases' width ("wide" rows whose last columns are discarded), are
//! a sum of `kh · kw` shifted copies of the phases. [`correlate`] sums them in register
//! blocks of [`BLOCK`] values, in tap order, so results are identical at every vector width.

use burn::prelude::*;
use burn::tensor::DType;

use super::{flex_from_values, from_flex, is_flex, to_flex};

/// Values summed per register block by [`correlate`] (eight AVX2 or four AVX-512 registers).
const BLOCK: usize = 64;

/// The block size of [`correlate`] after the last whole [`BLOCK`].
const SHORT_BLOCK: usize = 16;

/// Sizes of a continual depthwise conv's step: one kernel channel per input channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DepthwiseStep {
    /// Channels (input and output).
    pub(crate) channels: usize,
    /// Temporal taps `k` of the kernel.
    pub(crate) taps: usize,
    /// Temporal dilation: the kernel spans `dilation · (k − 1) + 1` frames.
    pub(crate) temporal_dilation: usize,
    /// Spatial kernel `[height, width]`.
    pub(crate) kernel: [usize; 2],
    /// Spatial stride `[height, width]`.
    pub(crate) stride: [usize; 2],
    /// Spatial zero padding `[height, width]`, both sides.
    pub(crate) padding: [usize; 2],
    /// Spatial dilation `[height, width]`.
    pub(crate) dilation: [usize; 2],
}

impl DepthwiseStep {
    /// Frames the kernel spans; the state holds `span − 1` partial sums.
    fn span(&self) -> usize {
        self.temporal_dilation * (self.taps - 1) + 1
    }

    /// Output plane `[height, width]` for an input plane, `None` if the kernel does not fit.
    fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let size = |d: usize| {
            let reach = self.dilation[d] * (self.kernel[d] - 1) + 1;
            (input[d] + 2 * self.padding[d])
                .checked_sub(reach)
                .map(|free| free / self.stride[d] + 1)
        };
        Some([size(0)?, size(1)?])
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
        pulp::Arch::new().dispatch(Dispatched {
            step: self,
            frame,
            input,
            kernel,
            bias,
            sums,
            output,
        });
    }
}

/// The arguments of [`DepthwiseStep::run`], for pulp to compile the step once per
/// instruction set: everything the step calls is `#[inline(always)]`, so it is generated
/// inside pulp's `#[target_feature]` functions (a closure would be called out of line and
/// compiled for the baseline CPU).
struct Dispatched<'a> {
    step: &'a DepthwiseStep,
    frame: &'a [f32],
    input: [usize; 2],
    kernel: &'a [f32],
    bias: Option<&'a [f32]>,
    sums: &'a mut [f32],
    output: &'a mut [f32],
}

impl Dispatched<'_> {
    /// The step, inlined into each of pulp's instruction-set variants.
    #[inline(always)]
    fn compute(self) {
        let (step, frame, input, kernel) = (self.step, self.frame, self.input, self.kernel);
        let (bias, sums, output) = (self.bias, self.sums, self.output);
        let Some(grid) = PhaseGrid::new(step, input) else {
            return;
        };
        let channels = step.channels;
        let [oh, ow] = grid.output;
        let plane = oh * ow;
        let slots = step.span() - 1;
        let spatial_taps = step.kernel[0] * step.kernel[1];
        let offsets = grid.tap_offsets(step);
        let mut phases = vec![0.0; grid.len() + SHORT_BLOCK];
        let mut wide = vec![0.0; grid.wide_len().next_multiple_of(SHORT_BLOCK)];
        let mut taps: Vec<(usize, f32)> = Vec::with_capacity(spatial_taps);
        let input_plane = input[0] * input[1];
        let rows = output.len() / (channels * plane);
        for row in 0..rows {
            for channel in 0..channels {
                let x = &frame[(row * channels + channel) * input_plane..][..input_plane];
                grid.fill(x, input, &mut phases[..grid.len()]);
                let slot = |i: usize| ((row * slots + i) * channels + channel) * plane;
                for position in 0..=slots {
                    // The destination starts as the partial sum one frame older (zero for the
                    // newest); position 0 is the output.
                    let dest = if position == 0 {
                        let out = &mut output[(row * channels + channel) * plane..][..plane];
                        out.copy_from_slice(&sums[slot(0)..][..plane]);
                        out
                    } else {
                        let start = slot(position - 1);
                        if position < slots {
                            sums.copy_within(slot(position)..slot(position) + plane, start);
                        } else {
                            sums[start..start + plane].fill(0.0);
                        }
                        &mut sums[start..start + plane]
                    };
                    if position % step.temporal_dilation == 0 {
                        let tap = position / step.temporal_dilation;
                        let weights =
                            &kernel[(tap * channels + channel) * spatial_taps..][..spatial_taps];
                        taps.clear();
                        taps.extend(offsets.iter().copied().zip(weights.iter().copied()));
                        correlate(&phases, &taps, &mut wide);
                        for (dest_row, wide_row) in
                            dest.chunks_exact_mut(ow).zip(wide.chunks(grid.width))
                        {
                            for (d, z) in dest_row.iter_mut().zip(wide_row) {
                                *d += z;
                            }
                        }
                    }
                    if let (0, Some(bias)) = (position, bias) {
                        dest.iter_mut().for_each(|d| *d += bias[channel]);
                    }
                }
            }
        }
    }
}

impl pulp::WithSimd for Dispatched<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.compute();
    }
}

/// The zero-padded phases of one input plane, laid out so that every spatial tap of a
/// strided, dilated correlation reads one contiguous run (see the module docs).
struct PhaseGrid {
    stride: [usize; 2],
    padding: [usize; 2],
    /// Output plane `[height, width]`.
    output: [usize; 2],
    /// Rows of each phase.
    height: usize,
    /// Columns of each phase, the width of the wide output rows.
    width: usize,
}

impl PhaseGrid {
    fn new(step: &DepthwiseStep, input: [usize; 2]) -> Option<Self> {
        let output = step.output_size(input)?;
        let reach = |d: usize| (step.kernel[d] - 1) * step.dilation[d] / step.stride[d];
        Some(PhaseGrid {
            stride: step.stride,
            padding: step.padding,
            output,
            height: output[0] + reach(0),
            width: output[1] + reach(1),
        })
    }

    fn phase_len(&self) -> usize {
        self.height * self.width
    }

    /// Values in all phases.
    fn len(&self) -> usize {
        self.stride[0] * self.stride[1] * self.phase_len()
    }

    /// Values in the wide output rows (the last row without its discarded columns).
    fn wide_len(&self) -> usize {
        (self.output[0] - 1) * self.width + self.output[1]
    }

    /// Where each spatial tap (row-major `[kh, kw]`) starts reading in the phases.
    fn tap_offsets(&self, step: &DepthwiseStep) -> Vec<usize> {
        let [sh, sw] = self.stride;
        let mut offsets = Vec::with_capacity(step.kernel[0] * step.kernel[1]);
        for ky in 0..step.kernel[0] {
            let (dy, a) = (ky * step.dilation[0] / sh, ky * step.dilation[0] % sh);
            for kx in 0..step.kernel[1] {
                let (dx, b) = (kx * step.dilation[1] / sw, kx * step.dilation[1] % sw);
                offsets.push((a * sw + b) * self.phase_len() + dy * self.width + dx);
            }
        }
        offsets
    }

    /// Copies the input plane `x` (`[H, W]`) into its zero-padded phases.
    #[inline(always)]
    fn fill(&self, x: &[f32], [h, w]: [usize; 2], phases: &mut [f32]) {
        let [sh, sw] = self.stride;
        let [ph, pw] = self.padding;
        for (index, phase) in phases.chunks_exact_mut(self.phase_len()).enumerate() {
            let (a, b) = (index / sw, index % sw);
            // Phase column q reads input column q·sw + b − pw; those in [0, w) are first..end.
            let first = pw.saturating_sub(b).div_ceil(sw);
            let end = (w + pw).saturating_sub(b).div_ceil(sw).min(self.width);
            for (r, phase_row) in phase.chunks_exact_mut(self.width).enumerate() {
                let y = (r * sh + a).checked_sub(ph).filter(|&y| y < h);
                let (Some(y), true) = (y, first < end) else {
                    phase_row.fill(0.0);
                    continue;
                };
                phase_row[..first].fill(0.0);
                phase_row[end..].fill(0.0);
                let x_row = &x[y * w + first * sw + b - pw..(y + 1) * w];
                let columns = &mut phase_row[first..end];
                if sw == 1 {
                    columns.copy_from_slice(&x_row[..columns.len()]);
                } else {
                    for (value, input) in columns.iter_mut().zip(x_row.iter().step_by(sw)) {
                        *value = *input;
                    }
                }
            }
        }
    }
}

/// `wide[i] = Σ_t weight_t · phases[offset_t + i]`, summed in tap order in register blocks
/// of [`BLOCK`] values, then of [`SHORT_BLOCK`] for the rest (fixed-size arrays, so the
/// compiler keeps a block in vector registers across the taps). `wide` is a whole number of
/// short blocks and `phases` ends in [`SHORT_BLOCK`] zeros, so no block is partial.
#[inline(always)]
fn correlate(phases: &[f32], taps: &[(usize, f32)], wide: &mut [f32]) {
    let long = wide.len() / BLOCK * BLOCK;
    let (head, rest) = wide.split_at_mut(long);
    correlate_blocks::<BLOCK>(phases, taps, head, 0);
    correlate_blocks::<SHORT_BLOCK>(phases, taps, rest, long);
}

/// [`correlate`] over `wide`, which starts at `start` in the wide rows, in blocks of `N`.
#[inline(always)]
fn correlate_blocks<const N: usize>(
    phases: &[f32],
    taps: &[(usize, f32)],
    wide: &mut [f32],
    start: usize,
) {
    for (index, out) in wide.chunks_exact_mut(N).enumerate() {
        let start = start + index * N;
        let mut acc = [0.0f32; N];
        for &(offset, weight) in taps {
            if let Some(src) = phases[offset + start..].first_chunk::<N>() {
                for (a, s) in acc.iter_mut().zip(src) {
                    *a += weight * s;
                }
            }
        }
        out.copy_from_slice(&acc);
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
    use super::DepthwiseStep;

    /// A deterministic pseudo-random value in [-1, 1).
    fn value(i: usize) -> f32 {
        let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        (x as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| value(i * 31 + seed)).collect()
    }

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
        let [kh, kw] = step.kernel;
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
                                        let y = (oy * step.stride[0] + ky * step.dilation[0])
                                            .checked_sub(step.padding[0]);
                                        let x = (ox * step.stride[1] + kx * step.dilation[1])
                                            .checked_sub(step.padding[1]);
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
        let kernel = values(step.taps * c * step.kernel[0] * step.kernel[1], 2);
        let bias = with_bias.then(|| values(c, 3));
        let mut sums = values(rows * (step.span() - 1) * c * oh * ow, 4);
        let (expected_output, expected_sums) =
            naive(&step, rows, input, &frame, &kernel, bias.as_deref(), &sums);
        let mut output = vec![f32::NAN; rows * c * oh * ow];
        step.run(
            &frame,
            input,
            &kernel,
            bias.as_deref(),
            &mut sums,
            &mut output,
        );
        for (name, got, want) in [
            ("output", &output, &expected_output),
            ("sums", &sums, &expected_sums),
        ] {
            for (i, (g, e)) in got.iter().zip(want.iter()).enumerate() {
                assert!((g - e).abs() <= 1e-5, "{step:?} {name}[{i}]: {g} != {e}");
            }
        }
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
        for (taps, temporal_dilation, kernel, stride, padding, dilation, input) in cases {
            let step = DepthwiseStep {
                channels: 3,
                taps,
                temporal_dilation,
                kernel,
                stride,
                padding,
                dilation,
            };
            check(step, 2, input, true);
            check(step, 1, input, false);
        }
    }
}
