//! Recurrent layers stepped one frame at a time (`co.RNN`, `co.GRU`, `co.LSTM`): the state is
//! each layer's hidden vector (and, for the LSTM, its cell), starting at zeros as torch's
//! default `h_0`. The temporal fill does not apply (there is no window to fill).
//!
//! PyTorch keys per layer `k`: `weight_ih_l{k}` `[gates·hidden, input]`, `weight_hh_l{k}`
//! `[gates·hidden, hidden]`, `bias_ih_l{k}`, `bias_hh_l{k}` `[gates·hidden]`, gates in torch's
//! order (GRU: reset, update, new; LSTM: input, forget, cell, output). Unidirectional only.

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::activation;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::flex_kernel;
use crate::module::CoModule;
use crate::per_frame::eager;
use crate::state::{contiguous, State};
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

/// The recurrent cell.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum RecurrentKind {
    /// Elman RNN with `tanh`: `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`.
    RnnTanh,
    /// Elman RNN with ReLU.
    RnnRelu,
    /// Gated recurrent unit.
    Gru,
    /// Long short-term memory.
    Lstm,
}

impl RecurrentKind {
    fn gates(self) -> usize {
        match self {
            RecurrentKind::RnnTanh | RecurrentKind::RnnRelu => 1,
            RecurrentKind::Gru => 3,
            RecurrentKind::Lstm => 4,
        }
    }
}

/// Configuration of a [`Recurrent`] module.
#[derive(Config, Debug)]
pub struct RecurrentConfig {
    /// The cell.
    pub kind: RecurrentKind,
    /// Features per input frame.
    pub input_size: usize,
    /// Features of the hidden state (and of the output).
    pub hidden_size: usize,
    /// Stacked layers.
    #[config(default = 1)]
    pub layers: usize,
    /// Whether the cells have biases.
    #[config(default = true)]
    pub bias: bool,
}

impl RecurrentConfig {
    /// Builds the module with torch's initialisation, `U(−1/√hidden, 1/√hidden)`.
    ///
    /// # Errors
    /// If a size is 0.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Recurrent<B>, ConfigError> {
        if self.input_size == 0 || self.hidden_size == 0 || self.layers == 0 {
            return Err(ConfigError::new(
                "Recurrent",
                format!(
                    "input_size {}, hidden_size {} and layers {} must be positive",
                    self.input_size, self.hidden_size, self.layers
                ),
            ));
        }
        let width = self.kind.gates() * self.hidden_size;
        let bound = 1.0 / (self.hidden_size as f64).sqrt();
        let init = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        let cells = (0..self.layers)
            .map(|k| {
                let input = if k == 0 {
                    self.input_size
                } else {
                    self.hidden_size
                };
                Cell {
                    w_ih: eager(init.init([input, width], device)),
                    w_hh: eager(init.init([self.hidden_size, width], device)),
                    b_ih: self.bias.then(|| eager(init.init([width], device))),
                    b_hh: self.bias.then(|| eager(init.init([width], device))),
                }
            })
            .collect();
        Ok(Recurrent {
            cells,
            kind: self.kind,
            hidden: self.hidden_size,
        })
    }
}

/// One layer's weights, transposed from PyTorch's layout.
#[derive(Module, Debug)]
pub struct Cell<B: Backend> {
    /// Input weights, `[input, gates·hidden]`.
    pub w_ih: Param<Tensor<B, 2>>,
    /// Recurrent weights, `[hidden, gates·hidden]`.
    pub w_hh: Param<Tensor<B, 2>>,
    /// Input bias, `[gates·hidden]`.
    pub b_ih: Option<Param<Tensor<B, 1>>>,
    /// Recurrent bias, `[gates·hidden]`.
    pub b_hh: Option<Param<Tensor<B, 1>>>,
}

/// A stack of recurrent layers; see the module documentation.
#[derive(Module, Debug)]
pub struct Recurrent<B: Backend> {
    /// The layers, first to last.
    pub cells: Vec<Cell<B>>,
    #[module(skip)]
    kind: RecurrentKind,
    #[module(skip)]
    hidden: usize,
}

