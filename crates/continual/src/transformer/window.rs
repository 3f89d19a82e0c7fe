//! Sliding windows of per-token tensors, oldest token first, as a stream's state keeps them.

use burn::prelude::*;

use crate::flex_kernel;
use crate::state::{index_tensor, reshape_adding_dims};

/// The window after one step: the oldest token dropped, `newest` appended.
///
/// On flex the window moves in place (`flex_kernel::shift_window`). Elsewhere the kept tokens
/// are gathered rather than sliced (see [`crate::state`]'s `take_slots` for why: cubecl
/// backends mis-size a `cat` of sliced views).
///
/// # Shapes
/// - window: `[rows, groups, n, c]`; newest: `[rows, groups, 1, c]`; output like `window`
pub(crate) fn slide<B: Backend>(window: Tensor<B, 4>, newest: Tensor<B, 4>) -> Tensor<B, 4> {
    let window = match flex_kernel::shift_window(window, &newest) {
        Ok(shifted) => return shifted,
        Err(window) => window,
    };
    let n = window.dims()[2];
    let kept: Vec<usize> = (1..n).collect();
    let kept = window.select(2, index_tensor::<B>(&kept, &newest.device()));
    Tensor::cat(vec![kept, newest], 2)
}

/// All tokens of a window but the oldest.
///
/// # Shapes
/// - window: `[rows, groups, n, c]`; output `[rows, groups, n - 1, c]`
pub(crate) fn without_oldest<B: Backend>(window: Tensor<B, 4>) -> Tensor<B, 4> {
    let n = window.dims()[2];
    let kept: Vec<usize> = (1..n).collect();
    let device = window.device();
    window.select(2, index_tensor::<B>(&kept, &device))
}

/// The oldest token of a window.
///
/// # Shapes
/// - window: `[rows, groups, n, c]`; output `[rows, groups, 1, c]`
pub(crate) fn oldest<B: Backend>(window: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = window.device();
    window.select(2, index_tensor::<B>(&[0], &device))
}

/// A state buffer (rank 6, trailing unit dims) as a window tensor.
///
/// # Shapes
/// - buffer: `[rows, groups, n, c, 1, 1]`; output `[rows, groups, n, c]`
pub(crate) fn from_buffer<B: Backend>(buffer: Tensor<B, 6>) -> Tensor<B, 4> {
    let [rows, groups, n, c, _, _] = buffer.dims();
    buffer.reshape([rows, groups, n, c])
}

/// A window tensor as a state buffer.
///
/// # Shapes
/// - window: `[rows, groups, n, c]`; output `[rows, groups, n, c, 1, 1]`
pub(crate) fn to_buffer<B: Backend>(window: Tensor<B, 4>) -> Tensor<B, 6> {
    let [rows, groups, n, c] = window.dims();
    reshape_adding_dims(window, [rows, groups, n, c, 1, 1])
}
