//! Recycling positional encoding (`co.RecyclingPositionalEncoding`): the token at step `t`
//! gets embedding `t mod num_embeds` added, so a stream of any length cycles through a fixed
//! table, and the window ending at step `t` sees positions `t − N + 1 … t` (mod the table).
//!
//! The table is learned (`torch.nn.Embedding`, key `pe.weight`) or fixed: the cyclic
//! positional encoding of Ma et al. (2021) as the reference computes it (key `pe.pattern`,
//! a buffer the reference saves; computed here when a checkpoint lacks it).

use std::f64::consts::PI;

use burn::module::Param;
use burn::nn::Initializer;
use burn::prelude::*;

use crate::error::{ConfigError, WeightError};
use crate::fill::TemporalFill;
use crate::module::CoModule;
use crate::per_frame::eager;
use crate::state::{index_tensor, State};
use crate::timing::Timing;
use crate::weights::{join_key, Weights};

/// Where the table comes from.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum PositionalTable {
    /// Learned embeddings (`pe.weight`).
    Learned,
    /// The fixed cyclic encoding (`pe.pattern`).
    Cyclic,
}

/// Adds a recycled positional embedding to every token; see the module documentation.
#[derive(Module, Debug)]
pub struct RecyclingPositionalEncoding<B: Backend> {
    /// The table, `[num_embeds, d]`.
    pub table: Param<Tensor<B, 2>>,
    #[module(skip)]
    kind: PositionalTable,
}

impl<B: Backend> RecyclingPositionalEncoding<B> {
    /// `num_embeds` positions of `d` features: learned (drawn N(0, 1) as torch's `Embedding`,
    /// replaced when weights are loaded) or the fixed cyclic table.
    ///
    /// # Errors
    /// If `d` or `num_embeds` is 0, or a cyclic table has `d < 2`.
    pub fn new(
        d: usize,
        num_embeds: usize,
        kind: PositionalTable,
        device: &B::Device,
    ) -> Result<Self, ConfigError> {
        if d == 0 || num_embeds == 0 || (kind == PositionalTable::Cyclic && d < 2) {
            return Err(ConfigError::new(
                "RecyclingPositionalEncoding",
                format!("embed_dim {d} and num_embeds {num_embeds} must be positive (embed_dim ≥ 2 for the cyclic table)"),
            ));
        }
        let table = match kind {
            PositionalTable::Learned => eager(
                Initializer::Normal {
                    mean: 0.0,
                    std: 1.0,
                }
                .init([num_embeds, d], device),
            ),
            PositionalTable::Cyclic => {
                let values: Vec<f32> = cyclic_table(num_embeds, d)
                    .into_iter()
                    .map(|v| v as f32)
                    .collect();
                Param::from_tensor(Tensor::from_data(
                    TensorData::new(values, [num_embeds, d]),
                    device,
                ))
            }
        };
        Ok(RecyclingPositionalEncoding { table, kind })
    }

    fn key(&self) -> &'static str {
        match self.kind {
            PositionalTable::Learned => "pe.weight",
            PositionalTable::Cyclic => "pe.pattern",
        }
    }
}

impl<B: Backend> CoModule<B> for RecyclingPositionalEncoding<B> {
    fn timing(&self) -> Timing {
        Timing::PER_FRAME
    }

    fn init_state(&self, rows: usize, fill: TemporalFill, device: &B::Device) -> State<B> {
        let [num, d] = self.table.dims();
        State::new(
            format!("positional(num={num},d={d})"),
            0,
            rows,
            fill,
            Vec::new(),
            device,
        )
    }

    /// Positions `0, 1, …` (mod the table) over the clip.
    fn forward(&self, clip: Tensor<B, 5>) -> Tensor<B, 5> {
        let [_, d, time, h, w] = clip.dims();
        let num = self.table.dims()[0];
        let positions: Vec<usize> = (0..time).map(|t| t % num).collect();
        let added = self
            .table
            .val()
            .select(0, index_tensor::<B>(&positions, &clip.device()))
            .transpose()
            .reshape([1, d, time, 1, 1]);
        clip + added.expand([1, d, time, h, w])
    }

