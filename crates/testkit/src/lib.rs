//! Test helpers shared by costream's crates: the reference tolerance of `../shared/golden` and
//! `../shared/interop`, tensor comparison, and where the shared fixtures live.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use burn::prelude::*;

/// The reference tolerance of the golden and interop READMEs:
/// `max|a - ref| <= 1e-5 + 1e-4 * max|ref|`.
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
///
/// # Panics
/// If the backend cannot read the tensor back (a test failure).
pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Asserts `actual` is within the reference tolerance of `expected`.
///
/// # Panics
/// When the shapes differ or the largest difference exceeds [`tolerance`].
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

/// `max|actual - expected|` against the reference tolerance: `Ok` with a short
/// `"what Δ/tol"` note, or `Err` naming the difference.
///
/// # Errors
/// When the lengths differ or the difference exceeds [`tolerance`].
pub fn check_close(what: &str, actual: &[f32], expected: &[f32]) -> Result<String, String> {
    let diff = max_abs_diff(actual, expected);
    let tol = tolerance(expected);
    if diff <= tol {
        Ok(format!("{what} {diff:.1e}/{tol:.1e}"))
    } else {
        Err(format!(
            "{what}: max |Δ| {diff:e} > tolerance {tol:e} ({} vs {} values)",
            actual.len(),
            expected.len()
        ))
    }
}

/// A folder of shared fixtures: `$env_var` when set, else `../shared/<name>` beside the
/// repository (the layout of the development machines).
pub fn shared_dir(env_var: &str, name: &str) -> PathBuf {
    match std::env::var_os(env_var) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared")
            .join(name),
    }
}

/// Cases per property test: `PROPTEST_CASES` when set to a number, else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
