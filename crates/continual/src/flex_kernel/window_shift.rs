//! Sliding windows of per-token state by one token, in place.
//!
//! A retroactive step keeps its windows oldest first. With burn's ops a slide is a gather of
//! the kept tokens and a concatenation, two copies of the window (and burn-flex's gather goes
//! index by index): at 64 streams of CoOadTR-b2, a third of the step. Here the window's
//! memory moves down by one token and the newest token is written at its end.

use burn::prelude::*;
use burn::tensor::DType;

use super::{from_flex, is_flex, to_flex};

/// `window` without its oldest token and with `newest` after its last, in place when
/// `window` is not shared; `Err(window)` untouched when `B` is not flex, a tensor is not `f32`
/// or the shapes do not fit.
///
/// # Shapes
/// - window: `[rows, groups, n, c]`; newest: `[rows, groups, 1, c]`; output like `window`
pub(crate) fn shift_window<B: Backend>(
    window: Tensor<B, 4>,
    newest: &Tensor<B, 4>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let [rows, groups, n, c] = window.dims();
    let fits = newest.dims() == [rows, groups, 1, c] && n > 0;
    if !is_flex::<B>() || window.dtype() != DType::F32 || newest.dtype() != DType::F32 || !fits {
        return Err(window);
    }
    let bug = "a flex f32 tensor converts to and from flex";
    let newest = to_flex(newest.clone()).expect(bug);
    let newest = newest.as_slice::<f32>().expect(bug);
    let mut window = to_flex(window).expect(bug);
    let values = window.storage_mut::<f32>();
    for (block, token) in values.chunks_exact_mut(n * c).zip(newest.chunks_exact(c)) {
        push_token(block, token);
    }
    Ok(from_flex(window).expect(bug))
}

/// One window's tokens (`token.len()` values each, oldest first) moved down by one, `token`
/// written last.
pub(super) fn push_token(window: &mut [f32], token: &[f32]) {
    let c = token.len();
    window.copy_within(c.., 0);
    let last = window.len() - c;
    window[last..].copy_from_slice(token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_flex::Flex;

    #[test]
    fn the_oldest_token_leaves_and_the_newest_comes_last() {
        let device = Default::default();
        // Two blocks of three tokens of two values.
        let window = Tensor::<Flex, 1>::from_floats(
            [
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
            ],
            &device,
        )
        .reshape([2, 1, 3, 2]);
        let newest =
            Tensor::<Flex, 1>::from_floats([7.0, 8.0, 17.0, 18.0], &device).reshape([2, 1, 1, 2]);
        let kept = window.clone();
        let shifted = shift_window(window, &newest).unwrap();
        assert_eq!(
            shifted.into_data().to_vec::<f32>().unwrap(),
            [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]
        );
        assert_eq!(
            kept.into_data().to_vec::<f32>().unwrap()[0],
            1.0,
            "a shared window is copied"
        );
    }
}
