//! Each model family's network, input description and labels, from a [`ModelConfig`]: the
//! checkpoint or built-in weights loaded, the family's options checked, a softmax added
//! where the network ends in logits.

use std::path::Path;

use burn::prelude::*;
use costream_continual::{Activation, ActivationKind, Sequential};
use costream_models::oadtr::{build_co_oadtr, load_co_oadtr, NamedOadTr};
use costream_models::stgcn::{build_stgcn, load_stgcn, NamedStGcn};
use costream_models::vad::{self, build_silero_vad, load_silero_vad, SileroVadConfig};
use costream_models::x3d::{load_x3d, NamedX3d};
use costream_models::{builtin, kinetics400, Labels};

use super::LoadedModel;
use crate::config::{ModelConfig, WeightsSource};
use crate::error::EngineError;
use crate::input::InputSpec;

pub(super) fn load_x3d_model<B: Backend>(
    config: &ModelConfig,
    device: &B::Device,
) -> Result<LoadedModel<B>, EngineError> {
    let bad = |message: String| config_error(config, message);
    let NamedX3d {
        config: mut x3d,
        frame_stride,
    } = NamedX3d::from_name(&config.variant).ok_or_else(|| {
        bad(format!(
            "unknown x3d variant `{}`: expected {}",
            config.variant,
            NamedX3d::NAMES
        ))
    })?;
    if let Some(window) = config.pool_window {
        x3d = x3d.with_pool_window(window);
    }
    if let Some(classes) = config.num_classes {
        x3d = x3d.with_num_classes(classes);
    }
    if config.weights == WeightsSource::Builtin && config.variant != "synthetic-actions" {
        return Err(bad(format!(
            "the builtin weights are those of variant synthetic-actions, not `{}`",
            config.variant
        )));
    }
    let builtin_labels = (config.weights == WeightsSource::Builtin).then(builtin::labels);
    let labels = labels(config, x3d.num_classes, builtin_labels)?;
    let load_error = |message: String| load_failed(config, message);
    let (network, x3d) = match &config.weights {
        WeightsSource::File(path) => {
            let loaded =
                load_x3d::<B>(&x3d, path, device).map_err(|e| load_error(e.to_string()))?;
            (loaded.network, loaded.config)
        }
        WeightsSource::Builtin => {
            let loaded = builtin::load::<B>(&x3d, device).map_err(|e| load_error(e.to_string()))?;
            (loaded.network, loaded.config)
        }
        WeightsSource::Random { seed } => {
            B::seed(device, *seed);
            let network = x3d
                .build::<B>(device)
                .map_err(|e| load_error(e.to_string()))?;
            (network, x3d)
        }
    };
    let input = InputSpec::Video(x3d.preprocessing(frame_stride));
    Ok(LoadedModel::describe(
        config,
        network,
        input,
        frame_stride,
        labels,
    ))
}

/// The skeleton network of the `stgcn` family, with a softmax so that steps give class
/// probabilities as the video models do.
pub(super) fn load_stgcn_model<B: Backend>(
    config: &ModelConfig,
    device: &B::Device,
) -> Result<LoadedModel<B>, EngineError> {
    let bad = |message: String| config_error(config, message);
    let named = NamedStGcn::from_name(&config.variant).ok_or_else(|| {
        bad(format!(
            "unknown stgcn variant `{}`: expected {}",
            config.variant,
            NamedStGcn::NAMES
        ))
    })?;
    let mut stgcn = named.config.clone();
    if let Some(classes) = config.num_classes {
        stgcn = stgcn.with_num_classes(classes);
    }
    if config.pool_window.is_some() {
        return Err(bad(
            "pool_window does not apply to stgcn: the pool follows the training clips".into(),
        ));
    }
    let load_error = |message: String| load_failed(config, message);
    let network = match &config.weights {
        WeightsSource::File(path) => {
            load_stgcn::<B>(&stgcn, path, device)
                .map_err(|e| load_error(e.to_string()))?
                .network
        }
        WeightsSource::Builtin => return Err(no_builtin_weights(config)),
        WeightsSource::Random { seed } => {
            B::seed(device, *seed);
            build_stgcn::<B>(&stgcn, device).map_err(|e| load_error(e.to_string()))?
        }
    };
    let network = with_softmax(network);
    let labels = labels(
        config,
        stgcn.num_classes,
        named.default_labels(stgcn.num_classes),
    )?;
    let input = InputSpec::Skeleton {
        channels: stgcn.in_channels,
        joints: stgcn.graph.joints,
        persons: stgcn.persons,
    };
    Ok(LoadedModel::describe(config, network, input, 1, labels))
}

