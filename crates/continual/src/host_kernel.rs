//! Dedicated kernels for the CPU backend (burn's flex) on the hot path of a continual step,
//! where burn's generic op is slow at streaming sizes (BENCHMARKS.md, CoX3D-S profile). Each
//! kernel works on the flex tensors' memory directly and returns `None` for any other backend
//! (including an autodiff-wrapped flex), whose caller then runs the generic burn ops: the
//! results are the same up to float summation order, and the golden and property suites run
//! both paths.

use std::any::Any;

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_flex::FlexTensor;

/// The contiguous flex tensor behind `tensor`, if `B` is flex.
fn as_flex<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> Option<FlexTensor> {
    let TensorPrimitive::Float(primitive) = tensor.clone().into_primitive() else {
        return None;
    };
    let any: &dyn Any = &primitive;
    any.downcast_ref::<FlexTensor>()
        .map(FlexTensor::to_contiguous)
}

/// A `B` tensor from values computed on the host, if `B` is flex.
fn from_host<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
) -> Option<Tensor<B, D>> {
    let flex: Box<dyn Any> = Box::new(FlexTensor::from_data(TensorData::new(values, shape)));
    let primitive = flex.downcast::<B::FloatTensorPrimitive>().ok()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(*primitive)))
}

/// Spatial geometry of a 2-D convolution: `[height, width]` stride, padding and dilation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) stride: [usize; 2],
    pub(crate) padding: [usize; 2],
    pub(crate) dilation: [usize; 2],
}

impl Geometry {
    fn output_size(&self, input: [usize; 2], kernel: [usize; 2]) -> Option<[usize; 2]> {
        let size = |d: usize| {
            let span = self.dilation[d] * (kernel[d] - 1) + 1;
            (input[d] + 2 * self.padding[d])
                .checked_sub(span)
                .map(|free| free / self.stride[d] + 1)
        };
        Some([size(0)?, size(1)?])
    }
}

/// The tap products of a depthwise conv's step on flex: every temporal tap's 2-D depthwise
/// convolution of the frame, newest tap first, with zero planes for the gaps of a temporal
/// dilation. `None` when `B` is not flex.
///
/// # Shapes
/// - frame: `[N, C, H, W]`; weight: `[C, 1, kt, kh, kw]`
/// - output: `[N, 1, span, C, H', W']` with `span = dilation_t * (kt - 1) + 1`
pub(crate) fn depthwise_taps<B: Backend>(
    frame: &Tensor<B, 4>,
    weight: &Tensor<B, 5>,
    temporal_dilation: usize,
    geometry: Geometry,
) -> Option<Tensor<B, 6>> {
    let x = as_flex(frame)?;
    let w = as_flex(weight)?;
    let (x, w) = (x.as_slice::<f32>()?, w.as_slice::<f32>()?);
    let [n, c, h, wd] = frame.dims();
    let [_, _, kt, kh, kw] = weight.dims();
    let span = temporal_dilation * (kt - 1) + 1;
    let [oh, ow] = geometry.output_size([h, wd], [kh, kw])?;
    let plane = oh * ow;
    let mut out = vec![0f32; n * span * c * plane];
    for row in 0..n {
        for ch in 0..c {
            let input = &x[(row * c + ch) * h * wd..][..h * wd];
            for tap in 0..kt {
                let newest_first = span - 1 - tap * temporal_dilation;
                let taps = &w[(ch * kt + tap) * kh * kw..][..kh * kw];
                let output = &mut out[((row * span + newest_first) * c + ch) * plane..][..plane];
                accumulate_plane(input, [h, wd], taps, [kh, kw], geometry, output, [oh, ow]);
            }
        }
    }
    from_host(out, [n, 1, span, c, oh, ow])
}

