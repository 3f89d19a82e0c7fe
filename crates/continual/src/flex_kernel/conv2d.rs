//! A 2-D convolution with a spatial kernel and few input channels per group on flex, by
//! phases: X3D's stem (3 → 24 channels, 3×3, stride 2 at 160×160), which flex runs through
//! its im2col `conv3d` and a matrix product over only 27 values per output (9% of a CoX3D-S
//! step on the development VM).
//!
//! Every input channel of a batch row is copied once into its zero-padded phases
//! ([`PhaseGrid`]); each output channel is then one [`correlate`] over its group's phases,
//! with `C_in / groups · kh · kw` taps.

use burn::prelude::*;
use burn::tensor::DType;

use super::phases::{correlate, PhaseGrid, Spatial, SHORT_BLOCK};
use super::{flex_from_values, from_flex, is_flex, to_flex};

/// Convolutions with more taps per output (`C_in / groups · kh · kw`) than this go to flex's
/// `conv2d`, whose matrix product reuses each loaded value across output channels.
const MAX_TAPS: usize = 64;

/// `conv2d(frame, kernel, bias)` on flex by phases; `None` when `B` is not flex, a tensor is
/// not `f32`, the kernel is 1×1 or has more than [`MAX_TAPS`] taps per output, or the sizes
/// do not fit (the caller then runs burn's `conv2d`).
///
/// # Shapes
/// - frame: `[N, C_in, H, W]`
/// - kernel: `[C_out, C_in / groups, kh, kw]`
/// - bias: `[C_out]`
/// - output: `[N, C_out, H', W']`
pub(crate) fn conv2d<B: Backend>(
    frame: &Tensor<B, 4>,
    kernel: &Tensor<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    spatial: Spatial,
    groups: usize,
) -> Option<Tensor<B, 4>> {
    let all_f32 = frame.dtype() == DType::F32
        && kernel.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32);
    let [c_out, c_in_group, kh, kw] = kernel.dims();
    let [rows, c_in, h, w] = frame.dims();
    let fits = [kh, kw] == spatial.kernel
        && kh * kw > 1
        && c_in_group * kh * kw <= MAX_TAPS
        && groups > 0
        && c_in == c_in_group * groups
        && c_out % groups == 0;
    if !is_flex::<B>() || !all_f32 || !fits {
        return None;
    }
    let [oh, ow] = spatial.output_size([h, w])?;
    let frame = to_flex(frame.clone())?;
    let kernel = to_flex(kernel.clone())?;
    let bias = match bias {
        Some(bias) => Some(to_flex(bias.clone())?),
        None => None,
    };
    let mut output = vec![0.0; rows * c_out * oh * ow];
    pulp::Arch::new().dispatch(PhaseConv {
        spatial,
        channels: [c_in, c_out],
        groups,
        input: [h, w],
        output_size: [oh, ow],
        frame: frame.as_slice()?,
        kernel: kernel.as_slice()?,
        bias: bias.as_ref().and_then(|b| b.as_slice()),
        output: &mut output,
    });
    from_flex(flex_from_values(output, vec![rows, c_out, oh, ow]))
}

/// The operands of [`conv2d`], for pulp to compile once per instruction set (see
/// `depthwise_step::Dispatched`).
struct PhaseConv<'a> {
    spatial: Spatial,
    /// `[C_in, C_out]`.
    channels: [usize; 2],
    groups: usize,
    /// Input plane `[H, W]`.
    input: [usize; 2],
    /// Output plane `[H', W']`.
    output_size: [usize; 2],
    /// `[N, C_in, H, W]`.
    frame: &'a [f32],
    /// `[C_out, C_in / groups, kh · kw]`.
    kernel: &'a [f32],
    /// `[C_out]`.
    bias: Option<&'a [f32]>,
    /// `[N, C_out, H', W']`, overwritten.
    output: &'a mut [f32],
}

