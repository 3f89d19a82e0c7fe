//! Writing one token per stream into a ring of per-token state, in place.
//!
//! burn-flex 0.21's `slice_assign` copies the whole destination on every call (it takes a
//! contiguous view while still holding the original, so its copy-on-write always copies):
//! for a ring of 64 streams' keys at d = 1024 that is 16 MB per step. Here the ring is
//! written where it lies when the caller holds its only reference.

use burn::prelude::*;
use burn::tensor::DType;

use super::{from_flex, is_flex, to_flex};

/// `ring` with `newest` written at each row's slot along `dim`, in place when `ring` is not
/// shared; `Err(ring)` untouched when `B` is not flex, a tensor is not `f32` or the shapes do
/// not fit.
///
/// # Shapes
/// - ring: `[rows, a, b, c]`; newest: `ring`'s shape with 1 along `dim` (1, 2 or 3); output
///   like `ring`
pub(crate) fn write_slots<B: Backend>(
    ring: Tensor<B, 4>,
    newest: &Tensor<B, 4>,
    dim: usize,
    slots: &[usize],
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let dims = ring.dims();
    let mut expected = dims;
    expected[dim] = 1;
    let fits = (1..4).contains(&dim) && newest.dims() == expected && slots.len() == dims[0];
    if !is_flex::<B>() || ring.dtype() != DType::F32 || newest.dtype() != DType::F32 || !fits {
        return Err(ring);
    }
    // Flex f32 tensors from here on: the conversions cannot fail.
    let bug = "a flex f32 tensor converts to and from flex";
    let newest = to_flex(newest.clone()).expect(bug);
    let newest = newest.as_slice::<f32>().expect(bug);
    let mut ring = to_flex(ring).expect(bug);
    let values = ring.storage_mut::<f32>();
    // Per row: `outer` blocks before `dim`, each `dims[dim]` slots of `inner` values.
    let outer: usize = dims[1..dim].iter().product();
    let inner: usize = dims[dim + 1..].iter().product();
    let row_len = outer * dims[dim] * inner;
    for (row, &slot) in slots.iter().enumerate() {
        let ring_row = &mut values[row * row_len..(row + 1) * row_len];
        let newest_row = &newest[row * outer * inner..(row + 1) * outer * inner];
        if inner == 1 {
            // Along the last dim (transposed keys): one value per block, a stride apart.
            for (block, &value) in newest_row.iter().enumerate() {
                ring_row[block * dims[dim] + slot] = value;
            }
        } else {
            for (block, token) in newest_row.chunks_exact(inner).enumerate() {
                let to = (block * dims[dim] + slot) * inner;
                ring_row[to..to + inner].copy_from_slice(token);
            }
        }
    }
    Ok(from_flex(ring).expect(bug))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex_kernel::test_values;
    use burn_flex::Flex;

    /// The generic ops' result: every row's slot replaced by its token.
    fn reference(
        ring: &[f32],
        newest: &[f32],
        dims: [usize; 4],
        dim: usize,
        slots: &[usize],
    ) -> Vec<f32> {
        let mut out = ring.to_vec();
        let index =
            |i: [usize; 4], d: [usize; 4]| ((i[0] * d[1] + i[1]) * d[2] + i[2]) * d[3] + i[3];
        let mut small = dims;
        small[dim] = 1;
        for r in 0..dims[0] {
            for a in 0..small[1] {
                for b in 0..small[2] {
                    for c in 0..small[3] {
                        let mut at = [r, a, b, c];
                        at[dim] = slots[r];
                        out[index(at, dims)] = newest[index([r, a, b, c], small)];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_row_writes_its_slot_along_any_dim() {
        let device = Default::default();
        let dims = [3, 2, 5, 4];
        for dim in 1..4 {
            let slots: Vec<usize> = (0..3).map(|r| (r * 2 + 1) % dims[dim]).collect();
            let ring_values = test_values(120, dim);
            let mut small = dims;
            small[dim] = 1;
            let newest_values = test_values(small.iter().product(), 7 + dim);
            let ring =
                Tensor::<Flex, 1>::from_floats(ring_values.as_slice(), &device).reshape(dims);
            let newest =
                Tensor::<Flex, 1>::from_floats(newest_values.as_slice(), &device).reshape(small);
            let written = write_slots(ring, &newest, dim, &slots).unwrap();
            assert_eq!(
                written.into_data().to_vec::<f32>().unwrap(),
                reference(&ring_values, &newest_values, dims, dim, &slots),
                "dim {dim}"
            );
        }
    }

    #[test]
    fn a_shared_ring_is_left_as_it_was() {
        let device = Default::default();
        let ring = Tensor::<Flex, 4>::zeros([1, 1, 2, 1], &device);
        let kept = ring.clone();
        let newest = Tensor::<Flex, 4>::ones([1, 1, 1, 1], &device);
        let written = write_slots(ring, &newest, 2, &[1]).unwrap();
        assert_eq!(written.into_data().to_vec::<f32>().unwrap(), [0.0, 1.0]);
        assert_eq!(kept.into_data().to_vec::<f32>().unwrap(), [0.0, 0.0]);
    }
}
