//! `Overlap`: each frame extended by the tail of the frame before it, for networks whose
//! frames are chunks of a signal that overlap (audio chunks with context, Silero VAD's 64
//! samples before each 512-sample chunk).

use core::marker::PhantomData;

use burn::prelude::*;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::module::CoModule;
use crate::state::{reshape_adding_dims, State};
use crate::timing::Timing;
use crate::weights::Weights;

/// Prepends to each frame the last `overlap` rows (height positions) of the previous frame.
/// The samples of a signal chunk run along height (`[B, C, samples, 1]`, as skeleton joints
/// do), so a chunk of `n` samples becomes `overlap + n` samples with its context in front.
///
/// Before a stream's first frame there is nothing: with [`TemporalFill::Zeros`] the context is
/// zeros (a signal that starts in silence, as Silero VAD's reference assumes); with
/// [`TemporalFill::Replicate`] it is the first frame's own tail.
///
/// The output frame depends on the current and the previous input frame and comes out at
/// once (delay 0); offline it is computed for every frame of the clip alike.
#[derive(Module, Debug)]
pub struct Overlap<B: Backend> {
    #[module(skip)]
    overlap: usize,
    backend: PhantomData<B>,
}

impl<B: Backend> Overlap<B> {
    /// Keeps `overlap` rows of each frame for the next one.
    ///
    /// # Errors
    /// If `overlap` is 0.
    pub fn new(overlap: usize) -> Result<Self, ConfigError> {
        if overlap == 0 {
            return Err(ConfigError::new(
                "Overlap",
                "overlap must be positive".to_string(),
            ));
        }
        Ok(Overlap {
            overlap,
            backend: PhantomData,
        })
    }

    /// The tail of frames, the rows the next frame gets in front.
    ///
    /// # Shapes
    /// - frames: `[N, C, H, W]` with `H >= overlap`; output: `[N, C, overlap, W]`
    fn tail(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let height = frames.dims()[2];
        assert!(
            height >= self.overlap,
            "frames of height {height} cannot give an overlap of {}: callers validate inputs",
            self.overlap
        );
        frames.narrow(2, height - self.overlap, self.overlap)
    }
}

impl<B: Backend> CoModule<B> for Overlap<B> {
    /// One output per input at once; the frame before is held as state, not as a window of
    /// the timing model.
    fn timing(&self) -> Timing {
        Timing::PER_FRAME
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        State::new(
            format!("overlap({})", self.overlap),
            1,
            rows,
            fill,
            Vec::new(),
            device,
        )
    }

    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, c, t, h, w] = clip.dims();
        let zeros = Tensor::zeros([b, c, 1, self.overlap, w], &clip.device());
        let tails = clip.clone().narrow(3, h - self.overlap, self.overlap);
        let before = if t > 1 {
            Tensor::cat(vec![zeros, tails.narrow(2, 0, t - 1)], 2)
        } else {
            zeros
        };
        Tensor::cat(vec![before, clip], 3)
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let [rows, c, _, w] = frame.dims();
        let tail = self.tail(frame.clone());
        let as_buffer = |t: Tensor<B, 4>| reshape_adding_dims(t, [rows, 1, 1, c, self.overlap, w]);
        if state.is_first_step() {
            let zeros = Tensor::zeros([rows, 1, 1, c, self.overlap, w], &state.device);
            state.buffers[0] = Some(state.filled(zeros, || as_buffer(tail.clone())));
        }
        let before = state.buffers[0]
            .take()
            .expect("buffer created at the first step: this is a bug")
            .reshape([rows, c, self.overlap, w]);
        state.buffers[0] = Some(as_buffer(tail));
        state.advance();
        Some(Tensor::cat(vec![before, frame], 2))
    }

    fn flush(&self, _state: &mut State<B>) -> Option<Tensor<B, 5>> {
        None
    }

    fn load_weights(&mut self, _weights: &mut Weights, _prefix: &str) -> Result<(), WeightError> {
        Ok(())
    }

    fn save_weights(&self, _weights: &mut Weights, _prefix: &str) {}
}
