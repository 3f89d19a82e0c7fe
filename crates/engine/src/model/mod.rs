//! A model loaded for serving: its continual network on the device, and what callers need to
//! know about it (input, timing, labels, limits).
//!
//! - [`families`]: each family's network, input and labels from a [`ModelConfig`].

mod families;

use std::sync::Arc;

use burn::prelude::*;
use costream_continual::{CoModule, Sequential, State, TemporalFill, Timing};
use costream_models::Labels;
use serde::Deserialize;

use crate::config::{BatchPolicy, ModelConfig, SlotPolicy};
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
            Family::X3d => families::load_x3d_model(config, device),
            Family::StGcn => families::load_stgcn_model(config, device),
            Family::Vad => families::load_vad_model(config, device),
            Family::Transformer => families::load_transformer_model(config, device),
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