fn with_bias<B: Backend>(x: Tensor<B, 2>, bias: &Option<Param<Tensor<B, 1>>>) -> Tensor<B, 2> {
    match bias {
        Some(b) => x + b.val().unsqueeze_dim(0),
        None => x,
    }
}

impl<B: Backend> Recurrent<B> {
    /// One cell update from the input's projection `W_ih x + b_ih` (`[rows, gates·hidden]`),
    /// the hidden state and (LSTM) the cell state, each `[rows, hidden]`.
    fn cell(
        &self,
        cell: &Cell<B>,
        projected: Tensor<B, 2>,
        h: Tensor<B, 2>,
        c: Option<Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, Option<Tensor<B, 2>>) {
        let hidden = self.hidden;
        let recurrent = with_bias(h.clone().matmul(cell.w_hh.val()), &cell.b_hh);
        let gate = |t: &Tensor<B, 2>, i: usize| t.clone().narrow(1, i * hidden, hidden);
        match self.kind {
            RecurrentKind::RnnTanh => ((projected + recurrent).tanh(), None),
            RecurrentKind::RnnRelu => (activation::relu(projected + recurrent), None),
            RecurrentKind::Gru => {
                let reset = activation::sigmoid(gate(&projected, 0) + gate(&recurrent, 0));
                let update = activation::sigmoid(gate(&projected, 1) + gate(&recurrent, 1));
                let new = (gate(&projected, 2) + reset * gate(&recurrent, 2)).tanh();
                let h = new.clone() + update * (h - new);
                (h, None)
            }
            RecurrentKind::Lstm => {
                let sum = projected + recurrent;
                let c = c.expect("an LSTM step has a cell state: this is a bug");
                if let Some((h, c)) = flex_kernel::lstm_update(&sum, &c) {
                    return (h, Some(c));
                }
                let input = activation::sigmoid(gate(&sum, 0));
                let forget = activation::sigmoid(gate(&sum, 1));
                let candidate = gate(&sum, 2).tanh();
                let output = activation::sigmoid(gate(&sum, 3));
                let c = forget * c + input * candidate;
                (output * c.clone().tanh(), Some(c))
            }
        }
    }

    fn input_size(&self) -> usize {
        self.cells[0].w_ih.dims()[0]
    }
}

impl<B: Backend> CoModule<B> for Recurrent<B> {
    fn timing(&self) -> Timing {
        Timing::PER_FRAME
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        let buffers = if self.kind == RecurrentKind::Lstm {
            2
        } else {
            1
        };
        let kind = format!(
            "recurrent({:?},layers={},hidden={})",
            self.kind,
            self.cells.len(),
            self.hidden
        );
        State::new(kind, buffers, rows, fill, Vec::new(), device)
    }

