//! Dedicated kernels for the CPU backend (burn's flex) on the hot path of a continual step,
//! where burn's generic ops are slow at streaming sizes (BENCHMARKS.md, CoX3D-S profile).
//!
//! A kernel here reads and writes the flex tensors' memory directly and runs under
//! [`pulp`]'s run-time CPU dispatch, so its loops compile to AVX-512 or AVX2 where the CPU
//! has them (the crate forbids `unsafe`; pulp's dispatch is safe). Callers check
//! [`is_flex`] first and run the generic burn ops on every other backend, including an
//! autodiff-wrapped flex. Each kernel sums in the same order at every vector width, so its
//! results do not depend on the CPU it runs on.

mod activation;
mod conv2d;
mod depthwise_step;
mod layer_norm;
mod lstm;
mod one_query;
mod phases;
mod pointwise;
mod retroactive_step;
mod slot_write;
mod small_plane;
mod window_shift;

use std::any::{Any, TypeId};

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_flex::FlexTensor;

pub(crate) use activation::{logistic, Logistic};
pub(crate) use conv2d::conv2d;
pub(crate) use depthwise_step::{depthwise_step, DepthwiseStep};
pub(crate) use layer_norm::layer_norm;
pub(crate) use lstm::lstm_update;
pub(crate) use one_query::attend_one_query;
pub(crate) use phases::Spatial;
pub(crate) use pointwise::{pointwise, PointwiseActivation};
pub(crate) use retroactive_step::retroactive_step;
pub(crate) use slot_write::write_slots;
pub(crate) use small_plane::small_plane_conv;
pub(crate) use window_shift::shift_window;

/// Whether `B`'s float tensors are flex tensors.
pub(crate) fn is_flex<B: Backend>() -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<FlexTensor>()
}

/// The flex tensor behind `tensor`, contiguous and covering its whole buffer (a copy only
/// if it was a view), or `None` if `B` is not flex.
fn to_flex<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Option<FlexTensor> {
    let TensorPrimitive::Float(primitive) = tensor.into_primitive() else {
        return None;
    };
    let boxed: Box<dyn Any> = Box::new(primitive);
    Some(boxed.downcast::<FlexTensor>().ok()?.to_contiguous())
}

/// A `B` tensor from a flex tensor (`None` if `B` is not flex).
fn from_flex<B: Backend, const D: usize>(flex: FlexTensor) -> Option<Tensor<B, D>> {
    let boxed: Box<dyn Any> = Box::new(flex);
    let primitive = boxed.downcast::<B::FloatTensorPrimitive>().ok()?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(*primitive)))
}

/// `Σ a_i b_i` in 16 interleaved partial sums (the compiler keeps them in vector registers).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A contiguous `f32` flex tensor of `shape` holding `values`.
fn flex_from_values(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `len` deterministic pseudo-random values in [-1, 1), different for each `seed`, for the
/// kernels' tests.
#[cfg(test)]
fn test_values(len: usize, seed: usize) -> Vec<f32> {
    let value = |i: usize| {
        let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        (x as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    (0..len).map(|i| value(i * 31 + seed)).collect()
}
