//! Property tests of the CoX3D network over random small configurations:
//!
//! - without squeeze-excitation, `forward_steps(pad_end)` equals the offline `forward`,
//!   with the BatchNorms (random ones) and activations folded into the convs' steps or not;
//! - with or without it, a batch of N streams stepped together equals the N streams
//!   stepped alone (zero or replicate fill).
#![allow(clippy::unwrap_used)]

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use costream_backend::TestBackend;
use costream_continual::{CoLayer, CoModule, Sequential, TemporalFill};
use costream_models::x3d::{ShortcutNorm, X3dConfig};

use crate::properties::{
    assert_batch_equals_rows_alone, assert_flushed_steps_equal_offline, proptest_config,
};
use proptest::prelude::*;

type B = TestBackend;

/// A small X3D: `stages` of `[blocks, channels, stride]`, square `image` input.
fn config(
    width: usize,
    stages: Vec<[usize; 3]>,
    image: usize,
    window: usize,
    se_ratio: f64,
    shortcut_norm: ShortcutNorm,
) -> X3dConfig {
    X3dConfig {
        dim_in: 3,
        image_size: image,
        pool_window: window,
        num_classes: 3,
        conv1_dim: width,
        conv5_dim: 8,
        width_factor: 1.0,
        depth_factor: 1.0,
        bottleneck_factor: 1.5,
        se_ratio,
        block_basis: stages,
        shortcut_norm,
    }
}

fn stages() -> impl Strategy<Value = Vec<[usize; 3]>> {
    prop::collection::vec((1usize..=2, 1usize..=2, 1usize..=2), 1..=2).prop_map(|stages| {
        stages
            .into_iter()
            .enumerate()
            .map(|(i, (blocks, mult, stride))| [blocks, 8 * mult * (i + 1), stride])
            .collect()
    })
}

fn shortcut_norm() -> impl Strategy<Value = ShortcutNorm> {
    prop_oneof![Just(ShortcutNorm::Always), Just(ShortcutNorm::WhenWidening)]
}

/// Gives every BatchNorm in `layers` a random scale and shift (they start as the identity).
fn randomise_batch_norms(layers: &mut [CoLayer<B>], device: &Device<B>) {
    for layer in layers {
        match layer {
            CoLayer::BatchNorm(norm) => {
                let c = norm.scale.dims()[0];
                let uniform =
                    |low, high| Tensor::random([c], Distribution::Uniform(low, high), device);
                norm.scale = Param::from_tensor(uniform(0.5, 1.5));
                norm.shift = Param::from_tensor(uniform(-0.5, 0.5));
            }
            CoLayer::Sequential(sequential) => {
                randomise_batch_norms(&mut sequential.layers, device)
            }
            CoLayer::BroadcastReduce(broadcast) => {
                randomise_batch_norms(&mut broadcast.branches, device)
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(proptest_config(16))]

    #[test]
    fn without_se_streaming_with_flush_equals_offline(
        width in prop_oneof![Just(4usize), Just(8)],
        stages in stages(),
        image in prop_oneof![Just(8usize), Just(12), Just(16)],
        window in 1usize..=3,
        extra in 0usize..=4,
        rows in 1usize..=2,
        norm in shortcut_norm(),
        fold in any::<bool>(),
    ) {
        let device = Default::default();
        let mut network: Sequential<B> =
            config(width, stages, image, window, 0.0, norm).build(&device).unwrap();
        randomise_batch_norms(&mut network.layers, &device);
        if fold {
            network.fold_into_convs();
        }
        let clip = Tensor::<B, 5>::random(
            [rows, 3, window + extra, image, image],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        assert_flushed_steps_equal_offline(&network, clip, &device);
    }

    #[test]
    fn a_batch_equals_its_streams_alone(
        stages in stages(),
        image in prop_oneof![Just(8usize), Just(16)],
        window in 1usize..=3,
        frames in 1usize..=8,
        rows in 2usize..=3,
        se in prop_oneof![Just(0.0f64), Just(0.25)],
        replicate in any::<bool>(),
    ) {
        let device = Default::default();
        let network = config(8, stages, image, window, se, ShortcutNorm::Always)
            .build::<B>(&device)
            .unwrap();
        let fill = if replicate { TemporalFill::Replicate } else { TemporalFill::Zeros };
        let clip = Tensor::<B, 5>::random(
            [rows, 3, frames + network.timing().delay, image, image],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        assert_batch_equals_rows_alone(&network, clip, fill, &device);
    }
}