    /// The recurrence over the clip from zero state; each layer projects the whole clip's
    /// inputs at once, then steps through time.
    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let [batch, c, time, h, w] = clip.dims();
        assert!(
            c == self.input_size() && h * w == 1,
            "recurrent clips are [batch, {}, time, 1, 1], got {:?}: callers validate inputs",
            self.input_size(),
            [batch, c, time, h, w]
        );
        let device = clip.device();
        let mut x = clip.reshape([batch, c, time]).swap_dims(1, 2); // [batch, time, features]
        for cell in &self.cells {
            let features = x.dims()[2];
            let width = cell.w_ih.dims()[1];
            let projected = with_bias(
                contiguous(x)
                    .reshape([batch * time, features])
                    .matmul(cell.w_ih.val()),
                &cell.b_ih,
            )
            .reshape([batch, time, width]);
            let mut hidden = Tensor::zeros([batch, self.hidden], &device);
            let mut cell_state = (self.kind == RecurrentKind::Lstm)
                .then(|| Tensor::zeros([batch, self.hidden], &device));
            let mut outputs = Vec::with_capacity(time);
            for t in 0..time {
                let at = projected.clone().narrow(1, t, 1).reshape([batch, width]);
                (hidden, cell_state) = self.cell(cell, at, hidden, cell_state);
                outputs.push(hidden.clone());
            }
            x = Tensor::stack(outputs, 1);
        }
        contiguous(x.swap_dims(1, 2)).reshape([batch, self.hidden, time, 1, 1])
    }

    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let [rows, c, h, w] = frame.dims();
        assert!(
            c == self.input_size() && h * w == 1,
            "recurrent frames are [rows, {}, 1, 1], got {:?}: callers validate inputs",
            self.input_size(),
            [rows, c, h, w]
        );
        let layers = self.cells.len();
        let device = frame.device();
        let load = |buffer: &Option<Tensor<B, 6>>| match buffer {
            Some(b) => b.clone().reshape([rows, layers, self.hidden]),
            None => Tensor::zeros([rows, layers, self.hidden], &device),
        };
        let hidden = load(&state.buffers[0]);
        let cells = (self.kind == RecurrentKind::Lstm).then(|| load(&state.buffers[1]));
        let mut x = frame.reshape([rows, c]);
        let (mut new_hidden, mut new_cells) = (Vec::new(), Vec::new());
        for (k, cell) in self.cells.iter().enumerate() {
            let layer = |t: &Tensor<B, 3>| t.clone().narrow(1, k, 1).reshape([rows, self.hidden]);
            let projected = with_bias(x.matmul(cell.w_ih.val()), &cell.b_ih);
            let (h, c) = self.cell(cell, projected, layer(&hidden), cells.as_ref().map(layer));
            new_hidden.push(h.clone());
            new_cells.extend(c);
            x = h;
        }
        let store = |parts: Vec<Tensor<B, 2>>| {
            Some(Tensor::stack::<3>(parts, 1).reshape([rows, 1, layers, self.hidden, 1, 1]))
        };
        state.buffers[0] = store(new_hidden);
        if cells.is_some() {
            state.buffers[1] = store(new_cells);
        }
        state.advance();
        Some(x.reshape([rows, self.hidden, 1, 1]))
    }

    fn flush(&self, _state: &mut State<B>) -> Option<Tensor<B, 5>> {
        None
    }

    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        for (k, cell) in self.cells.iter_mut().enumerate() {
            let device = cell.w_ih.device();
            let [input, width] = cell.w_ih.dims();
            let hidden = cell.w_hh.dims()[0];
            let w_ih: Tensor<B, 2> = weights.take(
                &join_key(prefix, &format!("weight_ih_l{k}")),
                &[width, input],
                [width, input],
                &device,
            )?;
            let w_hh: Tensor<B, 2> = weights.take(
                &join_key(prefix, &format!("weight_hh_l{k}")),
                &[width, hidden],
                [width, hidden],
                &device,
            )?;
            cell.w_ih = Param::from_tensor(w_ih.transpose());
            cell.w_hh = Param::from_tensor(w_hh.transpose());
            if cell.b_ih.is_some() {
                for (name, bias) in [("bias_ih", &mut cell.b_ih), ("bias_hh", &mut cell.b_hh)] {
                    *bias = Some(Param::from_tensor(weights.take(
                        &join_key(prefix, &format!("{name}_l{k}")),
                        &[width],
                        [width],
                        &device,
                    )?));
                }
            }
        }
        Ok(())
    }

    fn save_weights(&self, weights: &mut Weights, prefix: &str) {
        for (k, cell) in self.cells.iter().enumerate() {
            let [input, width] = cell.w_ih.dims();
            let hidden = cell.w_hh.dims()[0];
            weights.put(
                join_key(prefix, &format!("weight_ih_l{k}")),
                cell.w_ih.val().transpose(),
                &[width, input],
            );
            weights.put(
                join_key(prefix, &format!("weight_hh_l{k}")),
                cell.w_hh.val().transpose(),
                &[width, hidden],
            );
            for (name, bias) in [("bias_ih", &cell.b_ih), ("bias_hh", &cell.b_hh)] {
                if let Some(bias) = bias {
                    weights.put(
                        join_key(prefix, &format!("{name}_l{k}")),
                        bias.val(),
                        &[width],
                    );
                }
            }
        }
    }
}
