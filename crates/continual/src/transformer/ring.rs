//! Per-token state kept as a ring: each stream writes its newest token into the slot
//! `step mod n` in place, instead of shifting the whole window by one token per step.
//!
//! Single-output attention needs no token order (its softmax runs over all keys of the
//! window alike), so its keys and values live in rings: a step writes one token per stream
//! and reads the window where it lies, with no copy of the window.

use burn::prelude::*;

use crate::flex_kernel;
use crate::state::State;

/// Each row's slot for its next token: its steps so far modulo `n`.
pub(crate) fn slots<B: Backend>(state: &State<B>, n: usize) -> Vec<usize> {
    state
        .steps()
        .iter()
        .map(|&s| (s % n as u64) as usize)
        .collect()
}

/// `ring` with `newest` written at each row's slot along `dim`.
///
/// On flex, in place when the ring is not shared ([`flex_kernel::write_slots`]); on other
/// backends in runs of consecutive rows that share a slot (one run when the streams are in
/// step), each one `slice_assign`.
///
/// # Shapes
/// - ring: `[rows, a, b, c]`; newest: `ring`'s shape with 1 along `dim` (1, 2 or 3); output
///   like `ring`
pub(crate) fn write_slots<B: Backend>(
    mut ring: Tensor<B, 4>,
    newest: Tensor<B, 4>,
    dim: usize,
    slots: &[usize],
) -> Tensor<B, 4> {
    ring = match flex_kernel::write_slots(ring, &newest, dim, slots) {
        Ok(written) => return written,
        Err(ring) => ring,
    };
    let dims = ring.dims();
    let mut start = 0;
    while start < slots.len() {
        let slot = slots[start];
        let end = start + slots[start..].iter().take_while(|&&s| s == slot).count();
        let mut ranges = dims.map(|size| 0..size);
        ranges[0] = start..end;
        ranges[dim] = slot..slot + 1;
        let run = if start == 0 && end == slots.len() {
            newest.clone()
        } else {
            newest.clone().narrow(0, start, end - start)
        };
        ring = ring.slice_assign(ranges, run);
        start = end;
    }
    ring
}

#[cfg(test)]
mod tests {
    use super::*;
    use costream_backend::Cpu;

    #[test]
    fn each_row_writes_its_own_slot() {
        let device = Default::default();
        let ring = Tensor::<Cpu, 4>::zeros([3, 1, 4, 2], &device);
        let newest = Tensor::<Cpu, 1>::from_floats([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &device)
            .reshape([3, 1, 1, 2]);
        let written = write_slots(ring, newest, 2, &[2, 2, 0]);
        let values = written.into_data().to_vec::<f32>().unwrap();
        let mut expected = vec![0.0; 24];
        expected[4..6].copy_from_slice(&[1.0, 2.0]);
        expected[12..14].copy_from_slice(&[3.0, 4.0]);
        expected[16..18].copy_from_slice(&[5.0, 6.0]);
        assert_eq!(values, expected);
    }
}