/// `output += conv2d(input, kernel)` for one channel plane (zero padding outside the input).
fn accumulate_plane(
    input: &[f32],
    [h, w]: [usize; 2],
    kernel: &[f32],
    [kh, kw]: [usize; 2],
    g: Geometry,
    output: &mut [f32],
    [oh, ow]: [usize; 2],
) {
    for oy in 0..oh {
        let out_row = &mut output[oy * ow..][..ow];
        for ky in 0..kh {
            let Some(iy) = (oy * g.stride[0] + ky * g.dilation[0]).checked_sub(g.padding[0]) else {
                continue;
            };
            if iy >= h {
                continue;
            }
            let in_row = &input[iy * w..][..w];
            for kx in 0..kw {
                let weight = kernel[ky * kw + kx];
                let shift = kx * g.dilation[1];
                // Output columns whose input column `ox * s + shift - pad` lies in 0..w.
                let first = g.padding[1].saturating_sub(shift).div_ceil(g.stride[1]);
                let end = ((w + g.padding[1]).saturating_sub(shift))
                    .div_ceil(g.stride[1])
                    .min(ow);
                if first >= end {
                    continue;
                }
                let start_in = first * g.stride[1] + shift - g.padding[1];
                if g.stride[1] == 1 {
                    let src = &in_row[start_in..start_in + (end - first)];
                    for (o, i) in out_row[first..end].iter_mut().zip(src) {
                        *o += weight * i;
                    }
                } else {
                    let src = in_row[start_in..].iter().step_by(g.stride[1]);
                    for (o, i) in out_row[first..end].iter_mut().zip(src) {
                        *o += weight * i;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::Distribution;
    use burn_flex::Flex;

    /// The host kernel against burn's own depthwise conv2d, tap by tap, over strides,
    /// paddings, spatial and temporal dilations and odd sizes.
    #[test]
    fn depthwise_taps_match_burn_conv2d() {
        let device = Default::default();
        let cases = [
            // (n, c, h, w, kt, kh, kw, stride, padding, dilation, temporal dilation)
            (1, 3, 7, 9, 3, 3, 3, [1, 1], [1, 1], [1, 1], 1),
            (2, 4, 8, 8, 3, 3, 3, [2, 2], [1, 1], [1, 1], 1),
            (1, 2, 9, 6, 2, 3, 1, [1, 2], [0, 0], [2, 1], 3),
            (2, 5, 5, 7, 5, 1, 1, [1, 1], [0, 0], [1, 1], 1),
            (1, 3, 6, 6, 3, 3, 3, [2, 1], [2, 1], [2, 2], 2),
        ];
        for (n, c, h, w, kt, kh, kw, stride, padding, dilation, dt) in cases {
            let frame = Tensor::<Flex, 4>::random([n, c, h, w], Distribution::Default, &device);
            let weight =
                Tensor::<Flex, 5>::random([c, 1, kt, kh, kw], Distribution::Default, &device);
            let geometry = Geometry {
                stride,
                padding,
                dilation,
            };
            let got = depthwise_taps(&frame, &weight, dt, geometry).unwrap();
            let span = dt * (kt - 1) + 1;
            let [_, _, got_span, _, oh, ow] = got.dims();
            assert_eq!(got_span, span);
            for tap in 0..kt {
                let kernel = weight.clone().narrow(2, tap, 1).reshape([c, 1, kh, kw]);
                let options = ConvOptions::new(stride, padding, dilation, c);
                let expected = conv2d(frame.clone(), kernel, None, options);
                assert_eq!(expected.dims(), [n, c, oh, ow]);
                let slot = span - 1 - tap * dt;
                let actual = got.clone().narrow(2, slot, 1).reshape([n, c, oh, ow]);
                let diff = (actual - expected).abs().max().into_scalar();
                assert!(
                    diff < 1e-5,
                    "case {stride:?} {padding:?} {dilation:?}: {diff}"
                );
            }
            // The gaps of a temporal dilation are zero taps.
            for slot in (0..span).filter(|s| (span - 1 - s) % dt != 0) {
                let gap = got.clone().narrow(2, slot, 1).abs().max().into_scalar();
                assert_eq!(gap, 0.0, "gap slot {slot}");
            }
        }
    }
}
