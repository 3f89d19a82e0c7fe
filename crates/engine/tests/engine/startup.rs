//! Start-up errors name what is wrong: devices not built in, weights that cannot be read,
//! labels that do not fit; a good config reports its models ready with measured state size.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use costream_engine::{Engine, EngineConfig, EngineError, WeightsSource};

fn start_err(config: costream_engine::ModelConfig) -> EngineError {
    Engine::start(&EngineConfig {
        models: vec![config],
    })
    .unwrap_err()
}

// Only meaningful where the cuda backend is not built in.
#[cfg(not(feature = "cuda"))]
#[test]
fn devices_missing_from_the_build_are_named() {
    let mut config = tiny_model("tiny");
    config.device = costream_engine::DeviceSpec::Cuda(0);
    let err = start_err(config);
    assert!(matches!(err, EngineError::Device { .. }), "{err}");
    assert!(
        err.to_string().contains("rebuild with `--features cuda`"),
        "{err}"
    );
}

#[test]
fn unreadable_weights_and_wrong_labels_are_named() {
    let mut config = tiny_model("tiny");
    config.weights = WeightsSource::File("/nonexistent/x3d_s.pyth".into());
    let err = start_err(config);
    assert!(matches!(err, EngineError::Load { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/x3d_s.pyth"), "{err}");

    let dir = std::env::temp_dir().join(format!("costream-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "a\nb\nc\n").unwrap();
    let mut config = tiny_model("tiny");
    config.labels = Some(labels);
    let err = start_err(config);
    assert!(
        err.to_string()
            .contains("3 labels for a classifier of 5 classes"),
        "{err}"
    );

    let mut config = tiny_model("tiny");
    config.variant = "xxl".into();
    let err = start_err(config);
    assert!(
        err.to_string().contains("unknown x3d variant `xxl`"),
        "{err}"
    );
}

#[test]
fn a_started_engine_describes_its_models() {
    let engine = start(vec![tiny_model("tiny")], None);
    let info = engine.model("tiny").unwrap();
    assert_eq!(info.labels.len(), 5);
    assert_eq!(info.input.frame_shape(), [3, 32, 32]);
    assert!(info.timing.delay > 0);
    assert!(
        info.state_bytes_per_stream > 0,
        "warm-up measures the state"
    );
    assert_eq!(engine.models().count(), 1);
}
