//! Continual average and max pooling (1-D, 2-D and 3-D in torch terms) and the adaptive pools
//! with a temporal window.
//!
//! Each step pools the new frame spatially and keeps the last `span - 1` pooled frames; the
//! temporal pool reduces the window. Average pooling counts temporal zero padding, as torch's
//! default `count_include_pad=True`; max pooling pads with −∞ (the reference library pads with
//! 0, which differs from the offline network when every value in a window is negative).

use core::marker::PhantomData;

use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, max_pool2d};

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::module::{map_frames, stack_frames, CoModule};
use crate::state::{reshape_adding_dims, take_slots, State};
use crate::timing::Timing;
use crate::weights::Weights;

/// The reduction a pool applies.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Mean of the window.
    Avg,
    /// Maximum of the window.
    Max,
}

/// Configuration of a [`CoPool`]. Dimensions are `[time, height, width]`.
#[derive(Config, Debug)]
pub struct CoPoolConfig {
    /// Average or max.
    pub kind: PoolKind,
    /// Window `[time, height, width]`; for an adaptive pool, the temporal window only.
    pub kernel_size: [usize; 3],
    /// Stride; `None` means the kernel size, as in torch.
    #[config(default = "None")]
    pub stride: Option<[usize; 3]>,
    /// Padding on both sides (zeros for average, −∞ for max).
    #[config(default = "[0, 0, 0]")]
    pub padding: [usize; 3],
    /// Temporal dilation (spatial dilation is not supported).
    #[config(default = 1)]
    pub temporal_dilation: usize,
    /// Spatial output size of an adaptive pool (`co.AdaptiveAvgPool3d(output_size,
    /// kernel_size=window)`): the frame is pooled to this size and the last `kernel_size[0]`
    /// frames are reduced. `None` for a windowed pool.
    #[config(default = "None")]
    pub adaptive: Option<[usize; 2]>,
}

impl CoPoolConfig {
    /// `co.AvgPool3d(kernel_size, stride)`; 1-D and 2-D pools use unit spatial sizes.
    pub fn avg(kernel_size: [usize; 3]) -> Self {
        CoPoolConfig::new(PoolKind::Avg, kernel_size)
    }

    /// `co.MaxPool3d(kernel_size, stride)`.
    pub fn max(kernel_size: [usize; 3]) -> Self {
        CoPoolConfig::new(PoolKind::Max, kernel_size)
    }

    /// `co.AdaptiveAvgPool3d` / `co.AdaptiveMaxPool3d` with temporal output size 1: frames
    /// pooled to `output_size`, the last `window` frames reduced.
    pub fn adaptive(kind: PoolKind, output_size: [usize; 2], window: usize) -> Self {
        CoPoolConfig::new(kind, [window, 1, 1])
            .with_stride(Some([1, 1, 1]))
            .with_adaptive(Some(output_size))
    }

    /// Builds the pool.
    ///
    /// # Errors
    /// [`ConfigError`] for zero sizes, padding beyond half a window (as torch), or temporal
    /// padding on an adaptive pool.
    pub fn init<B: Backend>(&self) -> Result<CoPool<B>, ConfigError> {
        let stride = self.stride.unwrap_or(self.kernel_size);
        let err = |reason: String| ConfigError::new("Pool", reason);
        if self.kernel_size.contains(&0) || stride.contains(&0) || self.temporal_dilation == 0 {
            return Err(err(format!(
                "kernel {:?}, stride {stride:?} and dilation {} must be non-zero",
                self.kernel_size, self.temporal_dilation
            )));
        }
        if self
            .padding
            .iter()
            .zip(self.kernel_size)
            .any(|(&p, k)| 2 * p > k)
        {
            return Err(err(format!(
                "padding {:?} exceeds half the kernel {:?}",
                self.padding, self.kernel_size
            )));
        }
        if let Some(out) = self.adaptive {
            if out.contains(&0) || self.padding != [0, 0, 0] || stride[0] != 1 {
                return Err(err(format!(
                    "adaptive pool to {out:?} takes no padding ({:?}) and temporal stride 1 ({})",
                    self.padding, stride[0]
                )));
            }
        }
        Ok(CoPool {
            kind: self.kind,
            kernel_size: self.kernel_size,
            stride,
            padding: self.padding,
            dilation: self.temporal_dilation,
            adaptive: self.adaptive,
            backend: PhantomData,
        })
    }
}

