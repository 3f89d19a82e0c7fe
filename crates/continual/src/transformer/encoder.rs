//! The continual transformer encoder: a stack of encoder layers over a sliding window of the
//! last `N` tokens, stepped one token at a time.
//!
//! # What a step computes
//! A step takes one token and, once `N` tokens have arrived, returns what the offline encoder
//! (`torch.nn.TransformerEncoder`) gives on the window of the last `N` tokens: the last
//! token's output ([`EncoderOutput::Last`]) or every token's ([`EncoderOutput::Window`]).
//! Offline, [`CoModule::forward`] runs the encoder on every window of the clip, so step `t`
//! equals offline position `t − (N − 1)`: receptive field `N`, delay `N − 1`, no padding.
//!
//! # Algorithm and cost per step
//! With `d` features, `f` feed-forward width, `L` layers (`h` heads change only constants):
//! - `L = 1`, last output: **single-output** attention. The state keeps the window's keys and
//!   values in rings (`ring.rs`: the newest token overwrites the oldest in place; the
//!   query's softmax does not depend on the keys' order); a step projects the new token,
//!   attends with its query only, and runs the rest of the layer for that token:
//!   `O(d² + N·d + d·f)` (the window costs `O(N·d² + N²·d + N·d·f)`).
//! - Otherwise the first layer is **retroactive** ([`super::retroactive`]): every query's
//!   softmax sums are updated in `O(N·d)`, then its out-projection and feed-forward block run
//!   on the `N` updated tokens, `O(N·d² + N·d·f)`. Its outputs change for every token of the
//!   window, so layers `2 … L−1` are recomputed on the window, `O(N·d² + N²·d + N·d·f)` each,
//!   and the last layer needs only the last query (with `Last`): `O(N·d² + d·f)`. Deeper
//!   encoders therefore save less; the first layer's `N²` term and the last layer's work on
//!   `N − 1` tokens are what a step saves.
//!
//! The temporal fill does not matter: nothing is emitted before the window holds `N` real
//! tokens.
//!
//! # Keys
//! `torch.nn.TransformerEncoder` names: `layers.{i}.self_attn.*`, `layers.{i}.linear1.*`, …,
//! and `norm.*` for the optional final LayerNorm; [`super::reference_key`] maps
//! continual-inference's names onto them.

use burn::module::{
    Devices, EmptyRecord, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
};
use burn::prelude::*;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::module::CoModule;
use crate::norm::{LayerNorm, NormConfig};
use crate::per_frame::FrameOp;
use crate::state::{contiguous, index_tensor, State};
use crate::timing::Timing;
use crate::transformer::attention::{attend_one_query, Projected};
use crate::transformer::keys::reference_key;
use crate::transformer::layer::{on_tokens, EncoderLayer, EncoderLayerConfig};
use crate::transformer::retroactive::RetroactiveSums;
use crate::transformer::ring;
use crate::transformer::window::{from_buffer, slide, to_buffer};
use crate::weights::{join_key, Weights};

/// Which outputs a step returns.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum EncoderOutput {
    /// The newest token's output: frames `[batch, d, 1, 1]`.
    Last,
    /// Every token of the window, oldest first: frames `[batch, d, N, 1]`.
    Window,
}

/// Configuration of a [`TransformerEncoder`].
#[derive(Config, Debug)]
pub struct TransformerEncoderConfig {
    /// The layers' sizes and options (all layers alike).
    pub layer: EncoderLayerConfig,
    /// Number of layers (1 or more).
    pub layers: usize,
    /// Tokens in the window, `N`.
    pub sequence_len: usize,
    /// Which outputs a step returns.
    #[config(default = "EncoderOutput::Last")]
    pub output: EncoderOutput,
    /// A final LayerNorm after the last layer (`torch.nn.TransformerEncoder(norm=…)`).
    #[config(default = false)]
    pub final_norm: bool,
}

