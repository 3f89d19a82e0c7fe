//! A convolution of many rows whose output planes are tiny, on flex: Silero VAD's STFT and
//! encoder (4, 2 and 1 positions per row, 1,024 rows per step when that many streams run).
//!
//! flex's `conv2d` unfolds and multiplies row by row, so a batch of such frames costs a
//! thousand products of a few columns each (a 1,024-stream Silero VAD step spent 62 ms
//! there). Here the unfolded input of *all* rows is one matrix `[rows · positions, C_in · kh ·
//! kw]`, multiplied once by the kernel (burn's matrix product, gemm), and the result is
//! written back channels-first with the bias and an optional ReLU in the same pass.

use burn::prelude::*;
use burn::tensor::DType;

use super::phases::Spatial;
use super::pointwise::PointwiseActivation;
use super::{flex_from_values, from_flex, is_flex, to_flex};

/// Output planes larger than this go to the other paths, which vectorise along the plane.
const MAX_POSITIONS: usize = 8;

/// `activation(conv2d(frame, kernel) + bias)` for `groups == 1`; `None` when `B` is not
/// flex, a tensor is not `f32`, the output plane has more than [`MAX_POSITIONS`] positions
/// or the sizes disagree.
///
/// The sums are gemm's, as in burn's own `conv2d` (whose order depends on the CPU's vector
/// width), not a fixed-order chain like the other kernels here.
///
/// # Shapes
/// - frame: `[N, C_in, H, W]`
/// - kernel: `[C_out, C_in, kh, kw]`
/// - bias: `[C_out]`
/// - output: `[N, C_out, H', W']`
pub(crate) fn small_plane_conv<B: Backend>(
    frame: &Tensor<B, 4>,
    kernel: &Tensor<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    spatial: Spatial,
    activation: PointwiseActivation,
) -> Option<Tensor<B, 4>> {
    let all_f32 = frame.dtype() == DType::F32
        && kernel.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32);
    let [rows, c_in, h, w] = frame.dims();
    let [c_out, kernel_c_in, kh, kw] = kernel.dims();
    let [oh, ow] = spatial.output_size([h, w])?;
    let positions = oh * ow;
    let fits = kernel_c_in == c_in && [kh, kw] == spatial.kernel && positions <= MAX_POSITIONS;
    if !is_flex::<B>() || !all_f32 || !fits {
        return None;
    }
    let taps = c_in * kh * kw;
    let input = to_flex(frame.clone())?;
    let input = input.as_slice::<f32>()?;
    let mut unfolded = vec![0.0f32; rows * positions * taps];
    for (row, plane) in input.chunks_exact(c_in * h * w).enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let out = &mut unfolded[((row * oh + oy) * ow + ox) * taps..][..taps];
                unfold_position(plane, [h, w], c_in, &spatial, [oy, ox], out);
            }
        }
    }
    let unfolded = from_flex::<B, 2>(flex_from_values(unfolded, vec![rows * positions, taps]))?;
    // [C_out, taps] → [taps, C_out]: the kernel's row order is the unfolded columns' order.
    let weights = kernel.clone().reshape([c_out, taps]).transpose();
    let product = to_flex(unfolded.matmul(weights))?;
    let product = product.as_slice::<f32>()?;
    let bias = match bias {
        Some(b) => Some(to_flex(b.clone())?),
        None => None,
    };
    let bias = match &bias {
        Some(b) => Some(b.as_slice::<f32>()?),
        None => None,
    };
    let mut output = vec![0.0f32; rows * c_out * positions];
    for (sums, plane) in product
        .chunks_exact(positions * c_out)
        .zip(output.chunks_exact_mut(c_out * positions))
    {
        for (p, sums) in sums.chunks_exact(c_out).enumerate() {
            for (c, &sum) in sums.iter().enumerate() {
                plane[c * positions + p] = sum + bias.map_or(0.0, |b| b[c]);
            }
        }
    }
    if activation == PointwiseActivation::Relu {
        // `max` would turn NaN into 0; ReLU keeps it.
        output
            .iter_mut()
            .filter(|v| **v < 0.0)
            .for_each(|v| *v = 0.0);
    }
    from_flex(flex_from_values(output, vec![rows, c_out, oh, ow]))
}

