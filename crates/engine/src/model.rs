//! A model loaded for serving: its continual network on the device, and what callers need to
//! know about it (input, timing, labels, limits).

use std::path::Path;
use std::sync::Arc;

use burn::prelude::*;
use costream_continual::{
    Activation, ActivationKind, CoModule, Sequential, State, TemporalFill, Timing,
};
use costream_models::oadtr::{build_co_oadtr, load_co_oadtr, NamedOadTr};
use costream_models::stgcn::{build_stgcn, load_stgcn, NamedStGcn};
use costream_models::vad::{self, build_silero_vad, load_silero_vad, SileroVadConfig};
use costream_models::x3d::{load_x3d, NamedX3d};
use costream_models::{builtin, kinetics400, Labels};
use serde::Deserialize;

use crate::config::{BatchPolicy, ModelConfig, SlotPolicy, WeightsSource};
use crate::device::DeviceSpec;
use crate::error::EngineError;
use crate::input::InputSpec;

/// Model families the engine serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// X3D video networks, stepped as CoX3D (variants `xs`, `s`, `m`, `l`, `tiny`,
    /// `tiny-nose`, `synthetic-actions`).
    X3d,
    /// Skeleton networks, stepped as CoST-GCN (variants `ntu60`, `ntu120`, `kinetics`, and
    /// `tiny` for tests; with `-mod`, CoST-GCN*: a prediction every frame). Prefixed `agcn-`
    /// or `str-`, CoAGCN or CoS-TR (e.g. `str-ntu60-mod`).
    #[serde(rename = "stgcn")]
    StGcn,
    /// Voice activity detection on 16 kHz audio, a chunk of 512 samples per frame (variant
    /// `silero-16k`: Silero VAD, by default with the package's pretrained weights); each
    /// answer is the chunk's speech probability.
    Vad,
    /// Online action detection on per-frame feature vectors with a continual transformer
    /// (CoOadTR; variants `b1-thumos-anet`, `b2-thumos-kin`, `b1-tvseries`, …, `b1-tiny`);
    /// each answer is the newest frame's class probabilities, background included.
    Transformer,
}

impl Family {
    /// The family's name in configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Family::X3d => "x3d",
            Family::StGcn => "stgcn",
            Family::Vad => "vad",
            Family::Transformer => "transformer",
        }
    }
}

/// What callers know about a served model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The name clients ask for.
    pub name: String,
    /// Its family.
    pub family: Family,
    /// The family's variant.
    pub variant: String,
    /// Where it runs.
    pub device: DeviceSpec,
    /// What each frame must be.
    pub input: InputSpec,
    /// Source frames per model frame that the model was trained with (a client at a higher
    /// frame rate may ask the engine to keep every n-th frame).
    pub frame_stride: usize,
    /// How outputs relate to inputs: `delay` frames pass before the first prediction.
    pub timing: Timing,
    /// Class names by output index.
    pub labels: Arc<Labels>,
    /// Stream slots.
    pub slots: SlotPolicy,
    /// Batching.
    pub batch: BatchPolicy,
    /// The largest image a frame may carry, in pixels.
    pub max_image_pixels: usize,
    /// Device memory of one stream's state once filled, in bytes (measured at warm-up; 0
    /// if the model was not warmed up).
    pub state_bytes_per_stream: usize,
}

/// A served model on the device thread: the network and its description.
pub(crate) struct LoadedModel<B: Backend> {
    /// The continual network; steps output `[B, classes, 1, 1]` scores.
    pub(crate) network: Sequential<B>,
    /// Its description.
    pub(crate) info: ModelInfo,
}

impl<B: Backend> LoadedModel<B> {
    /// Builds the model `config` describes on `device` and loads its weights.
    ///
    /// # Errors
    /// [`EngineError::Config`] for an unknown variant or labels that do not fit,
    /// [`EngineError::Load`] when the weights cannot be read or do not fit the network.
    pub(crate) fn load(config: &ModelConfig, device: &B::Device) -> Result<Self, EngineError> {
        match config.family {
            Family::X3d => load_x3d_model(config, device),
            Family::StGcn => load_stgcn_model(config, device),
            Family::Vad => load_vad_model(config, device),
            Family::Transformer => load_transformer_model(config, device),
        }
    }

