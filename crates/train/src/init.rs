//! The initialisation training starts from: He's normal initialisation (variance 2/fan-in,
//! which keeps the signal's scale through ReLUs) for every convolution and linear layer,
//! instead of PyTorch's default uniform one (variance 1/(3·fan-in)), which shrinks the signal
//! by about √3 per layer where BatchNorm does not restore it (the pointwise `lin_5` and the
//! projection of the head).

use burn::prelude::*;
use costream_continual::{load_checkpoint, Sequential, Weights};
use costream_models::x3d::save_x3d;
use costream_synth::rng::SplitMix64;

/// Re-initialises `network` (an X3D from `X3dConfig::build`) as described above, from `seed`.
///
/// # Errors
/// A message if the re-initialised weights do not load back (a bug).
pub fn training_init<B: Backend>(network: &mut Sequential<B>, seed: u64) -> Result<(), String> {
    let mut rng = SplitMix64::new(seed);
    let mut weights = Weights::new();
    for (key, tensor) in save_x3d(network).iter() {
        let mut tensor = tensor.clone();
        let is_weight = key.ends_with(".weight");
        if is_weight && tensor.shape.len() >= 2 {
            // Conv: [out, in/groups, k…]; linear: [out, in].
            let fan_in: usize = tensor.shape[1..].iter().product();
            let std = (2.0 / fan_in as f64).sqrt();
            for v in &mut tensor.values {
                *v = (std * rng.normal()) as f32;
            }
        }
        weights.insert(key, tensor);
    }
    let weights = weights.flattened().map_err(|e| e.to_string())?;
    load_checkpoint(network, weights).map_err(|e| e.to_string())
}
