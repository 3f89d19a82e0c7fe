//! Shared test support: golden files, the builder-expression interpreter, CoX3D, tolerances.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

pub mod builder;
pub mod cox3d;
pub mod expr;
pub mod golden;

use burn::prelude::*;

/// The golden README's tolerance: `max|a - ref| <= 1e-5 + 1e-4 * max|ref|`.
pub fn tolerance(reference: &[f32]) -> f32 {
    let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    1e-5 + 1e-4 * max_ref
}

/// Largest absolute difference; infinite if lengths differ or a value is not finite.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter().zip(b).fold(0f32, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    })
}

/// A tensor's values as f32, row-major.
pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Asserts `actual` is within the golden tolerance of `expected` (relative to `expected`).
pub fn assert_close<B: Backend, const D: usize>(
    actual: Tensor<B, D>,
    expected: Tensor<B, D>,
    what: &str,
) {
    assert_eq!(actual.dims(), expected.dims(), "{what}: shapes differ");
    let (a, e) = (values(actual), values(expected));
    let diff = max_abs_diff(&a, &e);
    let tol = tolerance(&e);
    assert!(
        diff <= tol,
        "{what}: max |Δ| {diff:e} exceeds tolerance {tol:e}"
    );
}
