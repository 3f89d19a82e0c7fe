//! A pointwise (1×1) convolution of a frame on flex, with its bias and an optional ReLU in
//! the same pass: X3D's expansions, projections and shortcuts, 35% of a CoX3D-S step.
//!
//! Through burn, such a conv is a matrix product, a broadcast bias add and a ReLU: three
//! passes over the output, and flex allocates each product's output as bytes, zeroes it and
//! copies it once more to align it (~4% of a CoX3D-S step on the development VM). Here each
//! output value is computed, biased and rectified in registers and stored once.
//!
//! # Method
//! The plane is cut into tiles of two vectors of pixels. Each tile's input values are
//! copied once into a panel (`[C_in, 2 · lanes]`, zero beyond the plane), and each block of
//! [`BLOCK_CHANNELS`] output channels sums `weight · panel row` over the input channels in
//! `2 · BLOCK_CHANNELS` vector accumulators. Every output is a fused multiply-add chain over
//! the input channels in order, then plus the bias, at every vector width, so the results do
//! not depend on the CPU.

use burn::prelude::*;
use burn::tensor::DType;
use pulp::bytemuck;

use super::{flex_from_values, from_flex, is_flex, to_flex};

/// Output channels per register block: 2 × 6 accumulators, 2 panel vectors and a weight
/// fill 15 of AVX2's 16 vector registers.
const BLOCK_CHANNELS: usize = 6;

/// Planes smaller than this go to burn's matrix product: a tile is at least 16 pixels wide
/// on AVX2, and a smaller plane would leave most of its lanes idle.
const MIN_PLANE: usize = 16;

/// What follows the bias in a pointwise conv's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PointwiseActivation {
    /// Nothing: the biased sums.
    Identity,
    /// `max(x, 0)`, NaN kept.
    Relu,
}

/// `activation(kernel · frame + bias)` per pixel on flex; `None` when `B` is not flex, a
/// tensor is not `f32`, the sizes disagree or the plane is smaller than [`MIN_PLANE`] (the
/// caller then runs burn's matrix product).
///
/// # Shapes
/// - frame: `[N, C_in, H, W]`
/// - kernel: `[C_out, C_in]`
/// - bias: `[C_out]`
/// - output: `[N, C_out, H, W]`
pub(crate) fn pointwise<B: Backend>(
    frame: &Tensor<B, 4>,
    kernel: &Tensor<B, 2>,
    bias: Option<&Tensor<B, 1>>,
    activation: PointwiseActivation,
) -> Option<Tensor<B, 4>> {
    let all_f32 = frame.dtype() == DType::F32
        && kernel.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32);
    let [rows, c_in, h, w] = frame.dims();
    let [c_out, kernel_c_in] = kernel.dims();
    let fits = kernel_c_in == c_in
        && c_in > 0
        && h * w >= MIN_PLANE
        && bias.is_none_or(|b| b.dims() == [c_out]);
    if !is_flex::<B>() || !all_f32 || !fits {
        return None;
    }
    let frame = to_flex(frame.clone())?;
    let kernel = to_flex(kernel.clone())?;
    let bias = match bias {
        Some(bias) => Some(to_flex(bias.clone())?),
        None => None,
    };
    let mut output = vec![0.0; rows * c_out * h * w];
    PointwiseProduct {
        channels: [c_in, c_out],
        plane: h * w,
        frame: frame.as_slice()?,
        kernel: kernel.as_slice()?,
        bias: bias.as_ref().and_then(|b| b.as_slice()),
        activation,
        output: &mut output,
    }
    .run();
    from_flex(flex_from_values(output, vec![rows, c_out, h, w]))
}

/// The operands of [`pointwise`] as host slices.
struct PointwiseProduct<'a> {
    /// `[C_in, C_out]`.
    channels: [usize; 2],
    /// Pixels per frame, `H · W`.
    plane: usize,
    /// `[N, C_in, H · W]`.
    frame: &'a [f32],
    /// `[C_out, C_in]`.
    kernel: &'a [f32],
    /// `[C_out]`.
    bias: Option<&'a [f32]>,
    activation: PointwiseActivation,
    /// `[N, C_out, H · W]`, overwritten.
    output: &'a mut [f32],
}