impl TransformerEncoderConfig {
    /// Builds the encoder with random weights (replaced when weights are loaded).
    ///
    /// # Errors
    /// If a size is 0 or a layer cannot be built.
    pub fn init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<TransformerEncoder<B>, ConfigError> {
        if self.layers == 0 || self.sequence_len == 0 {
            return Err(ConfigError::new(
                "TransformerEncoder",
                format!(
                    "layers {} and sequence_len {} must be at least 1",
                    self.layers, self.sequence_len
                ),
            ));
        }
        let layers = (0..self.layers)
            .map(|_| self.layer.init(device))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TransformerEncoder {
            layers,
            norm: self.final_norm.then(|| {
                NormConfig::new(self.layer.d_model)
                    .with_epsilon(self.layer.layer_norm_eps)
                    .init_layer_norm(device)
            }),
            sequence_len: self.sequence_len,
            output: self.output,
        })
    }
}

/// A continual transformer encoder; see the module documentation.
#[derive(Debug, Clone)]
pub struct TransformerEncoder<B: Backend> {
    layers: Vec<EncoderLayer<B>>,
    norm: Option<LayerNorm<B>>,
    sequence_len: usize,
    output: EncoderOutput,
}

/// Where a stream's window stands when a token arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowPhase {
    /// Fewer than `N - 1` tokens so far: the window is not full after this one.
    Filling,
    /// This token fills the window: the sums are computed exactly.
    Completing,
    /// The window was full: it slides by one token.
    Sliding,
}

/// State buffers of the single-output form: the window's keys and values, as rings.
const SINGLE_BUFFERS: usize = 2;
/// State buffers of the retroactive form: inputs, queries, keys, values and the sums.
const RETRO_BUFFERS: usize = 8;

impl<B: Backend> TransformerEncoder<B> {
    /// Tokens in the window, `N`.
    pub fn sequence_len(&self) -> usize {
        self.sequence_len
    }

    /// Features per token.
    pub fn d_model(&self) -> usize {
        self.layers[0].self_attn.d_model()
    }

    /// Whether steps use the single-output form (one layer, last output).
    fn single_output(&self) -> bool {
        self.layers.len() == 1 && self.output == EncoderOutput::Last
    }