    /// `network` served as `config` says, taking `input` and answering with `labels`; its
    /// BatchNorms and activations are folded into the convs before them for streaming
    /// ([`Sequential::fold_into_convs`]: the engine only steps).
    fn describe(
        config: &ModelConfig,
        mut network: Sequential<B>,
        input: InputSpec,
        frame_stride: usize,
        labels: Labels,
    ) -> Self {
        network.fold_into_convs();
        let info = ModelInfo {
            name: config.name.clone(),
            family: config.family,
            variant: config.variant.clone(),
            device: config.device,
            input,
            frame_stride,
            timing: network.timing(),
            labels: Arc::new(labels),
            slots: config.slots,
            batch: config.batch,
            max_image_pixels: config.max_image_pixels,
            state_bytes_per_stream: 0,
        };
        LoadedModel { network, info }
    }

    /// A fresh state for `rows` streams.
    pub(crate) fn init_state(
        &self,
        rows: usize,
        fill: TemporalFill,
        device: &B::Device,
    ) -> State<B> {
        self.network.init_state(rows, fill, device)
    }

    /// One step of a batch: the scores of each row, or `None` while the streams fill.
    ///
    /// # Shapes
    /// - frames: `[rows, C, H, W]`; output: `rows` vectors of `classes` scores
    pub(crate) fn step(&self, frames: Tensor<B, 4>, state: &mut State<B>) -> Option<Vec<Vec<f32>>> {
        let rows = frames.dims()[0];
        let out = self.network.forward_step(frames, state)?;
        Some(split_rows(out.reshape([rows as i32, -1]), rows))
    }

    /// Ends a batch's streams: the outputs of the end padding, per row, in frame order.
    ///
    /// # Shapes
    /// - output: `rows` lists of `frames` vectors of `classes` scores
    pub(crate) fn flush(&self, state: &mut State<B>) -> Vec<Vec<Vec<f32>>> {
        let rows = state.rows();
        let Some(out) = self.network.flush(state) else {
            return vec![vec![]; rows];
        };
        let [_, classes, frames, _, _] = out.dims();
        // [rows, classes, frames] → [rows, frames, classes]
        let per_frame = out.reshape([rows, classes, frames]).swap_dims(1, 2);
        split_rows(per_frame.reshape([rows * frames, classes]), rows * frames)
            .chunks(frames.max(1))
            .map(<[Vec<f32>]>::to_vec)
            .collect()
    }
}

/// The rows of a `[rows, n]` tensor, read back from the device.
fn split_rows<B: Backend>(scores: Tensor<B, 2>, rows: usize) -> Vec<Vec<f32>> {
    let [_, n] = scores.dims();
    let values: Vec<f32> = scores
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap_or_default();
    values
        .chunks(n.max(1))
        .take(rows)
        .map(<[f32]>::to_vec)
        .collect()
}

fn load_x3d_model<B: Backend>(
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
fn load_stgcn_model<B: Backend>(
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
        WeightsSource::Builtin => {
            return Err(bad(
                "there are no built-in stgcn weights: give a checkpoint file or random:SEED".into(),
            ))
        }
        WeightsSource::Random { seed } => {
            B::seed(device, *seed);
            build_stgcn::<B>(&stgcn, device).map_err(|e| load_error(e.to_string()))?
        }
    };
    let network = Sequential::named(vec![
        ("network", network.into()),
        ("softmax", Activation::new(ActivationKind::Softmax).into()),
    ]);
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
fn load_vad_model<B: Backend>(
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
fn load_transformer_model<B: Backend>(
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
        WeightsSource::Builtin => {
            return Err(bad(
                "there are no built-in transformer weights: give a checkpoint file or \
                 random:SEED"
                    .into(),
            ))
        }
        WeightsSource::Random { seed } => {
            B::seed(device, *seed);
            build_co_oadtr::<B>(&oadtr, device)
        }
    }
    .map_err(|e| load_error(e.to_string()))?;
    let network = Sequential::named(vec![
        ("network", network.into()),
        ("softmax", Activation::new(ActivationKind::Softmax).into()),
    ]);
    let labels = labels(config, oadtr.classes, named.default_labels(oadtr.classes))?;
    let input = InputSpec::Features {
        features: oadtr.input_features,
    };
    Ok(LoadedModel::describe(config, network, input, 1, labels))
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
