//! The Silero VAD weights users get from the package: `silero_vad.jit`'s 16 kHz network
//! (silero-vad 6.2.3, MIT; the licence is `crates/models/weights/silero_vad.LICENSE`),
//! exported by `tools/reference/silero_vad_reference.py` in the package's safetensors layout.
//!
//! The package's own `silero_vad_16k.safetensors` holds other weights (every tensor but the
//! STFT basis differs, and speech probabilities differ by up to 0.4 on the same audio); it
//! loads through [`super::load_silero_vad`] like any file of that layout.

use std::path::Path;

use burn::prelude::*;
use costream_continual::{Sequential, Weights};

use super::config::SileroVadConfig;
use super::load::load_silero_vad_weights;
use crate::error::LoadError;

/// The weights file, as committed.
pub const WEIGHTS: &[u8] = include_bytes!("../../weights/silero_vad_16k.safetensors");

/// The licence the weights are distributed under.
pub const LICENCE: &str = include_str!("../../weights/silero_vad.LICENSE");

/// How error messages name the built-in weights.
pub const ORIGIN: &str = "builtin:silero_vad_16k.safetensors";

/// The class name of the network's one output.
pub const LABEL: &str = "speech";

/// The 16 kHz network with the package's `.jit` weights.
///
/// # Errors
/// [`LoadError`] if the compiled-in file does not fit (a bug).
pub fn load<B: Backend>(device: &B::Device) -> Result<Sequential<B>, LoadError> {
    let weights = Weights::from_safetensors(WEIGHTS, "").map_err(|e| LoadError::Read {
        path: ORIGIN.into(),
        reason: e.to_string(),
    })?;
    load_silero_vad_weights(
        &SileroVadConfig::sixteen_khz(),
        weights,
        Path::new(ORIGIN),
        device,
    )
}
