//! LayerNorm over the channels of 1×1 frames (transformer tokens) in one pass per row.
//!
//! With burn's ops, `(x − mean) / sqrt(var + ε)` broadcasts a per-row `[rows, 1, 1, 1]`
//! operand, which flex runs through its generic strided iterator: a quarter of a CoOadTR
//! step at 64 streams. Here each row is normalised where it lies.

use burn::prelude::*;
use burn::tensor::DType;

use super::{flex_from_values, from_flex, is_flex, to_flex};

/// Lanes of the partial sums (the compiler keeps them in vector registers).
const LANES: usize = 16;

/// `gamma · (x − mean) / sqrt(var + epsilon) + beta` over the channels of each frame, with
/// the biased variance (as torch's LayerNorm); `None` when `B` is not flex, a tensor is not
/// `f32` or the frames are not 1×1.
///
/// # Shapes
/// - frames: `[rows, C, 1, 1]`; gamma, beta: `[C]`; output like `frames`
pub(crate) fn layer_norm<B: Backend>(
    frames: &Tensor<B, 4>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    epsilon: f64,
) -> Option<Tensor<B, 4>> {
    let [rows, channels, h, w] = frames.dims();
    let all_f32 = [frames.dtype(), gamma.dtype(), beta.dtype()]
        .iter()
        .all(|&d| d == DType::F32);
    if !is_flex::<B>() || !all_f32 || h * w != 1 || channels == 0 {
        return None;
    }
    let frames = to_flex(frames.clone())?;
    let x = frames.as_slice::<f32>()?;
    let gamma = to_flex(gamma.clone())?;
    let gamma = gamma.as_slice::<f32>()?;
    let beta = to_flex(beta.clone())?;
    let beta = beta.as_slice::<f32>()?;
    let mut out = vec![0.0f32; rows * channels];
    let count = channels as f32;
    for (row, normed) in x.chunks_exact(channels).zip(out.chunks_exact_mut(channels)) {
        let mean = lane_sum(row, |v| v) / count;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / count;
        let scale = 1.0 / (var + epsilon as f32).sqrt();
        for (((o, &v), &g), &b) in normed.iter_mut().zip(row).zip(gamma).zip(beta) {
            *o = (v - mean) * scale * g + b;
        }
    }
    from_flex(flex_from_values(out, vec![rows, channels, 1, 1]))
}

/// `Σ f(v)` over `values`, in `LANES` interleaved partial sums.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().sum::<f32>() + tail.iter().map(|&v| f(v)).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex_kernel::test_values;
    use burn_flex::Flex;

    #[test]
    fn rows_are_normalised_as_the_generic_ops_do() {
        let device = Default::default();
        for channels in [1usize, 5, 16, 37, 1024] {
            let rows = 3;
            let x = Tensor::<Flex, 1>::from_floats(
                test_values(rows * channels, channels).as_slice(),
                &device,
            )
            .reshape([rows, channels, 1, 1])
                * 3.0
                + 0.5;
            let gamma =
                Tensor::<Flex, 1>::from_floats(test_values(channels, 1).as_slice(), &device);
            let beta = Tensor::<Flex, 1>::from_floats(test_values(channels, 2).as_slice(), &device);
            let fused = layer_norm(&x, &gamma, &beta, 1e-5).unwrap();
            let (var, mean) = x.clone().var_mean_bias(1);
            let generic = (x - mean) / (var + 1e-5).sqrt() * gamma.reshape([1, channels, 1, 1])
                + beta.reshape([1, channels, 1, 1]);
            let diff = (fused - generic).abs().max().into_scalar();
            assert!(diff <= 2e-6, "{channels} channels: {diff}");
        }
    }
}