impl pulp::WithSimd for PhaseConv<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let grid = PhaseGrid::new(&self.spatial, self.output_size);
        let offsets = grid.tap_offsets(&self.spatial);
        let [h, w] = self.input;
        let [oh, ow] = self.output_size;
        let spatial_taps = offsets.len();
        let [c_in, c_out] = self.channels;
        let (c_in_group, c_out_group) = (c_in / self.groups, c_out / self.groups);
        let rows = self.output.len() / (c_out * oh * ow);
        let mut phases = vec![0.0; c_in * grid.len() + SHORT_BLOCK];
        let mut wide = vec![0.0; grid.wide_len().next_multiple_of(SHORT_BLOCK)];
        let mut taps = Vec::with_capacity(c_in_group * spatial_taps);
        for row in 0..rows {
            let frame = &self.frame[row * c_in * h * w..][..c_in * h * w];
            for (x, channel_phases) in frame
                .chunks_exact(h * w)
                .zip(phases.chunks_exact_mut(grid.len()))
            {
                grid.fill(x, self.input, channel_phases);
            }
            for channel in 0..c_out {
                let group = channel / c_out_group;
                let weights = &self.kernel[channel * c_in_group * spatial_taps..]
                    [..c_in_group * spatial_taps];
                taps.clear();
                for (input_channel, channel_weights) in
                    weights.chunks_exact(spatial_taps).enumerate()
                {
                    let base = (group * c_in_group + input_channel) * grid.len();
                    taps.extend(
                        offsets
                            .iter()
                            .zip(channel_weights)
                            .map(|(&offset, &weight)| (base + offset, weight)),
                    );
                }
                correlate(&phases, &taps, &mut wide);
                let out = &mut self.output[(row * c_out + channel) * oh * ow..][..oh * ow];
                for (out_row, wide_row) in out.chunks_exact_mut(ow).zip(wide.chunks(grid.width)) {
                    out_row.copy_from_slice(&wide_row[..ow]);
                    if let Some(bias) = self.bias {
                        out_row.iter_mut().for_each(|o| *o += bias[channel]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use burn::tensor::module;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::Distribution;
    use burn_flex::Flex;

    use super::{conv2d, Spatial};

    #[test]
    fn phase_conv_matches_flex_conv2d() {
        let device = Default::default();
        Flex::seed(&device, 7);
        // X3D's stem, and geometries it does not use: groups, dilation, asymmetric kernels,
        // strides and padding, planes narrower than a register block and wider than one.
        // (channels [in, out], groups, kernel, stride, padding, dilation, input, bias)
        let cases = [
            ([3, 24], 1, [3, 3], [2, 2], [1, 1], [1, 1], [20, 20], false),
            ([4, 6], 2, [3, 3], [1, 1], [1, 1], [2, 2], [9, 11], true),
            ([2, 3], 1, [2, 5], [3, 1], [0, 2], [1, 1], [10, 7], true),
            ([1, 2], 1, [3, 1], [1, 2], [2, 0], [1, 1], [4, 70], false),
        ];
        for (channels, groups, kernel, stride, padding, dilation, input, with_bias) in cases {
            let [c_in, c_out] = channels;
            let spatial = Spatial {
                kernel,
                stride,
                padding,
                dilation,
            };
            let frame = Tensor::<Flex, 4>::random(
                [2, c_in, input[0], input[1]],
                Distribution::Default,
                &device,
            );
            let weights = Tensor::<Flex, 4>::random(
                [c_out, c_in / groups, kernel[0], kernel[1]],
                Distribution::Default,
                &device,
            );
            let bias = with_bias
                .then(|| Tensor::<Flex, 1>::random([c_out], Distribution::Default, &device));
            let got = conv2d(&frame, &weights, bias.as_ref(), spatial, groups)
                .expect("the phase conv takes this geometry");
            let options = ConvOptions::new(stride, padding, dilation, groups);
            let want = module::conv2d(frame, weights, bias, options);
            assert_eq!(got.dims(), want.dims(), "{spatial:?}");
            let error = (got - want).abs().max().into_scalar();
            assert!(error <= 1e-5, "{spatial:?}: max error {error}");
        }
    }

    #[test]
    fn pointwise_and_wide_kernels_are_left_to_flex() {
        let device = Default::default();
        let frame = Tensor::<Flex, 4>::zeros([1, 80, 8, 8], &device);
        let spatial = |kernel| Spatial {
            kernel,
            stride: [2, 2],
            padding: [0, 0],
            dilation: [1, 1],
        };
        let pointwise = Tensor::<Flex, 4>::zeros([4, 80, 1, 1], &device);
        assert!(conv2d(&frame, &pointwise, None, spatial([1, 1]), 1).is_none());
        let wide = Tensor::<Flex, 4>::zeros([4, 80, 3, 3], &device);
        assert!(conv2d(&frame, &wide, None, spatial([3, 3]), 1).is_none());
    }
}
