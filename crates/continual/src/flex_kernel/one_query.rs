//! Attention of one query per head over a window of keys and values (a single-output step).
//!
//! As burn ops this is two batched matrix products of one row each per stream and head (512
//! tiny products for 64 streams of 8 heads, each paying the product's set-up), about a sixth
//! of a CoOadTR-b1 step at 64 streams. Here each head's scores, softmax and weighted sum run
//! in one pass over its keys and values.

use burn::prelude::*;
use burn::tensor::DType;

use super::activation::exp;
use super::{dot, flex_from_values, from_flex, is_flex, to_flex};

/// `softmax(q · kᵀ) · v` per stream and head, with the largest logit subtracted before `exp`;
/// `None` when `B` is not flex or a tensor is not `f32`.
///
/// # Shapes
/// - q: `[rows, heads, 1, head_dim]` (already scaled); k, v: `[rows, heads, n, head_dim]`;
///   output `[rows, heads, 1, head_dim]`
pub(crate) fn attend_one_query<B: Backend>(
    q: &Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
) -> Option<Tensor<B, 4>> {
    let [rows, heads, n, head_dim] = k.dims();
    let fits = q.dims() == [rows, heads, 1, head_dim] && v.dims() == k.dims() && n > 0;
    let all_f32 = [q.dtype(), k.dtype(), v.dtype()]
        .iter()
        .all(|&d| d == DType::F32);
    if !is_flex::<B>() || !all_f32 || !fits {
        return None;
    }
    let q = to_flex(q.clone())?;
    let q = q.as_slice::<f32>()?;
    let k = to_flex(k.clone())?;
    let k = k.as_slice::<f32>()?;
    let v = to_flex(v.clone())?;
    let v = v.as_slice::<f32>()?;
    let mut out = vec![0.0f32; rows * heads * head_dim];
    let mut logits = vec![0.0f32; n];
    let window = n * head_dim;
    for (head, attended) in out.chunks_exact_mut(head_dim).enumerate() {
        let (_, denominator) = query_softmax_sums(
            &q[head * head_dim..(head + 1) * head_dim],
            &k[head * window..(head + 1) * window],
            &v[head * window..(head + 1) * window],
            &mut logits,
            attended,
        );
        attended.iter_mut().for_each(|a| *a /= denominator);
    }
    from_flex(flex_from_values(out, vec![rows, heads, 1, head_dim]))
}

/// One query's softmax sums over a window of `logits.len()` keys and values: writes
/// `Σ_j exp(l_j − max) v_j` into `numerator` and returns `(max, Σ_j exp(l_j − max))`, where
/// `l_j = query · key_j` (`logits` is scratch space).
pub(super) fn query_softmax_sums(
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    logits: &mut [f32],
    numerator: &mut [f32],
) -> (f32, f32) {
    let h = query.len();
    for (logit, key) in logits.iter_mut().zip(keys.chunks_exact(h)) {
        *logit = dot(query, key);
    }
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    numerator.fill(0.0);
    let mut denominator = 0.0f32;
    for (&logit, value) in logits.iter().zip(values.chunks_exact(h)) {
        let weight = exp(logit - max);
        denominator += weight;
        for (a, &x) in numerator.iter_mut().zip(value) {
            *a += weight * x;
        }
    }
    (max, denominator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex_kernel::test_values;
    use burn_flex::Flex;

    #[test]
    fn equals_the_softmax_of_the_generic_ops() {
        let device = Default::default();
        for (rows, heads, n, head_dim) in [(1, 1, 1, 1), (2, 3, 7, 20), (3, 2, 64, 128)] {
            let tensor = |dims: [usize; 4], seed: usize, scale: f32| {
                let len = dims.iter().product();
                Tensor::<Flex, 1>::from_floats(test_values(len, seed).as_slice(), &device)
                    .reshape(dims)
                    * scale
            };
            let q = tensor([rows, heads, 1, head_dim], 1, 3.0);
            let k = tensor([rows, heads, n, head_dim], 2, 1.0);
            let v = tensor([rows, heads, n, head_dim], 3, 1.0);
            let fused = attend_one_query(&q, &k, &v).unwrap();
            let weights = burn::tensor::activation::softmax(q.matmul(k.swap_dims(2, 3)), 3);
            let generic = weights.matmul(v);
            let diff = (fused - generic).abs().max().into_scalar();
            assert!(diff <= 2e-6, "{:?}: {diff}", (rows, heads, n, head_dim));
        }
    }
}
