//! Property tests of the skeleton networks (CoST-GCN, CoAGCN, CoS-TR) over random small
//! configurations, both variants: `forward_steps(pad_end)` equals the offline `forward`, and a
//! batch of N streams stepped together equals the N streams stepped alone.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use burn::tensor::Distribution;
use costream_backend::TestBackend;
use costream_continual::{CoModule, TemporalFill};
use costream_models::stgcn::{
    build_stgcn, BlockShape, SkeletonArchitecture, SkeletonGraph, StGcnConfig, StGcnVariant,
};

use crate::properties::{
    assert_batch_equals_rows_alone, assert_flushed_steps_equal_offline, proptest_config,
};
use proptest::prelude::*;

type B = TestBackend;

/// A small network of `architecture` on a 5-joint chain: four blocks, the third widening with
/// `stride` (CoS-TR's attention, with 2 heads, in the fourth).
fn config(
    architecture: SkeletonArchitecture,
    variant: StGcnVariant,
    persons: usize,
    stride: usize,
    clip_frames: usize,
) -> StGcnConfig {
    let graph = SkeletonGraph::custom("chain", 5, vec![(1, 0), (2, 1), (3, 2), (4, 0)]).unwrap();
    let mut config = StGcnConfig::new(variant, graph, 3, 4);
    let stride = match variant {
        StGcnVariant::Strided => stride,
        StGcnVariant::EveryFrame => 1,
    };
    let block = BlockShape::new;
    config.blocks = vec![
        block(3, 4, 1, false),
        block(4, 4, 1, true),
        block(4, 8, stride, true),
        block(8, 8, 1, true),
    ];
    config.temporal_kernel = 3;
    config.persons = persons;
    config.clip_frames = clip_frames;
    config.attention_heads = 2;
    config.with_architecture(architecture)
}

fn architecture() -> impl Strategy<Value = SkeletonArchitecture> {
    prop_oneof![
        Just(SkeletonArchitecture::StGcn),
        Just(SkeletonArchitecture::AGcn),
        Just(SkeletonArchitecture::STr),
    ]
}

fn variant() -> impl Strategy<Value = StGcnVariant> {
    prop_oneof![Just(StGcnVariant::Strided), Just(StGcnVariant::EveryFrame)]
}

proptest! {
    #![proptest_config(proptest_config(12))]

    #[test]
    fn streaming_with_flush_equals_offline(
        architecture in architecture(),
        variant in variant(),
        persons in 1usize..=2,
        stride in 1usize..=2,
        clip_frames in 10usize..=16,
        extra in 0usize..=6,
        rows in 1usize..=2,
    ) {
        let device = Default::default();
        B::seed(&device, 7);
        let config = config(architecture, variant, persons, stride, clip_frames);
        let network = build_stgcn::<B>(&config, &device).unwrap();
        let clip = Tensor::<B, 5>::random(
            [rows, 3, clip_frames + extra, 5, persons],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        assert_flushed_steps_equal_offline(&network, clip, &device);
    }

    #[test]
    fn a_batch_equals_its_streams_alone(
        architecture in architecture(),
        variant in variant(),
        persons in 1usize..=2,
        frames in 1usize..=6,
        rows in 2usize..=3,
        replicate in any::<bool>(),
    ) {
        let device = Default::default();
        B::seed(&device, 8);
        let network = build_stgcn::<B>(&config(architecture, variant, persons, 2, 12), &device).unwrap();
        let fill = if replicate { TemporalFill::Replicate } else { TemporalFill::Zeros };
        let timing = network.timing();
        let clip = Tensor::<B, 5>::random(
            [rows, 3, timing.delay + frames * timing.stride, 5, persons],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        assert_batch_equals_rows_alone(&network, clip, fill, &device);
    }
}
