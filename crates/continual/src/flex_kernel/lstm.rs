//! An LSTM cell's gates and state update in one vectorised pass on flex.
//!
//! With burn's ops the update is a dozen passes over `[rows, hidden]` views of the gate
//! sums (each gate a strided slice, which flex's element-wise ops take on their slow path:
//! 10 ms of a 1,024-stream Silero VAD step). Here each value's four gates, its cell and its
//! output are computed in registers, with the vectorisable exponential of
//! [`super::activation`].

use burn::prelude::*;
use burn::tensor::DType;

use super::activation::{exp, Logistic};
use super::{flex_from_values, from_flex, is_flex, to_flex};

/// The new hidden and cell states from the gate sums `W_ih x + b_ih + W_hh h + b_hh` (gates
/// in torch's order: input, forget, cell, output) and the cell state; `None` when `B` is not
/// flex, a tensor is not `f32` or the shapes disagree.
///
/// # Shapes
/// - gates: `[rows, 4 · hidden]`; cell: `[rows, hidden]`
/// - output: `([rows, hidden], [rows, hidden])`
pub(crate) fn lstm_update<B: Backend>(
    gates: &Tensor<B, 2>,
    cell: &Tensor<B, 2>,
) -> Option<(Tensor<B, 2>, Tensor<B, 2>)> {
    let [rows, width] = gates.dims();
    let hidden = cell.dims()[1];
    let fits = cell.dims()[0] == rows && width == 4 * hidden;
    if !is_flex::<B>() || gates.dtype() != DType::F32 || cell.dtype() != DType::F32 || !fits {
        return None;
    }
    let gates = to_flex(gates.clone())?;
    let gates = gates.as_slice::<f32>()?;
    let cell = to_flex(cell.clone())?;
    let cell = cell.as_slice::<f32>()?;
    let mut new_hidden = vec![0.0f32; rows * hidden];
    let mut new_cell = vec![0.0f32; rows * hidden];
    pulp::Arch::new().dispatch(Update {
        hidden,
        gates,
        cell,
        new_hidden: &mut new_hidden,
        new_cell: &mut new_cell,
    });
    Some((
        from_flex(flex_from_values(new_hidden, vec![rows, hidden]))?,
        from_flex(flex_from_values(new_cell, vec![rows, hidden]))?,
    ))
}

/// The arguments of one dispatched pass (see `depthwise_step::Dispatched`).
struct Update<'a> {
    hidden: usize,
    gates: &'a [f32],
    cell: &'a [f32],
    new_hidden: &'a mut [f32],
    new_cell: &'a mut [f32],
}

impl pulp::WithSimd for Update<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let h = self.hidden;
        let rows = self
            .gates
            .chunks_exact(4 * h)
            .zip(self.cell.chunks_exact(h))
            .zip(self.new_hidden.chunks_exact_mut(h))
            .zip(self.new_cell.chunks_exact_mut(h));
        for (((gates, cell), new_hidden), new_cell) in rows {
            let (input, rest) = gates.split_at(h);
            let (forget, rest) = rest.split_at(h);
            let (candidate, output) = rest.split_at(h);
            for j in 0..h {
                let c = sigmoid(forget[j]) * cell[j] + sigmoid(input[j]) * tanh(candidate[j]);
                new_cell[j] = c;
                new_hidden[j] = sigmoid(output[j]) * tanh(c);
            }
        }
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    Logistic::Sigmoid.apply(x)
}

/// `1 − 2 / (1 + e^{2x})`: ±1 where the exponential saturates, NaN for NaN; within 2e-7 of
/// libm's `tanh` (absolute).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex_kernel::test_values;
    use burn_flex::Flex;

    #[test]
    fn tanh_is_within_float_precision_of_libm() {
        let mut x = -30.0f32;
        while x < 30.0 {
            assert!((tanh(x) - x.tanh()).abs() <= 3e-7, "tanh({x})");
            x += 0.0071;
        }
        assert!(tanh(f32::NAN).is_nan());
        assert_eq!(tanh(1e30), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
    }

    #[test]
    fn equals_the_update_written_with_burns_ops() {
        let (rows, hidden) = (7, 12);
        let device = Default::default();
        let gates = Tensor::<Flex, 2>::from_data(
            TensorData::new(
                test_values(rows * 4 * hidden, 1)
                    .iter()
                    .map(|v| v * 4.0)
                    .collect(),
                [rows, 4 * hidden],
            ),
            &device,
        );
        let cell = Tensor::<Flex, 2>::from_data(
            TensorData::new(test_values(rows * hidden, 2), [rows, hidden]),
            &device,
        );
        let (h, c) = lstm_update(&gates, &cell).unwrap();
        let gate = |i: usize| gates.clone().narrow(1, i * hidden, hidden);
        let sig = burn::tensor::activation::sigmoid;
        let want_c = sig(gate(1)) * cell + sig(gate(0)) * gate(2).tanh();
        let want_h = sig(gate(3)) * want_c.clone().tanh();
        let diff =
            |a: Tensor<Flex, 2>, b: Tensor<Flex, 2>| -> f32 { (a - b).abs().max().into_scalar() };
        assert!(diff(c, want_c) < 1e-6);
        assert!(diff(h, want_h) < 1e-6);
    }
}