/// Silero VAD: one output, the chunk's speech probability (class `speech`).
pub(super) fn load_vad_model<B: Backend>(
    config: &ModelConfig,
    device: &B::Device,
) -> Result<LoadedModel<B>, EngineError> {
    let bad = |message: String| config_error(config, message);
    let vad_config = SileroVadConfig::from_name(&config.variant).ok_or_else(|| {
        bad(format!(
            "unknown vad variant `{}`: expected {}",
            config.variant,
            SileroVadConfig::NAMES
        ))
    })?;
    if config.pool_window.is_some() {
        return Err(bad(
            "pool_window does not apply to vad: it has no pool".into()
        ));
    }
    if config.num_classes.is_some_and(|n| n != 1) {
        return Err(bad(
            "a vad model has one output (the speech probability): num_classes must be 1".into(),
        ));
    }
    let load_error = |message: String| load_failed(config, message);
    let network = match &config.weights {
        WeightsSource::File(path) => load_silero_vad::<B>(&vad_config, path, device),
        WeightsSource::Builtin => vad::builtin::load::<B>(device),
        WeightsSource::Random { seed } => {
            B::seed(device, *seed);
            build_silero_vad::<B>(&vad_config, device)
        }
    }
    .map_err(|e| load_error(e.to_string()))?;
    let speech = Labels::new(vec![vad::builtin::LABEL.to_string()]);
    let labels = labels(config, 1, Some(speech))?;
    let input = InputSpec::Audio {
        sample_rate: vad_config.sample_rate,
        chunk: vad_config.chunk,
    };
    Ok(LoadedModel::describe(config, network, input, 1, labels))
}

/// CoOadTR on feature vectors, with a softmax so that steps give class probabilities.
pub(super) fn load_transformer_model<B: Backend>(
    config: &ModelConfig,
    device: &B::Device,
) -> Result<LoadedModel<B>, EngineError> {
    let bad = |message: String| config_error(config, message);
    let named = NamedOadTr::from_name(&config.variant).ok_or_else(|| {
        bad(format!(
            "unknown transformer variant `{}`: expected {}",
            config.variant,
            NamedOadTr::NAMES
        ))
    })?;
    if config.pool_window.is_some() {
        return Err(bad(
            "pool_window does not apply to transformer: its window is the variant's".into(),
        ));
    }
    let mut oadtr = named.config.clone();
    if let Some(classes) = config.num_classes {
        oadtr.classes = classes;
    }
    let load_error = |message: String| load_failed(config, message);
    let network = match &config.weights {
        WeightsSource::File(path) => load_co_oadtr::<B>(&oadtr, path, device),
        WeightsSource::Builtin => return Err(no_builtin_weights(config)),
        WeightsSource::Random { seed } => {
            B::seed(device, *seed);
            build_co_oadtr::<B>(&oadtr, device)
        }
    }
    .map_err(|e| load_error(e.to_string()))?;
    let network = with_softmax(network);
    let labels = labels(config, oadtr.classes, named.default_labels(oadtr.classes))?;
    let input = InputSpec::Features {
        features: oadtr.input_features,
    };
    Ok(LoadedModel::describe(config, network, input, 1, labels))
}

/// `network` followed by a softmax over its outputs, so that a network ending in logits
/// gives class probabilities as the video models do.
fn with_softmax<B: Backend>(network: Sequential<B>) -> Sequential<B> {
    Sequential::named(vec![
        ("network", network.into()),
        ("softmax", Activation::new(ActivationKind::Softmax).into()),
    ])
}

/// [`EngineError::Config`] for a family without built-in weights asked for them.
fn no_builtin_weights(config: &ModelConfig) -> EngineError {
    config_error(
        config,
        format!(
            "there are no built-in {} weights: give a checkpoint file or random:SEED",
            config.family.name()
        ),
    )
}

/// [`EngineError::Config`] for `config`'s model.
fn config_error(config: &ModelConfig, message: String) -> EngineError {
    EngineError::Config {
        model: config.name.clone(),
        message,
    }
}

/// [`EngineError::Load`] for `config`'s model.
fn load_failed(config: &ModelConfig, message: String) -> EngineError {
    EngineError::Load {
        model: config.name.clone(),
        message,
    }
}