    /// The offline encoder over one batch of windows.
    ///
    /// # Shapes
    /// - windows: `[batch, N, d]`; output `[batch, 1, d]` (`Last`) or `[batch, N, d]`
    pub fn forward_window(&self, windows: Tensor<B, 3>) -> Tensor<B, 3> {
        let last = self.layers.len() - 1;
        let mut x = windows;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward_window(x, i == last && self.output == EncoderOutput::Last);
        }
        self.final_norm(x)
    }

    fn final_norm(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.norm {
            Some(norm) => on_tokens(norm, tokens),
            None => tokens,
        }
    }

    /// A token frame as tokens.
    ///
    /// # Shapes
    /// - frame: `[rows, d, 1, 1]`; output `[rows, 1, d]`
    fn token(&self, frame: Tensor<B, 4>) -> Tensor<B, 3> {
        let [rows, d, h, w] = frame.dims();
        assert!(
            d == self.d_model() && h * w == 1,
            "transformer frames are [rows, {}, 1, 1], got {:?}: callers validate inputs",
            self.d_model(),
            [rows, d, h, w]
        );
        frame.reshape([rows, 1, d])
    }

    /// Encoder outputs as a step's frame.
    ///
    /// # Shapes
    /// - tokens: `[rows, n, d]`; output `[rows, d, n, 1]`
    fn frame(tokens: Tensor<B, 3>) -> Tensor<B, 4> {
        let [rows, n, d] = tokens.dims();
        contiguous(tokens.swap_dims(1, 2)).reshape([rows, d, n, 1])
    }

    /// The single-output step: the newest token's key and value go into the rings (each
    /// `[rows, heads, N, head_dim]`, slot `step mod N`), and its query attends to the whole
    /// ring.
    fn step_single(&self, token: Tensor<B, 3>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let layer = &self.layers[0];
        let newest = layer
            .self_attn
            .project(layer.attention_input(token.clone()));
        let slots = ring::slots(state, self.sequence_len);
        let keys = self.window_buffer(state, 0, &newest.k);
        let values = self.window_buffer(state, 1, &newest.v);
        let keys = ring::write_slots(keys, newest.k, 2, &slots);
        let values = ring::write_slots(values, newest.v, 2, &slots);
        state.buffers[0] = Some(to_buffer(keys.clone()));
        state.buffers[1] = Some(to_buffer(values.clone()));
        let filling = self.phase(state) == WindowPhase::Filling;
        state.advance();
        if filling {
            return None;
        }
        let attended = layer
            .self_attn
            .merge(attend_one_query(newest.q, keys, values));
        Some(Self::frame(self.final_norm(layer.finish(token, attended))))
    }

    /// Buffer `index` of `state`, taken out of it (so that the step may update it in place),
    /// as a window; zeros (shaped like `like`'s tokens) before the first step.
    fn window_buffer(
        &self,
        state: &mut State<B>,
        index: usize,
        like: &Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        match state.buffers[index].take() {
            Some(buffer) => from_buffer(buffer),
            None => {
                let [rows, groups, _, c] = like.dims();
                Tensor::zeros([rows, groups, self.sequence_len, c], &like.device())
            }
        }
    }

    fn step_retroactive(&self, token: Tensor<B, 3>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let layer = &self.layers[0];
        let newest = layer
            .self_attn
            .project(layer.attention_input(token.clone()));
        let phase = self.phase(state);
        let inputs = self.window_buffer(state, 0, &token.clone().unsqueeze_dim(1));
        let inputs = slide(inputs, token.unsqueeze_dim(1));
        state.buffers[0] = Some(to_buffer(inputs.clone()));
        let sums = match phase {
            WindowPhase::Filling | WindowPhase::Completing => {
                let [q, k, v] = [1, 2, 3].map(|i| self.window_buffer(state, i, &newest.q));
                let window = Projected {
                    q: slide(q, newest.q),
                    k: slide(k, newest.k),
                    v: slide(v, newest.v),
                };
                if phase == WindowPhase::Filling {
                    for (i, t) in [window.q, window.k, window.v].into_iter().enumerate() {
                        state.buffers[1 + i] = Some(to_buffer(t));
                    }
                    state.advance();
                    return None;
                }
                RetroactiveSums::exact(window)
            }
            WindowPhase::Sliding => self.stored_sums(state).step(newest),
        };
        self.store_sums(state, &sums);
        state.advance();
        let [rows, _, n, d] = inputs.dims();
        let inputs = inputs.reshape([rows, n, d]);
        let mut x = layer.finish(inputs, layer.self_attn.merge(sums.outputs()));
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate().skip(1) {
            x = layer.forward_window(x, i == last && self.output == EncoderOutput::Last);
        }
        Some(Self::frame(self.final_norm(x)))
    }

    /// Where the streams' windows stand before this input.
    fn phase(&self, state: &State<B>) -> WindowPhase {
        let n = self.sequence_len as u64;
        if state.row_decision(|s| s + 1 < n) {
            WindowPhase::Filling
        } else if state.row_decision(|s| s + 1 == n) {
            WindowPhase::Completing
        } else {
            WindowPhase::Sliding
        }
    }

    /// The sums of a full window, taken out of `state` (so that the step may update them in
    /// place; [`Self::store_sums`] puts them back).
    fn stored_sums(&self, state: &mut State<B>) -> RetroactiveSums<B> {
        let mut get = |i: usize| {
            from_buffer(
                state.buffers[i]
                    .take()
                    .expect("a full window has every buffer: this is a bug"),
            )
        };
        RetroactiveSums {
            q: get(1),
            k: get(2),
            v: get(3),
            max: get(4),
            den: get(5),
            num: get(6),
            peak: get(7),
        }
    }

    fn store_sums(&self, state: &mut State<B>, sums: &RetroactiveSums<B>) {
        let parts = [
            &sums.q, &sums.k, &sums.v, &sums.max, &sums.den, &sums.num, &sums.peak,
        ];
        for (i, t) in parts.into_iter().enumerate() {
            state.buffers[1 + i] = Some(to_buffer(t.clone()));
        }
    }
}