/// A continual pool (`co.AvgPool*`, `co.MaxPool*`, `co.AdaptiveAvgPool*`,
/// `co.AdaptiveMaxPool*`). Built by [`CoPoolConfig::init`].
///
/// An adaptive pool's offline [`CoModule::forward`] reduces the whole clip (torch semantics,
/// one output frame) while its steps reduce the last `window` frames, as in the reference:
/// step `t` equals `forward` over the frames `t-window+1..=t`.
#[derive(Module, Debug)]
pub struct CoPool<B: Backend> {
    #[module(skip)]
    kind: PoolKind,
    #[module(skip)]
    kernel_size: [usize; 3],
    #[module(skip)]
    stride: [usize; 3],
    #[module(skip)]
    padding: [usize; 3],
    #[module(skip)]
    dilation: usize,
    #[module(skip)]
    adaptive: Option<[usize; 2]>,
    backend: PhantomData<B>,
}

impl<B: Backend> CoPool<B> {
    fn span(&self) -> usize {
        self.dilation * (self.kernel_size[0] - 1) + 1
    }

    /// The value of temporal padding: 0 for average, −∞ for max.
    fn pad_value(&self) -> f32 {
        match self.kind {
            PoolKind::Avg => 0.0,
            PoolKind::Max => f32::NEG_INFINITY,
        }
    }

    /// Pools frames spatially.
    ///
    /// # Shapes
    /// - frames: `[N, C, H, W]`; output: `[N, C, H', W']`
    fn pool_spatial(&self, frames: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, kh, kw] = self.kernel_size;
        let [_, sh, sw] = self.stride;
        let [_, ph, pw] = self.padding;
        match (self.adaptive, self.kind) {
            (Some(out), kind) => adaptive_pool2d(frames, out, kind),
            (None, _) if [kh, kw, sh, sw] == [1, 1, 1, 1] && [ph, pw] == [0, 0] => frames,
            (None, PoolKind::Avg) => avg_pool2d(frames, [kh, kw], [sh, sw], [ph, pw], true, false),
            (None, PoolKind::Max) => {
                max_pool2d(frames, [kh, kw], [sh, sw], [ph, pw], [1, 1], false)
            }
        }
    }

    /// Reduces the taps of a window along dim 2 (every `dilation`-th slot).
    ///
    /// # Shapes
    /// - window: `[rows, 1, span, C, H, W]`; output: `[rows, C, H, W]`
    fn reduce_window(&self, window: Tensor<B, 6>) -> Tensor<B, 4> {
        let taps = if self.dilation == 1 {
            window
        } else {
            let picks = (0..self.kernel_size[0])
                .map(|j| take_slots(window.clone(), j * self.dilation, 1))
                .collect();
            Tensor::cat(picks, 2)
        };
        let reduced = match self.kind {
            PoolKind::Avg => taps.mean_dim(2),
            PoolKind::Max => taps.max_dim(2),
        };
        let [rows, _, _, c, h, w] = reduced.dims();
        reduced.reshape([rows, c, h, w])
    }

    /// Pushes a pooled frame (`None`: a padding frame) and returns the emitted output.
    fn push(&self, pooled: Option<Tensor<B, 4>>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let history = state.buffers[0].take()?;
        let [rows, _, _, c, h, w] = history.dims();
        let newest = match pooled {
            Some(p) => reshape_adding_dims(p, [rows, 1, 1, c, h, w]),
            None => Tensor::full([rows, 1, 1, c, h, w], self.pad_value(), &state.device),
        };
        let window = Tensor::cat(vec![history, newest], 2);
        let slots = self.span() - 1;
        state.buffers[0] = Some(take_slots(window.clone(), 1, slots));
        let emit = state.row_decision(|s| self.timing().emits_at(s));
        state.advance();
        emit.then(|| self.reduce_window(window))
    }
}

