//! `Delay` and `Skip`: align parallel branches in time, and crop a residual offline.

use core::marker::PhantomData;

use burn::prelude::*;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::module::CoModule;
use crate::state::{reshape_adding_dims, take_slots, State};
use crate::timing::Timing;
use crate::weights::Weights;

/// Outputs each frame `delay` steps late (`co.Delay`); offline it is the identity, optionally
/// cropping `crop_start` and `crop_end` frames (a shrinking residual, `co.Skip`).
///
/// With a crop, the streamed outputs start `crop_start` steps later so that step `t` still
/// corresponds to offline position `t - delay - crop_start`.
#[derive(Module, Debug)]
pub struct Delay<B: Backend> {
    #[module(skip)]
    delay: usize,
    #[module(skip)]
    crop_start: usize,
    #[module(skip)]
    crop_end: usize,
    backend: PhantomData<B>,
}

impl<B: Backend> Delay<B> {
    /// `co.Delay(delay)`: offline identity, frames `delay` steps late when streaming.
    pub fn new(delay: usize) -> Self {
        Delay {
            delay,
            crop_start: 0,
            crop_end: 0,
            backend: PhantomData,
        }
    }

    /// `co.Skip(frames)`: drops the first `frames` frames, offline and streaming.
    pub fn skip(frames: usize) -> Self {
        Delay {
            delay: 0,
            crop_start: frames,
            crop_end: 0,
            backend: PhantomData,
        }
    }

    /// A delay whose offline form crops `crop_start` frames at the start and `crop_end` at the
    /// end.
    ///
    /// # Errors
    /// If `crop_end > delay`: the stream would already have emitted frames the offline form
    /// crops.
    pub fn cropped(delay: usize, crop_start: usize, crop_end: usize) -> Result<Self, ConfigError> {
        if crop_end > delay {
            return Err(ConfigError::new(
                "Delay",
                format!("crop_end {crop_end} exceeds delay {delay}; streamed frames cannot be taken back"),
            ));
        }
        Ok(Delay {
            delay,
            crop_start,
            crop_end,
            backend: PhantomData,
        })
    }

    /// Steps a frame is held back.
    pub fn delay(&self) -> usize {
        self.delay
    }
}

impl<B: Backend> CoModule<B> for Delay<B> {
    fn timing(&self) -> Timing {
        Timing::primitive(self.delay + 1, -(self.crop_start as i64), 1)
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        State::new(
            format!("delay({})", self.delay),
            usize::from(self.delay > 0),
            rows,
            fill,
            Vec::new(),
            device,
        )
    }

    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let time = clip.dims()[2];
        clip.narrow(2, self.crop_start, time - self.crop_start - self.crop_end)
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let emit = state.row_decision(|s| s >= self.timing().delay as u64);
        if self.delay == 0 {
            state.advance();
            return emit.then_some(frame);
        }
        let [rows, c, h, w] = frame.dims();
        let frame = reshape_adding_dims(frame, [rows, 1, 1, c, h, w]);
        if state.is_first_step() {
            let zeros = Tensor::zeros([rows, 1, self.delay, c, h, w], &state.device);
            state.buffers[0] =
                Some(state.filled(zeros, || frame.clone().repeat_dim(2, self.delay)));
        }
        let history = state.buffers[0]
            .take()
            .expect("buffer created at the first step: this is a bug");
        let window = Tensor::cat(vec![history, frame], 2);
        state.buffers[0] = Some(take_slots(window.clone(), 1, self.delay));
        state.advance();
        emit.then(|| take_slots(window, 0, 1).reshape([rows, c, h, w]))
    }

    fn flush(&self, state: &mut State<B>) -> Option<Tensor<B, 5>> {
        let history = state.buffers.first().cloned().flatten()?;
        let (d, a, e) = (self.delay, self.crop_start, self.crop_end);
        let n = state.uniform_steps() as usize;
        // Offline has n - a - e frames; the stream emitted those from input a + ... up to
        // input n - d - 1. The rest are held in slots [first, first + count).
        let offline = n.saturating_sub(a + e);
        let streamed = n.saturating_sub(d + a);
        let count = offline.saturating_sub(streamed);
        if count == 0 {
            return None;
        }
        let first = a + streamed + d - n;
        let [rows, _, _, c, h, w] = history.dims();
        Some(
            take_slots(history, first, count)
                .reshape([rows, count, c, h, w])
                .swap_dims(1, 2),
        )
    }

    fn save_weights(&self, _weights: &mut Weights, _prefix: &str) {}

    fn load_weights(&mut self, _weights: &mut Weights, _prefix: &str) -> Result<(), WeightError> {
        Ok(())
    }
}