impl PointwiseProduct<'_> {
    /// Runs the product, dispatched to the CPU's best vector instructions.
    fn run(self) {
        pulp::Arch::new().dispatch(self);
    }
}

impl pulp::WithSimd for PointwiseProduct<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let [c_in, c_out] = self.channels;
        let plane = self.plane;
        let tile = 2 * S::F32_LANES;
        let mut panel = vec![simd.splat_f32s(0.0); 2 * c_in];
        let mut block = vec![0.0f32; BLOCK_CHANNELS * tile];
        for (frame, output) in self
            .frame
            .chunks_exact(c_in * plane)
            .zip(self.output.chunks_exact_mut(c_out * plane))
        {
            for start in (0..plane).step_by(tile) {
                let width = tile.min(plane - start);
                fill_panel(&mut panel, frame, plane, start, width, tile);
                let mut channel = 0;
                while channel < c_out {
                    let count = BLOCK_CHANNELS.min(c_out - channel);
                    let weights = &self.kernel[channel * c_in..][..count * c_in];
                    let sums = &mut block[..count * tile];
                    if count == BLOCK_CHANNELS {
                        block_sums(simd, &panel, weights, c_in, sums);
                    } else {
                        row_sums(simd, &panel, weights, c_in, sums);
                    }
                    for (i, sums) in sums.chunks_exact(tile).enumerate() {
                        let out = &mut output[(channel + i) * plane + start..][..width];
                        let bias = self.bias.map_or(0.0, |b| b[channel + i]);
                        finish(out, &sums[..width], bias, self.activation);
                    }
                    channel += count;
                }
            }
        }
    }
}

/// Copies pixels `start..start + width` of every input channel into the panel's rows of
/// `tile` values, zero beyond `width`.
#[inline(always)]
fn fill_panel<V: bytemuck::Pod>(
    panel: &mut [V],
    frame: &[f32],
    plane: usize,
    start: usize,
    width: usize,
    tile: usize,
) {
    let flat: &mut [f32] = bytemuck::cast_slice_mut(panel);
    let rows = flat.chunks_exact_mut(tile).zip(frame.chunks_exact(plane));
    if width == tile {
        // A whole tile: a copy of constant length, which compiles to vector moves rather
        // than a call to `memcpy`.
        for (row, x) in rows {
            row.copy_from_slice(&x[start..][..tile]);
        }
    } else {
        for (row, x) in rows {
            row[..width].copy_from_slice(&x[start..][..width]);
            row[width..].fill(0.0);
        }
    }
}

/// The sums of [`BLOCK_CHANNELS`] output channels over one panel, in registers.
///
/// # Shapes
/// - panel: `[C_in, 2]` vectors; weights: `[BLOCK_CHANNELS, C_in]`
/// - sums: `[BLOCK_CHANNELS, 2 · lanes]`
#[inline(always)]
fn block_sums<S: pulp::Simd>(
    simd: S,
    panel: &[S::f32s],
    weights: &[f32],
    c_in: usize,
    sums: &mut [f32],
) {
    let rows: [&[f32]; BLOCK_CHANNELS] = std::array::from_fn(|i| &weights[i * c_in..][..c_in]);
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; BLOCK_CHANNELS];
    for (i, x) in panel.chunks_exact(2).enumerate() {
        for (acc, row) in acc.iter_mut().zip(rows) {
            let w = simd.splat_f32s(row[i]);
            acc[0] = simd.mul_add_f32s(w, x[0], acc[0]);
            acc[1] = simd.mul_add_f32s(w, x[1], acc[1]);
        }
    }
    let flat: &[f32] = bytemuck::cast_slice(&acc);
    sums.copy_from_slice(flat);
}