/// The configured label file; else the family's `default` (the built-in model's, NTU-60's);
/// Kinetics-400 for 400 classes; else `class_0`, `class_1`, ….
fn labels(
    config: &ModelConfig,
    classes: usize,
    default: Option<Labels>,
) -> Result<Labels, EngineError> {
    let labels = match (&config.labels, default) {
        (Some(path), _) => read_labels(path).map_err(|message| config_error(config, message))?,
        (None, Some(default)) => default,
        (None, None) if classes == kinetics400().len() => kinetics400().clone(),
        (None, None) => Labels::new((0..classes).map(|i| format!("class_{i}")).collect()),
    };
    if labels.len() != classes {
        return Err(config_error(
            config,
            format!(
                "{} labels for a classifier of {classes} classes",
                labels.len()
            ),
        ));
    }
    Ok(labels)
}

fn read_labels(path: &Path) -> Result<Labels, String> {
    std::fs::read_to_string(path)
        .map(|text| Labels::from_lines(&text))
        .map_err(|e| format!("cannot read labels {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Family;
    use costream_backend::Cpu;

    fn skeleton(variant: &str) -> Result<LoadedModel<Cpu>, EngineError> {
        let config = ModelConfig::new(
            "skeletons",
            Family::StGcn,
            variant,
            WeightsSource::Random { seed: 3 },
        );
        LoadedModel::load(&config, &Default::default())
    }

    #[test]
    fn the_vad_family_serves_silero_with_one_speech_output() {
        let config =
            |variant: &str| ModelConfig::new("vad", Family::Vad, variant, WeightsSource::Builtin);
        let model = LoadedModel::<Cpu>::load(&config("silero-16k"), &Default::default()).unwrap();
        assert_eq!(
            model.info.input,
            InputSpec::Audio {
                sample_rate: 16_000,
                chunk: 512
            }
        );
        assert_eq!(model.info.labels.name(0), Some("speech"));
        assert_eq!(model.info.timing.delay, 0);
        let refusals = [
            (config("silero-8k"), "unknown vad variant `silero-8k`"),
            (
                ModelConfig {
                    num_classes: Some(2),
                    ..config("silero-16k")
                },
                "num_classes must be 1",
            ),
            (
                ModelConfig {
                    pool_window: Some(4),
                    ..config("silero-16k")
                },
                "pool_window does not apply to vad",
            ),
        ];
        for (config, message) in refusals {
            let err = LoadedModel::<Cpu>::load(&config, &Default::default())
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn the_transformer_family_serves_co_oadtr_on_feature_vectors() {
        let config = |variant: &str| {
            ModelConfig::new(
                "oadtr",
                Family::Transformer,
                variant,
                WeightsSource::Random { seed: 5 },
            )
        };
        let model = LoadedModel::<Cpu>::load(&config("b2-tiny"), &Default::default()).unwrap();
        assert_eq!(model.info.input, InputSpec::Features { features: 16 });
        assert_eq!(model.info.timing.delay, 7);
        assert_eq!(model.info.labels.name(4), Some("class_4"));
        let thumos = ModelConfig {
            num_classes: Some(3),
            ..config("b1-tiny")
        };
        let model = LoadedModel::<Cpu>::load(&thumos, &Default::default()).unwrap();
        assert_eq!(model.info.labels.len(), 3);
        let refusals = [
            (config("b3-tiny"), "unknown transformer variant `b3-tiny`"),
            (
                ModelConfig {
                    weights: WeightsSource::Builtin,
                    ..config("b1-tiny")
                },
                "no built-in transformer weights",
            ),
            (
                ModelConfig {
                    pool_window: Some(4),
                    ..config("b1-tiny")
                },
                "pool_window does not apply to transformer",
            ),
            (
                ModelConfig {
                    weights: WeightsSource::File("/nonexistent/cooadtr.pth".into()),
                    ..config("b1-tiny")
                },
                "/nonexistent/cooadtr.pth",
            ),
        ];
        for (config, message) in refusals {
            let err = LoadedModel::<Cpu>::load(&config, &Default::default())
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn skeleton_variants_name_the_architecture() {
        for variant in ["tiny", "agcn-tiny", "str-tiny-mod", "agcn-tiny-mod"] {
            let model = skeleton(variant).unwrap_or_else(|e| panic!("{variant}: {e}"));
            if variant.ends_with("-mod") {
                // Every frame after the tiny network's receptive field.
                assert_eq!(model.info.timing.delay, 63, "{variant}");
            }
            assert_eq!(
                model.info.input,
                InputSpec::Skeleton {
                    channels: 3,
                    joints: 25,
                    persons: 2
                },
                "{variant}"
            );
        }
        let err = skeleton("gcn-tiny").err().unwrap().to_string();
        assert!(err.contains("agcn- or str-"), "{err}");
    }
}
