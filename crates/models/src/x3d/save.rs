//! Writing an X3D network as a checkpoint in PySlowFast's layout, which [`super::load_x3d`]
//! reads back (and PySlowFast's `X3D` loads).

use burn::prelude::*;
use costream_continual::{save_checkpoint, Sequential, Weights};

/// The network's tensors under PySlowFast's key names (`s1.pathway0_stem.conv_xy.weight`,
/// `s2.pathway0_res0.branch2.a_bn.running_var`, `head.projection.weight`, …): the module
/// names with their numeric container levels dropped ([`Weights::flattened`]). BatchNorm is
/// written so that it folds back to the network's scale and shift (see `BatchNorm`'s `save`).
///
/// # Panics
/// If two tensors share a flat name, which the X3D builder never produces.
pub fn save_x3d<B: Backend>(network: &Sequential<B>) -> Weights {
    save_checkpoint(network)
        .flattened()
        .unwrap_or_else(|e| panic!("{e}: the X3D builder made this collision, a bug"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x3d::{load_x3d, X3dConfig, X3dNaming};
    use costream_backend::Cpu;
    use costream_continual::{load_checkpoint, CoModule, WeightTensor};
    use costream_testkit::{max_abs_diff, values};

    type B = Cpu;

    #[test]
    fn saved_networks_load_back_as_pyslowfast_checkpoints() {
        let device = Default::default();
        let config = X3dConfig::synthetic_actions().with_image_size(16);
        B::seed(&device, 5);
        let mut original = config.build::<B>(&device).unwrap();
        // Uneven BatchNorms, so that their round trip is exercised.
        let mut weights = save_x3d(&original);
        let keys: Vec<String> = weights.iter().map(|(k, _)| k.to_string()).collect();
        for (i, key) in keys.iter().enumerate().filter(|(_, k)| k.contains("bn.")) {
            let n = weights
                .iter()
                .find(|(k, _)| k == key)
                .unwrap()
                .1
                .values
                .len();
            let values = (0..n)
                .map(|j| 0.6 + ((i * 7 + j * 3) % 10) as f32 / 10.0)
                .collect();
            weights.insert(
                key.clone(),
                WeightTensor {
                    shape: vec![n],
                    values,
                },
            );
        }
        load_checkpoint(&mut original, weights.flattened().unwrap()).unwrap();

        let saved = save_x3d(&original);
        assert!(saved.contains("s1.pathway0_stem.conv_xy.weight"));
        assert!(saved.contains("s2.pathway0_res0.branch2.a_bn.running_var"));
        assert!(saved.contains("head.projection.weight"));
        let dir = std::env::temp_dir().join(format!("costream-save-x3d-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x3d.safetensors");
        std::fs::write(&path, saved.to_safetensors(None).unwrap()).unwrap();
        B::seed(&device, 6);
        let loaded = load_x3d::<B>(&config, &path, &device).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(loaded.naming, X3dNaming::PySlowFast);

        let clip = Tensor::<B, 5>::random(
            [2, 3, 10, 16, 16],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let expected = values(original.forward(clip.clone()));
        let found = values(loaded.network.forward(clip));
        assert!(max_abs_diff(&expected, &found) < 1e-5);
    }
}