/// The sums of fewer than [`BLOCK_CHANNELS`] output channels, one channel at a time.
///
/// # Shapes
/// - panel: `[C_in, 2]` vectors; weights: `[channels, C_in]`
/// - sums: `[channels, 2 · lanes]`
#[inline(always)]
fn row_sums<S: pulp::Simd>(
    simd: S,
    panel: &[S::f32s],
    weights: &[f32],
    c_in: usize,
    sums: &mut [f32],
) {
    let tile = 2 * S::F32_LANES;
    for (row, sums) in weights.chunks_exact(c_in).zip(sums.chunks_exact_mut(tile)) {
        let zero = simd.splat_f32s(0.0);
        let mut acc = [zero; 2];
        for (&weight, x) in row.iter().zip(panel.chunks_exact(2)) {
            let w = simd.splat_f32s(weight);
            acc[0] = simd.mul_add_f32s(w, x[0], acc[0]);
            acc[1] = simd.mul_add_f32s(w, x[1], acc[1]);
        }
        let flat: &[f32] = bytemuck::cast_slice(&acc);
        sums.copy_from_slice(flat);
    }
}

/// `out = activation(sums + bias)`.
#[inline(always)]
fn finish(out: &mut [f32], sums: &[f32], bias: f32, activation: PointwiseActivation) {
    match activation {
        PointwiseActivation::Identity => {
            for (o, s) in out.iter_mut().zip(sums) {
                *o = s + bias;
            }
        }
        PointwiseActivation::Relu => {
            for (o, s) in out.iter_mut().zip(sums) {
                let x = s + bias;
                *o = if x < 0.0 { 0.0 } else { x };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PointwiseActivation, PointwiseProduct};
    use crate::flex_kernel::test_values as values;

    /// The product by the definition, summed in `f64`.
    fn naive(
        [rows, c_in, c_out, plane]: [usize; 4],
        frame: &[f32],
        kernel: &[f32],
        bias: Option<&[f32]>,
        activation: PointwiseActivation,
    ) -> Vec<f32> {
        let mut output = vec![0.0; rows * c_out * plane];
        for n in 0..rows {
            for o in 0..c_out {
                for p in 0..plane {
                    let mut sum = bias.map_or(0.0, |b| f64::from(b[o]));
                    for i in 0..c_in {
                        sum += f64::from(kernel[o * c_in + i])
                            * f64::from(frame[(n * c_in + i) * plane + p]);
                    }
                    let sum = sum as f32;
                    output[(n * c_out + o) * plane + p] = match activation {
                        PointwiseActivation::Identity => sum,
                        PointwiseActivation::Relu => sum.max(0.0),
                    };
                }
            }
        }
        output
    }

    #[test]
    fn product_matches_the_definition() {
        // X3D's shapes (a 6-channel block multiple, and not), planes shorter than a tile,
        // a whole number of tiles and a partial one, one input channel and several rows.
        let cases = [
            [1, 24, 54, 1600],
            [2, 54, 24, 100],
            [1, 192, 432, 25],
            [3, 7, 11, 37],
            [1, 1, 5, 16],
            [2, 13, 6, 17],
        ];
        for [rows, c_in, c_out, plane] in cases {
            for activation in [PointwiseActivation::Identity, PointwiseActivation::Relu] {
                for with_bias in [true, false] {
                    let frame = values(rows * c_in * plane, 1);
                    let kernel = values(c_out * c_in, 2);
                    let bias = with_bias.then(|| values(c_out, 3));
                    let sizes = [rows, c_in, c_out, plane];
                    let want = naive(sizes, &frame, &kernel, bias.as_deref(), activation);
                    let mut got = vec![f32::NAN; want.len()];
                    PointwiseProduct {
                        channels: [c_in, c_out],
                        plane,
                        frame: &frame,
                        kernel: &kernel,
                        bias: bias.as_deref(),
                        activation,
                        output: &mut got,
                    }
                    .run();
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "{sizes:?} {activation:?} bias {with_bias}: [{i}] {g} != {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn relu_keeps_nan() {
        let frame = [f32::NAN; 16];
        let mut got = [0.0; 16];
        PointwiseProduct {
            channels: [1, 1],
            plane: 16,
            frame: &frame,
            kernel: &[1.0],
            bias: None,
            activation: PointwiseActivation::Relu,
            output: &mut got,
        }
        .run();
        assert!(got.iter().all(|x| x.is_nan()));
    }
}
