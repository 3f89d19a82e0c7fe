//! The built-in model: an X3D trained by `costream-train` on the synthetic actions of
//! `costream-synth` (8 classes: moving left, right, up, down; growing; shrinking; rotating;
//! still), stepped as CoX3D. Its weights (PySlowFast layout, safetensors) and labels are
//! compiled into the binary, so a fresh `costream serve` predicts something one can check.
//! `cargo run --release -p costream-train` rewrites both files in `crates/models/weights/`.

use std::path::Path;

use burn::prelude::*;
use costream_continual::Weights;

use crate::error::LoadError;
use crate::labels::Labels;
use crate::x3d::{load_x3d_weights, LoadedX3d, X3dConfig};

/// The weights file, as committed.
pub const WEIGHTS: &[u8] = include_bytes!("../weights/synthetic_actions.safetensors");

/// The class names, one per line, in class-index order.
pub const LABELS: &str = include_str!("../weights/synthetic_actions.labels");

/// How error messages name the built-in weights.
pub const ORIGIN: &str = "builtin:synthetic_actions.safetensors";

/// The network's shape ([`X3dConfig::synthetic_actions`]).
pub fn config() -> X3dConfig {
    X3dConfig::synthetic_actions()
}

/// The class names.
pub fn labels() -> Labels {
    Labels::from_lines(LABELS)
}

/// The built-in network with its weights, shaped as `config`: [`config`], or a variant of it
/// that keeps the weights' shapes (another global pool window).
///
/// # Errors
/// [`LoadError`] naming the first weight that does not fit `config` (e.g. a classifier of
/// other than 8 classes).
pub fn load<B: Backend>(config: &X3dConfig, device: &B::Device) -> Result<LoadedX3d<B>, LoadError> {
    let weights = Weights::from_safetensors(WEIGHTS, "").map_err(|e| LoadError::Read {
        path: ORIGIN.into(),
        reason: e.to_string(),
    })?;
    load_x3d_weights(config, weights, Path::new(ORIGIN), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use costream_backend::Cpu;
    use costream_continual::CoModule;

    #[test]
    fn loads_with_its_labels_and_stays_small() {
        assert!(WEIGHTS.len() <= 2 << 20, "{} bytes", WEIGHTS.len());
        let model = load::<Cpu>(&config(), &Default::default()).unwrap();
        assert_eq!(labels().len(), config().num_classes);
        assert_eq!(labels().name(0), Some("moving left"));
        assert_eq!(model.config, config());
        // Predictions start 8 frames into a stream (the README's example shows this).
        let timing = model.network.timing();
        assert_eq!(
            (timing.delay, timing.receptive_field),
            (8, 14),
            "{timing:?}"
        );
    }

    #[test]
    fn loads_with_a_longer_pool_window_but_not_another_classifier() {
        let longer = config().with_pool_window(8);
        let model = load::<Cpu>(&longer, &Default::default()).unwrap();
        assert_eq!(model.network.timing().receptive_field, 18);
        let err = load::<Cpu>(&config().with_num_classes(5), &Default::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("head.projection.weight"), "{err}");
    }
}
