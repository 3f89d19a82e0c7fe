//! Adam (Kingma & Ba, 2015) applied to any burn module's float parameters through a
//! `ModuleMapper`: costream's Co containers hold closures (`Lambda`) that cannot move between
//! backends, so they are not `AutodiffModule`s and burn's optimizers cannot take them; a
//! mapper updates parameters in place of the module's own conversion.

use std::collections::HashMap;

use burn::module::{ModuleMapper, Param, ParamId};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Adam's hyper-parameters and its per-parameter moments.
#[derive(Debug)]
pub struct Adam<B: AutodiffBackend> {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub epsilon: f64,
    /// Decoupled weight decay (AdamW) per unit of learning rate.
    pub weight_decay: f64,
    steps: i32,
    moments: HashMap<ParamId, [Tensor<B::InnerBackend, 1>; 2]>,
}

impl<B: AutodiffBackend> Default for Adam<B> {
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            steps: 0,
            moments: HashMap::new(),
        }
    }
}

impl<B: AutodiffBackend> Adam<B> {
    /// One update of every parameter of `module` that has a gradient in `grads`, at learning
    /// rate `lr`; the returned module's parameters are fresh leaves of the autodiff graph.
    pub fn step<M: Module<B>>(&mut self, module: M, grads: &B::Gradients, lr: f64) -> M {
        self.steps += 1;
        let mut update = Update {
            adam: self,
            grads,
            lr,
        };
        module.map(&mut update)
    }
}

struct Update<'a, B: AutodiffBackend> {
    adam: &'a mut Adam<B>,
    grads: &'a B::Gradients,
    lr: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Update<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = tensor.grad(self.grads) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let adam = &mut *self.adam;
        let shape = grad.shape();
        let n = shape.num_elements();
        let grad: Tensor<B::InnerBackend, 1> = grad.reshape([n]);
        let [m, v] = adam
            .moments
            .remove(&id)
            .unwrap_or_else(|| [grad.zeros_like(), grad.zeros_like()]);
        let m = m * adam.beta1 + grad.clone() * (1.0 - adam.beta1);
        let v = v * adam.beta2 + grad.powi_scalar(2) * (1.0 - adam.beta2);
        let m_hat = m.clone() / (1.0 - adam.beta1.powi(adam.steps));
        let v_hat = v.clone() / (1.0 - adam.beta2.powi(adam.steps));
        let delta = (m_hat / (v_hat.sqrt() + adam.epsilon)).reshape(shape) * self.lr;
        adam.moments.insert(id, [m, v]);
        let value = tensor.inner();
        let decayed = value.clone() - value * (self.lr * adam.weight_decay);
        let updated = Tensor::from_inner(decayed - delta).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use costream_backend::Cpu;
    use costream_continual::{CoModule, LinearConfig};

    type B = Autodiff<Cpu>;

    #[test]
    fn fits_a_linear_map() {
        // y = 2·x0 − x1 + 0.5, learned by a 2→1 linear layer from a fixed set of points.
        let device = Default::default();
        B::seed(&device, 1);
        let mut layer = LinearConfig::new([2, 1]).init::<B>(&device);
        let xs = [
            [0.0f32, 1.0],
            [1.0, 0.0],
            [1.0, 1.0],
            [-1.0, 2.0],
            [0.5, -0.5],
        ];
        let input: Vec<f32> = xs.iter().flatten().copied().collect();
        let target: Vec<f32> = xs.iter().map(|x| 2.0 * x[0] - x[1] + 0.5).collect();
        let x = Tensor::<B, 4>::from_data(TensorData::new(input, [5, 2, 1, 1]), &device);
        let y = Tensor::<B, 4>::from_data(TensorData::new(target, [5, 1, 1, 1]), &device);
        let mut adam = Adam::default();
        let loss_of = |layer: &costream_continual::Linear<B>| {
            let out = layer
                .forward(x.clone().unsqueeze_dim::<5>(2))
                .squeeze_dim::<4>(2);
            (out - y.clone()).powi_scalar(2).mean()
        };
        let first: f32 = loss_of(&layer).into_scalar();
        for _ in 0..500 {
            let grads = loss_of(&layer).backward();
            layer = adam.step(layer, &grads, 0.05);
        }
        let last: f32 = loss_of(&layer).into_scalar();
        assert!(first > 0.5 && last < 1e-4, "loss {first} → {last}");
    }
}