/// The input values under the kernel at output position `[oy, ox]` of one row's plane, in
/// the kernel's `[C_in, kh, kw]` order, zero where the kernel reaches into the padding.
fn unfold_position(
    plane: &[f32],
    [h, w]: [usize; 2],
    c_in: usize,
    spatial: &Spatial,
    [oy, ox]: [usize; 2],
    out: &mut [f32],
) {
    let [kh, kw] = spatial.kernel;
    if w == 1 && kw == 1 && spatial.dilation[0] == 1 {
        // A column: each channel's taps are one run of the input.
        let start = (oy * spatial.stride[0]) as isize - spatial.padding[0] as isize;
        let first = (-start).clamp(0, kh as isize) as usize;
        let last = (h as isize - start).clamp(0, kh as isize) as usize;
        for (c, taps) in out.chunks_exact_mut(kh).enumerate().take(c_in) {
            taps[..first].fill(0.0);
            if first < last {
                let from = c * h + (start + first as isize) as usize;
                taps[first..last].copy_from_slice(&plane[from..from + (last - first)]);
            }
            taps[last.max(first)..].fill(0.0);
        }
        return;
    }
    let mut i = 0;
    for c in 0..c_in {
        let channel = &plane[c * h * w..][..h * w];
        for ky in 0..kh {
            let y =
                (oy * spatial.stride[0] + ky * spatial.dilation[0]).checked_sub(spatial.padding[0]);
            for kx in 0..kw {
                let x = (ox * spatial.stride[1] + kx * spatial.dilation[1])
                    .checked_sub(spatial.padding[1]);
                out[i] = match (y, x) {
                    (Some(y), Some(x)) if y < h && x < w => channel[y * w + x],
                    _ => 0.0,
                };
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex_kernel::test_values;
    use burn::tensor::module::conv2d;
    use burn_flex::Flex;

    type B = Flex;

    fn tensor<const D: usize>(shape: [usize; D], seed: usize) -> Tensor<B, D> {
        let len = shape.iter().product();
        Tensor::from_data(
            TensorData::new(test_values(len, seed), shape),
            &Default::default(),
        )
    }

    #[test]
    fn equals_burns_conv2d_with_stride_padding_and_dilation() {
        let cases = [
            // (rows, c_in, [h, w], c_out, kernel, stride, padding, dilation)
            (64, 1, [640, 1], 10, [256, 1], [128, 1], [0, 0], [1, 1]),
            (40, 7, [4, 1], 5, [3, 1], [2, 1], [1, 0], [1, 1]),
            (33, 3, [4, 3], 6, [3, 2], [2, 2], [1, 1], [1, 1]),
            (16, 2, [7, 3], 4, [2, 2], [3, 1], [0, 1], [2, 1]),
            (9, 3, [2, 1], 4, [5, 1], [1, 1], [2, 0], [1, 1]),
        ];
        for (i, (rows, c_in, [h, w], c_out, kernel, stride, padding, dilation)) in
            cases.into_iter().enumerate()
        {
            let spatial = Spatial {
                kernel,
                stride,
                padding,
                dilation,
            };
            let frame = tensor([rows, c_in, h, w], i);
            let weights = tensor([c_out, c_in, kernel[0], kernel[1]], 10 + i);
            let bias = tensor([c_out], 20 + i);
            for activation in [PointwiseActivation::Identity, PointwiseActivation::Relu] {
                let ours = small_plane_conv(&frame, &weights, Some(&bias), spatial, activation)
                    .unwrap_or_else(|| panic!("case {i} takes this path"));
                let mut reference = conv2d(
                    frame.clone(),
                    weights.clone(),
                    Some(bias.clone()),
                    spatial.conv_options(1),
                );
                if activation == PointwiseActivation::Relu {
                    reference = burn::tensor::activation::relu(reference);
                }
                assert_eq!(ours.dims(), reference.dims(), "case {i}");
                let diff: f32 = (ours - reference).abs().max().into_scalar();
                assert!(diff < 1e-4, "case {i} {activation:?}: max |Δ| {diff}");
            }
        }
    }

    #[test]
    fn large_planes_take_other_paths() {
        let spatial = Spatial {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        let weights = tensor([4, 2, 3, 3], 1);
        let large = tensor([64, 2, 8, 8], 2);
        let none = small_plane_conv(
            &large,
            &weights,
            None,
            spatial,
            PointwiseActivation::Identity,
        );
        assert!(none.is_none());
    }
}