impl<B: Backend> CoModule<B> for TransformerEncoder<B> {
    fn timing(&self) -> Timing {
        Timing::primitive(self.sequence_len, 0, 1)
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        let (form, buffers) = if self.single_output() {
            ("single_output_ring", SINGLE_BUFFERS)
        } else {
            ("retroactive", RETRO_BUFFERS)
        };
        let layer = &self.layers[0].self_attn;
        let kind = format!(
            "transformer({form},layers={},n={},d={},heads={})",
            self.layers.len(),
            self.sequence_len,
            layer.d_model(),
            layer.heads()
        );
        State::new(kind, buffers, rows, fill, Vec::new(), device)
    }

    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let [batch, d, time, h, w] = clip.dims();
        let n = self.sequence_len;
        assert!(
            d == self.d_model() && h * w == 1,
            "transformer clips are [batch, {}, time, 1, 1], got {:?}: callers validate inputs",
            self.d_model(),
            [batch, d, time, h, w]
        );
        let out_tokens = if self.output == EncoderOutput::Last {
            1
        } else {
            n
        };
        let device = clip.device();
        if time < n {
            return Tensor::zeros([batch, d, 0, out_tokens, 1], &device);
        }
        let count = time - n + 1;
        // Every window's tokens gathered at once (window-major), not sliced: see `window::slide`.
        let positions: Vec<usize> = (0..count).flat_map(|t| t..t + n).collect();
        let windows = clip
            .reshape([batch, d, time])
            .select(2, index_tensor::<B>(&positions, &device))
            .reshape([batch, d, count, n]);
        let windows = contiguous(windows.permute([2, 0, 3, 1])).reshape([count * batch, n, d]);
        let out = self.forward_window(windows);
        contiguous(
            out.reshape([count, batch, out_tokens, d])
                .permute([1, 3, 0, 2]),
        )
        .reshape([batch, d, count, out_tokens, 1])
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let token = self.token(frame);
        if self.single_output() {
            self.step_single(token, state)
        } else {
            self.step_retroactive(token, state)
        }
    }

    fn flush(&self, _state: &mut State<B>) -> Option<Tensor<B, 5>> {
        None
    }

    /// Takes torch's names, or continual-inference's (mapped by [`reference_key`]).
    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        let inside = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        *weights = std::mem::take(weights).renamed(|key| {
            let local = key.strip_prefix(inside.as_str())?;
            reference_key(local).map(|torch| format!("{inside}{torch}"))
        })?;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.load(weights, &join_key(prefix, &format!("layers.{i}")))?;
        }
        if let Some(norm) = &mut self.norm {
            norm.load(weights, &join_key(prefix, "norm"))?;
        }
        Ok(())
    }

    fn save_weights(&self, weights: &mut Weights, prefix: &str) {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.save(weights, &join_key(prefix, &format!("layers.{i}")));
        }
        if let Some(norm) = &self.norm {
            norm.save(weights, &join_key(prefix, "norm"));
        }
    }
}

// burn `Module` by hand: the layers are a `Vec` (a record could be derived, but the encoder's
// weights are stored by PyTorch names like every Co module's, so its record stays empty).
impl<B: Backend> Module<B> for TransformerEncoder<B> {
    type Record = EmptyRecord;

    fn collect_devices(&self, devices: Devices<B>) -> Devices<B> {
        let devices = self.layers.collect_devices(devices);
        self.norm.collect_devices(devices)
    }

    fn fork(mut self, device: &B::Device) -> Self {
        self.layers = self.layers.fork(device);
        self.norm = self.norm.fork(device);
        self
    }

    fn to_device(mut self, device: &B::Device) -> Self {
        self.layers = self.layers.to_device(device);
        self.norm = self.norm.to_device(device);
        self
    }

    fn visit<V: ModuleVisitor<B>>(&self, visitor: &mut V) {
        self.layers.visit(visitor);
        self.norm.visit(visitor);
    }

    fn map<M: ModuleMapper<B>>(mut self, mapper: &mut M) -> Self {
        self.layers = Module::map(self.layers, mapper);
        self.norm = Module::map(self.norm, mapper);
        self
    }

    fn load_record(self, _record: Self::Record) -> Self {
        self
    }

    fn into_record(self) -> Self::Record {
        EmptyRecord::new()
    }
}

impl<B: Backend> ModuleDisplayDefault for TransformerEncoder<B> {
    fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
        self.layers.content(content)
    }
}

impl<B: Backend> ModuleDisplay for TransformerEncoder<B> {}
