//! `BroadcastReduce` (one input to parallel branches, their outputs reduced) and `Residual`.

use burn::prelude::*;

use crate::delay::Delay;
use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::layer::{container_module, CoLayer};
use crate::module::CoModule;
use crate::sequential::Sequential;
use crate::state::State;
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

/// How parallel branch outputs are combined.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Element-wise sum.
    Sum,
    /// Element-wise product.
    Mul,
    /// Concatenation along channels.
    Concat,
}

/// How a [`residual`] lines the input up with a module that shortens the clip offline.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ResidualShrink {
    /// No cropping: the module must keep the clip length (padding = receptive field / 2).
    None,
    /// Crop equally at both ends (the reference's `residual_shrink=True` / `"centered"`).
    Centered,
    /// Crop at the start: the residual is the newest input frame, with no delay when streaming
    /// (the reference's `"leading"`).
    Leading,
    /// Crop at the end: the residual is the oldest frame of the module's window (`"lagging"`).
    Lagging,
}

/// One input broadcast to parallel branches whose outputs are reduced (`co.BroadcastReduce`).
/// Branches are named `0`, `1`, … for weights; an auto-delayed branch `i` becomes
/// `Sequential(branch, Delay)`, so its keys read `i.0.…`, as in the reference.
#[derive(Debug, Clone)]
pub struct BroadcastReduce<B: Backend> {
    /// The branches.
    pub branches: Vec<CoLayer<B>>,
    reduce: Reduce,
}

impl<B: Backend> BroadcastReduce<B> {
    /// Combines `branches` with `reduce`; with `auto_delay`, branches of smaller delay are
    /// followed by a `Delay` so that all emit together.
    ///
    /// # Errors
    /// If there are no branches or their temporal strides differ.
    pub fn new(
        branches: Vec<CoLayer<B>>,
        reduce: Reduce,
        auto_delay: bool,
    ) -> Result<Self, ConfigError> {
        let timings: Vec<Timing> = branches.iter().map(CoModule::timing).collect();
        let Some(first) = timings.first() else {
            return Err(ConfigError::new(
                "BroadcastReduce",
                "needs at least one branch",
            ));
        };
        if timings.iter().any(|t| t.stride != first.stride) {
            let strides: Vec<usize> = timings.iter().map(|t| t.stride).collect();
            return Err(ConfigError::new(
                "BroadcastReduce",
                format!("branches have different strides {strides:?}"),
            ));
        }
        let max_delay = timings.iter().map(|t| t.delay).max().unwrap_or(0);
        let branches = branches
            .into_iter()
            .zip(&timings)
            .map(|(branch, t)| {
                if auto_delay && t.delay < max_delay {
                    let delay = Delay::new((max_delay - t.delay) / t.stride);
                    CoLayer::Sequential(Sequential::new(vec![branch, CoLayer::Delay(delay)]))
                } else {
                    branch
                }
            })
            .collect();
        Ok(BroadcastReduce { branches, reduce })
    }

    fn combine<const D: usize>(&self, outputs: Vec<Tensor<B, D>>) -> Tensor<B, D> {
        match self.reduce {
            Reduce::Concat => Tensor::cat(outputs, 1),
            Reduce::Sum => outputs
                .into_iter()
                .reduce(|a, b| a + b)
                .expect("at least one branch"),
            Reduce::Mul => outputs
                .into_iter()
                .reduce(|a, b| a * b)
                .expect("at least one branch"),
        }
    }
}

container_module!(BroadcastReduce, branches);

impl<B: Backend> CoModule<B> for BroadcastReduce<B> {
    fn timing(&self) -> Timing {
        let timings: Vec<Timing> = self.branches.iter().map(CoModule::timing).collect();
        Timing::parallel(&timings)
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        let children = self
            .branches
            .iter()
            .map(|b| b.init_state(rows, fill, device))
            .collect();
        State::new(
            format!(
                "broadcast_reduce({:?},{})",
                self.reduce,
                self.branches.len()
            ),
            0,
            rows,
            fill,
            children,
            device,
        )
    }

    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let outputs = self
            .branches
            .iter()
            .map(|b| b.forward(clip.clone()))
            .collect();
        self.combine(outputs)
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        state.advance();
        // Every branch consumes the frame, whether or not the others emit.
        let outputs: Vec<Option<Tensor<B, 4>>> = self
            .branches
            .iter()
            .zip(state.children.iter_mut())
            .map(|(branch, child)| branch.forward_step(frame.clone(), child))
            .collect();
        let outputs: Option<Vec<Tensor<B, 4>>> = outputs.into_iter().collect();
        outputs.map(|o| self.combine(o))
    }

    fn flush(&self, state: &mut State<B>) -> Option<Tensor<B, 5>> {
        let outputs: Option<Vec<Tensor<B, 5>>> = self
            .branches
            .iter()
            .zip(state.children.iter_mut())
            .map(|(branch, child)| branch.flush(child))
            .collect();
        let outputs = outputs?;
        // Aligned branches flush equally many frames; keep the common part if not.
        let frames = outputs.iter().map(|o| o.dims()[2]).min()?;
        Some(
            self.combine(
                outputs
                    .into_iter()
                    .map(|o| o.narrow(2, 0, frames))
                    .collect(),
            ),
        )
    }

    fn save_weights(&self, weights: &mut Weights, prefix: &str) {
        for (i, branch) in self.branches.iter().enumerate() {
            branch.save_weights(weights, &join_key(prefix, &i.to_string()));
        }
    }

    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        for (i, branch) in self.branches.iter_mut().enumerate() {
            branch.load_weights(weights, &join_key(prefix, &i.to_string()))?;
        }
        Ok(())
    }
}

/// `module(x) ⊕ x` (`co.Residual`): a [`BroadcastReduce`] of a delayed (and, offline, cropped)
/// input, branch `0`, and `module`, branch `1`.
///
/// With `d` the module's delay and `p` its padding, the module shortens a clip by `d - p`
/// frames; the residual input is cropped by `a` frames at the start and `d - p - a` at the end
/// (`a` = 0, half or all of it, by `shrink`), and delayed by `d - a` frames when streaming.
///
/// # Errors
/// If the module has a temporal stride, if `shrink` is `None` while the module shortens the
/// clip, or `Centered` with an odd shortening.
pub fn residual<B: Backend>(
    module: CoLayer<B>,
    reduce: Reduce,
    shrink: ResidualShrink,
) -> Result<BroadcastReduce<B>, ConfigError> {
    let t = module.timing();
    let err = |reason: String| ConfigError::new("Residual", reason);
    if t.stride != 1 {
        return Err(err(format!(
            "module has temporal stride {}; use BroadcastReduce",
            t.stride
        )));
    }
    let shortening = t.delay as i64 - t.padding;
    if shortening < 0 {
        return Err(err(format!(
            "module lengthens the clip (delay {}, padding {})",
            t.delay, t.padding
        )));
    }
    let c = shortening as usize;
    let a = match shrink {
        _ if c == 0 => 0,
        ResidualShrink::None => {
            return Err(err(format!(
                "module shortens the clip by {c} frames; choose a residual shrink mode"
            )))
        }
        ResidualShrink::Lagging => 0,
        ResidualShrink::Leading => c,
        ResidualShrink::Centered if !c.is_multiple_of(2) => {
            return Err(err(format!(
                "centered shrink needs an even shortening, got {c}"
            )))
        }
        ResidualShrink::Centered => c / 2,
    };
    let skip = Delay::cropped(t.delay - a, a, c - a)?;
    BroadcastReduce::new(vec![CoLayer::Delay(skip), module], reduce, false)
}
