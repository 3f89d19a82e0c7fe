//! The continual contract every Co module obeys: three call modes, timing metadata, state
//! kept apart from the weights, weights loaded by PyTorch key names.
//!
//! # Shapes
//! Every module works on one canonical layout: a clip is `[batch, channels, time, height,
//! width]` and a frame (one step) is `[batch, channels, height, width]`. Sequences of vectors
//! (`[B, C, T]`) use `height = width = 1`; skeletons (`[B, C, T, V]`) use `height = V`,
//! `width = 1`.

use burn::prelude::*;

use crate::error::WeightError;
use crate::fill::TemporalFill;
use crate::state::{reshape_adding_dims, State};
use crate::timing::Timing;
use crate::weights::Weights;

/// A Continual Inference module: a network layer that runs offline over a clip, or one frame
/// at a time with per-stream [`State`], and gives the same numbers both ways.
pub trait CoModule<B: Backend> {
    /// How step outputs relate to offline outputs.
    fn timing(&self) -> Timing;

    /// A fresh state for `rows` streams, all with temporal fill `fill`.
    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B>;

    /// The offline network over a whole clip, with its symmetric temporal zero padding.
    ///
    /// # Shapes
    /// - clip: `[batch, channels_in, time, height, width]`
    /// - output: `[batch, channels_out, time_out, height_out, width_out]`
    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5>;

    /// Consumes one frame per stream; `None` while the module is filling and on steps a
    /// temporal stride skips. A module inside a container that returned `None` neither runs
    /// nor advances on that step.
    ///
    /// # Shapes
    /// - frame: `[batch, channels_in, height, width]` with `batch == state.rows()`
    /// - output: `[batch, channels_out, height_out, width_out]`
    ///
    /// # Panics
    /// If the state's rows are out of phase (see [`Timing::phase_key`]), or if the frame does
    /// not have the shape the weights require (callers validate inputs first).
    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>>;

    /// Ends the streams: emits the outputs that the offline network computes from its end
    /// padding, so that `forward_steps(clip)` followed by `flush` equals `forward(clip)`.
    /// The state is spent afterwards; [`State::reset`] it to start again.
    ///
    /// # Shapes
    /// - output: `[batch, channels_out, frames, height_out, width_out]`, `None` if no frame
    fn flush(&self, state: &mut State<B>) -> Option<Tensor<B, 5>>;

    /// Steps every frame of `clip` in order (a "pulse") and returns the outputs produced,
    /// followed by those of [`CoModule::flush`] when `pad_end` is set.
    ///
    /// # Shapes
    /// - clip: `[batch, channels_in, time, height, width]`
    /// - output: `[batch, channels_out, frames, height_out, width_out]`, `None` if no frame
    fn forward_steps(
        &self,
        clip: Tensor<B, 5>,
        state: &mut State<B>,
        pad_end: bool,
    ) -> Option<Tensor<B, 5>> {
        let outputs: Vec<Tensor<B, 4>> = clip_frames(clip)
            .filter_map(|frame| self.forward_step(frame, state))
            .collect();
        let mut out = stack_frames(outputs);
        if pad_end {
            out = concat_clips(out, self.flush(state));
        }
        out
    }

    /// Takes this module's tensors from `weights`, named as the PyTorch module's `state_dict`
    /// under `prefix` (`""` at the root).
    ///
    /// # Errors
    /// [`WeightError`] naming the first missing or mis-shaped key.
    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError>;

    /// Puts this module's tensors into `weights` under the keys and in the layouts that
    /// [`CoModule::load_weights`] takes them from, so that loading them back gives the same
    /// module.
    fn save_weights(&self, weights: &mut Weights, prefix: &str);
}

/// Loads a whole checkpoint into `module`: every key it needs must be present with its shape,
/// and every key present must be used.
///
/// # Errors
/// [`WeightError`] naming the first missing or mis-shaped key, or listing the unused ones.
pub fn load_checkpoint<B: Backend, M: CoModule<B>>(
    module: &mut M,
    mut weights: Weights,
) -> Result<(), WeightError> {
    module.load_weights(&mut weights, "")?;
    weights.finish()
}

/// Every tensor of `module` under its PyTorch key name: the inverse of [`load_checkpoint`].
pub fn save_checkpoint<B: Backend, M: CoModule<B>>(module: &M) -> Weights {
    let mut weights = Weights::new();
    module.save_weights(&mut weights, "");
    weights
}

/// The frames of a clip, in time order.
///
/// # Shapes
/// - clip: `[B, C, T, H, W]`; each item: `[B, C, H, W]`
pub fn clip_frames<B: Backend>(clip: Tensor<B, 5>) -> impl Iterator<Item = Tensor<B, 4>> {
    let time = clip.dims()[2];
    (0..time).map(move |t| clip.clone().narrow(2, t, 1).squeeze_dim(2))
}

/// Frames stacked along time; `None` for no frames.
///
/// # Shapes
/// - each frame: `[B, C, H, W]`; output: `[B, C, T, H, W]`
pub fn stack_frames<B: Backend>(frames: Vec<Tensor<B, 4>>) -> Option<Tensor<B, 5>> {
    if frames.is_empty() {
        return None;
    }
    let clips = frames
        .into_iter()
        .map(|frame| {
            let [b, c, h, w] = frame.dims();
            reshape_adding_dims(frame, [b, c, 1, h, w])
        })
        .collect();
    Some(Tensor::cat(clips, 2))
}

/// Two optional clips one after the other in time.
pub(crate) fn concat_clips<B: Backend>(
    a: Option<Tensor<B, 5>>,
    b: Option<Tensor<B, 5>>,
) -> Option<Tensor<B, 5>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Tensor::cat(vec![a, b], 2)),
        (a, b) => a.or(b),
    }
}

/// Applies a per-frame function to every frame of a clip at once (time folded into batch).
///
/// # Shapes
/// - clip: `[B, C, T, H, W]`; `f`: `[N, C, H, W] -> [N, C', H', W']`; output `[B, C', T, H', W']`
pub fn map_frames<B: Backend>(
    clip: Tensor<B, 5>,
    f: impl FnOnce(Tensor<B, 4>) -> Tensor<B, 4>,
) -> Tensor<B, 5> {
    let [b, c, t, h, w] = clip.dims();
    let frames = clip.swap_dims(1, 2).reshape([b * t, c, h, w]);
    let out = f(frames);
    let [_, c2, h2, w2] = out.dims();
    reshape_adding_dims(out, [b, t, c2, h2, w2]).swap_dims(1, 2)
}