impl<B: Backend> CoModule<B> for CoPool<B> {
    fn timing(&self) -> Timing {
        Timing::primitive(self.span(), self.padding[0] as i64, self.stride[0])
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        let kind = format!("pool({:?},slots={})", self.kind, self.span() - 1);
        State::new(
            kind,
            usize::from(self.span() > 1),
            rows,
            fill,
            Vec::new(),
            device,
        )
    }

    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let pooled = map_frames(clip, |frames| self.pool_spatial(frames));
        let [b, c, t, h, w] = pooled.dims();
        if self.adaptive.is_some() {
            return match self.kind {
                PoolKind::Avg => pooled.mean_dim(2),
                PoolKind::Max => pooled.max_dim(2),
            };
        }
        let pad = self.padding[0];
        let padded = if pad == 0 {
            pooled
        } else {
            let edge = Tensor::full([b, c, pad, h, w], self.pad_value(), &pooled.device());
            Tensor::cat(vec![edge.clone(), pooled, edge], 2)
        };
        let span = self.span();
        let s = self.stride[0];
        let t_out = (t + 2 * pad - span) / s + 1;
        // Tap j of every output window: frames j*dilation, j*dilation + s, ...
        let taps: Vec<Tensor<B, 5>> = (0..self.kernel_size[0])
            .map(|j| {
                let start = j * self.dilation;
                let frames = padded.clone().narrow(2, start, (t_out - 1) * s + 1);
                if s == 1 {
                    frames
                } else {
                    let picks = (0..t_out)
                        .map(|o| frames.clone().narrow(2, o * s, 1))
                        .collect();
                    Tensor::cat(picks, 2)
                }
            })
            .collect();
        let stacked: Tensor<B, 6> = Tensor::stack(taps, 0);
        let reduced = match self.kind {
            PoolKind::Avg => stacked.mean_dim(0),
            PoolKind::Max => stacked.max_dim(0),
        };
        reduced.reshape([b, c, t_out, h, w])
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let pooled = self.pool_spatial(frame);
        if self.span() == 1 {
            let emit = state.row_decision(|s| self.timing().emits_at(s));
            state.advance();
            return emit.then_some(pooled);
        }
        if state.is_first_step() {
            let [rows, c, h, w] = pooled.dims();
            let slots = self.span() - 1;
            let padding = Tensor::full([rows, 1, slots, c, h, w], self.pad_value(), &state.device);
            let replicate =
                || reshape_adding_dims(pooled.clone(), [rows, 1, 1, c, h, w]).repeat_dim(2, slots);
            state.buffers[0] = Some(state.filled(padding, replicate));
        }
        self.push(Some(pooled), state)
    }

    fn flush(&self, state: &mut State<B>) -> Option<Tensor<B, 5>> {
        if self.span() == 1 || state.buffers[0].is_none() {
            return None;
        }
        let outputs = (0..self.padding[0])
            .filter_map(|_| self.push(None, state))
            .collect();
        stack_frames(outputs)
    }

    fn save_weights(&self, _weights: &mut Weights, _prefix: &str) {}

    fn load_weights(&mut self, _weights: &mut Weights, _prefix: &str) -> Result<(), WeightError> {
        Ok(())
    }
}

/// Adaptive pooling as torch defines it: output cell `i` covers input rows
/// `floor(i·H/out) .. ceil((i+1)·H/out)` (likewise for columns). Built from slices and
/// reductions, so it is exact on every backend (the wgpu backend's adaptive average pool
/// gave wrong results on lavapipe).
///
/// # Shapes
/// - frames: `[N, C, H, W]`; output: `[N, C, out_h, out_w]`
fn adaptive_pool2d<B: Backend>(
    frames: Tensor<B, 4>,
    output_size: [usize; 2],
    kind: PoolKind,
) -> Tensor<B, 4> {
    let bins = |len: usize, out: usize| -> Vec<(usize, usize)> {
        (0..out)
            .map(|i| (i * len / out, ((i + 1) * len).div_ceil(out)))
            .collect()
    };
    let reduce = |t: Tensor<B, 4>, dim: usize| match kind {
        PoolKind::Avg => t.mean_dim(dim),
        PoolKind::Max => t.max_dim(dim),
    };
    let [_, _, h, w] = frames.dims();
    let rows: Vec<Tensor<B, 4>> = bins(h, output_size[0])
        .into_iter()
        .map(|(r0, r1)| reduce(frames.clone().narrow(2, r0, r1 - r0), 2))
        .collect();
    let rows = Tensor::cat(rows, 2);
    let cells: Vec<Tensor<B, 4>> = bins(w, output_size[1])
        .into_iter()
        .map(|(c0, c1)| reduce(rows.clone().narrow(3, c0, c1 - c0), 3))
        .collect();
    Tensor::cat(cells, 3)
}
