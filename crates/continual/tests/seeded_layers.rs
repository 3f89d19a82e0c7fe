//! Layers built after the same seed are identical, whatever draws from the backend's global
//! RNG after them: a layer draws its weights at construction, never lazily at first use.
//!
//! Its own test binary: the seed is process-wide, so a test running beside it in the same
//! process could draw between the seed and the draws it fixes.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{CoConvConfig, CoLayer, CoModule, LinearConfig};
use costream_testkit::values;

type B = TestBackend;

#[test]
fn layers_built_after_the_same_seed_are_identical_whatever_runs_later() {
    let device = Default::default();
    let build = || {
        B::seed(&device, 21);
        let linear: CoLayer<B> = LinearConfig::new([4, 3]).init(&device).into();
        let conv: CoLayer<B> = CoConvConfig::conv3d([4, 2], [3, 1, 1])
            .init(&device)
            .unwrap()
            .into();
        // Draws from the global RNG before either layer is first used.
        let _ = Tensor::<B, 1>::random([64], burn::tensor::Distribution::Default, &device);
        (linear, conv)
    };
    let (a, b) = (build(), build());
    let clip = Tensor::<B, 5>::from_data(
        TensorData::new(
            (0..72).map(|i| (i % 13) as f32 * 0.21 - 1.2).collect(),
            [2, 4, 3, 1, 3],
        ),
        &device,
    );
    let outputs = |(linear, conv): &(CoLayer<B>, CoLayer<B>)| {
        let mut out = values(linear.forward(clip.clone()));
        out.extend(values(conv.forward(clip.clone())));
        out
    };
    assert_eq!(outputs(&a), outputs(&b));
}