    /// Each stream's own position: streams at different steps get different embeddings.
    fn forward_step(&self, frame: Tensor<B, 4>, state: &mut State<B>) -> Option<Tensor<B, 4>> {
        let [rows, d, h, w] = frame.dims();
        let num = self.table.dims()[0] as u64;
        let positions: Vec<usize> = state.steps().iter().map(|&s| (s % num) as usize).collect();
        let added = self
            .table
            .val()
            .select(0, index_tensor::<B>(&positions, &frame.device()))
            .reshape([rows, d, 1, 1]);
        state.advance();
        Some(frame + added.expand([rows, d, h, w]))
    }

    fn flush(&self, _state: &mut State<B>) -> Option<Tensor<B, 5>> {
        None
    }

    fn load_weights(&mut self, weights: &mut Weights, prefix: &str) -> Result<(), WeightError> {
        let [num, d] = self.table.dims();
        let key = join_key(prefix, self.key());
        if self.kind == PositionalTable::Cyclic && !weights.contains(&key) {
            return Ok(());
        }
        self.table =
            Param::from_tensor(weights.take(&key, &[num, d], [num, d], &self.table.device())?);
        Ok(())
    }

    fn save_weights(&self, weights: &mut Weights, prefix: &str) {
        let [num, d] = self.table.dims();
        weights.put(join_key(prefix, self.key()), self.table.val(), &[num, d]);
    }
}

/// The reference's `CyclicPositionalEncoding` table (`continual/positional_encoding.py`,
/// after Ma et al., appendix B), in f64 with numpy's arithmetic: `linspace` and `arange` as
/// numpy computes them, integer casts truncating, then the mean over positions ±2 minus the
/// table's mean.
///
/// # Shapes
/// - output: `num × d` values, row-major
fn cyclic_table(num: usize, d: usize) -> Vec<f64> {
    let half = d / 2;
    let skip_base = (num as f64).powf(1.0 / half as f64);
    let skip_set: Vec<f64> = linspace(skip_base, num as f64, half)
        .into_iter()
        .map(f64::trunc)
        .collect();
    let mut table = vec![0.0; num * d];
    for i in 0..d {
        let pick = i / 3 * 3 + 1;
        let mut skip = if pick < half {
            skip_set[pick]
        } else {
            skip_set[half - 1]
        };
        let pattern = if num as f64 > skip {
            arange(0.0, ((num as f64) / skip).ceil() * skip + 0.01, 0.01)
        } else {
            skip = num as f64;
            arange(0.0, num as f64 + 0.01, 0.01)
        };
        let last = (pattern.len() - 1) as f64;
        let omega = 2.0 * PI / skip;
        let phase = if i <= half {
            0.0
        } else {
            2.0 * PI * ((half as f64 - i as f64) / half as f64)
        };
        let period = 2.0 * PI / omega;
        for (row, at) in linspace(0.0, last, num + 1)
            .into_iter()
            .take(num)
            .enumerate()
        {
            let x = pattern[at.trunc() as usize];
            let folded = omega * (python_mod(x, 2.0 * period) - period).abs() + phase;
            table[row * d + i] = if i % 2 == 1 {
                folded.cos()
            } else {
                folded.sin()
            };
        }
    }
    let mut column_mean = vec![0.0; d];
    for row in 0..num {
        for i in 0..d {
            column_mean[i] += table[row * d + i] / num as f64;
        }
    }
    let mut pooled = vec![0.0; num * d];
    for row in 0..num {
        for offset in [-2i64, -1, 0, 1, 2] {
            let src = (row as i64 + offset + num as i64).rem_euclid(num as i64) as usize;
            for i in 0..d {
                pooled[row * d + i] += table[src * d + i];
            }
        }
    }
    for row in 0..num {
        for i in 0..d {
            pooled[row * d + i] = 1.0 / 5.0 * pooled[row * d + i] - column_mean[i];
        }
    }
    pooled
}

/// `numpy.linspace(start, stop, n)` (endpoint included, last value exactly `stop`).
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut values: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    values[n - 1] = stop;
    values
}

/// `numpy.arange(start, stop, step)`: `ceil((stop − start) / step)` values `start + i·step`.
fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil().max(0.0) as usize;
    (0..len).map(|i| start + i as f64 * step).collect()
}

/// Python's `%` on floats (`numpy.mod`): the result takes the divisor's sign.
fn python_mod(x: f64, m: f64) -> f64 {
    let r = x % m;
    if r != 0.0 && (r < 0.0) != (m < 0.0) {
        r + m
    } else {
        r
    }
}
