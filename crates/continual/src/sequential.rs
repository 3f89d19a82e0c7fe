//! `Sequential`: modules applied one after the other; a step stops at the first `None`.

use burn::prelude::*;

use crate::error::WeightError;
use crate::fill::TemporalFill;
use crate::layer::{container_module, CoLayer};
use crate::module::{concat_clips, CoModule};
use crate::state::State;
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

/// Modules applied in order (`co.Sequential`). Children are named as in PyTorch: by index
/// (`0`, `1`, …) or by the names of an `OrderedDict`.
#[derive(Debug, Clone)]
pub struct Sequential<B: Backend> {
    /// The modules, in order.
    pub layers: Vec<CoLayer<B>>,
    names: Vec<String>,
}

impl<B: Backend> Sequential<B> {
    /// Children named `0`, `1`, … as `co.Sequential(a, b, ...)` names them.
    pub fn new(layers: Vec<CoLayer<B>>) -> Self {
        let names = (0..layers.len()).map(|i| i.to_string()).collect();
        Sequential { layers, names }
    }

    /// Children with the given names, as `co.Sequential(OrderedDict(...))`.
    pub fn named(layers: Vec<(impl Into<String>, CoLayer<B>)>) -> Self {
        let (names, layers) = layers.into_iter().map(|(n, l)| (n.into(), l)).unzip();
        Sequential { layers, names }
    }

    /// The children's names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Prepares the network for streaming inference by folding into each conv's step what
    /// directly follows it, here and in every nested container:
    /// - a BatchNorm of as many channels, into the weights the conv steps with;
    /// - then an activation, which the conv's steps apply to their outputs (on flex, a
    ///   pointwise conv's ReLU in the pass that computes them).
    ///
    /// Steps then skip the folded layers: one pass over each frame fewer per layer (X3D has
    /// a BatchNorm after nearly every conv, and a ReLU or SiLU after most). Values change only
    /// by rounding.
    ///
    /// Only steps ([`CoModule::forward_step`], [`CoModule::flush`]) change: the offline
    /// [`CoModule::forward`], the parameters and the saved weights do not. Loading weights
    /// undoes the fold; fold again after it, and after training changes the parameters.
    pub fn fold_into_convs(&mut self) {
        for index in 0..self.layers.len() {
            let (head, tail) = self.layers.split_at_mut(index + 1);
            if let Some(CoLayer::Conv(conv)) = head.last_mut() {
                let mut next = tail.iter_mut().peekable();
                if let Some(CoLayer::BatchNorm(norm)) = next.peek_mut() {
                    // The conv folds from its own parameters, so folding again replaces its
                    // folded copy rather than scaling it twice. A BatchNorm that does not
                    // fold stays between the conv and whatever follows it.
                    if conv.out_channels() != norm.channels() {
                        continue;
                    }
                    let (scale, shift) = norm.take_for_folding();
                    conv.fold_affine(scale, shift);
                    next.next();
                }
                if let Some(CoLayer::Activation(activation)) = next.next() {
                    conv.fuse_activation(activation.take_for_fusing());
                }
            }
            if let Some(layer) = head.last_mut() {
                layer.fold_into_convs();
            }
        }
    }
}

container_module!(Sequential, layers);

impl<B: Backend> CoModule<B> for Sequential<B> {
    fn timing(&self) -> Timing {
        let timings: Vec<Timing> = self.layers.iter().map(CoModule::timing).collect();
        Timing::sequence(&timings)
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        let children = self
            .layers
            .iter()
            .map(|l| l.init_state(rows, fill, device))
            .collect();
        State::new(
            format!("sequential({})", self.layers.len()),
            0,
            rows,
            fill,
            children,
            device,
        )
    }

    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        self.layers.iter().fold(clip, |x, layer| layer.forward(x))
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        state.advance();
        let mut x = frame;
        for (layer, child) in self.layers.iter().zip(state.children.iter_mut()) {
            x = layer.forward_step(x, child)?;
        }
        Some(x)
    }

    fn flush(&self, state: &mut State<B>) -> Option<Tensor<B, 5>> {
        // Each layer flushes its own end padding; what it emits feeds the next layer, which
        // then flushes in turn (the end padding of a layer is its own, not its input's).
        let mut pending: Option<Tensor<B, 5>> = None;
        for (layer, child) in self.layers.iter().zip(state.children.iter_mut()) {
            let stepped = pending.and_then(|clip| layer.forward_steps(clip, child, false));
            pending = concat_clips(stepped, layer.flush(child));
        }
        pending
    }

    fn save_weights(&self, weights: &mut Weights, prefix: &str) {
        for (layer, name) in self.layers.iter().zip(&self.names) {
            layer.save_weights(weights, &join_key(prefix, name));
        }
    }

    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        for (layer, name) in self.layers.iter_mut().zip(&self.names) {
            layer.load_weights(weights, &join_key(prefix, name))?;
        }
        Ok(())
    }
}
