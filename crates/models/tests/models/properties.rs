//! The continual contract both network families' property tests check: streaming with a
//! flush equals the offline forward, and a batch of streams equals each stream stepped alone.

use burn::prelude::*;
use costream_continual::{clip_frames, stack_frames, CoModule, Sequential, TemporalFill};
use costream_testkit::{assert_close, proptest_cases};
use proptest::test_runner::Config as ProptestConfig;

/// `default_cases` cases per property unless `PROPTEST_CASES` says otherwise (each builds a
/// network), few shrink steps, no failure files.
pub(crate) fn proptest_config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: proptest_cases(default_cases),
        max_shrink_iters: 50,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Steps `clip` through `network` from a zero state with the flush (`pad_end`) and asserts
/// that it equals the offline `forward` of the clip.
///
/// # Shapes
/// - clip: `[rows, C, T, …]`, frames along dim 2
pub(crate) fn assert_flushed_steps_equal_offline<B: Backend>(
    network: &Sequential<B>,
    clip: Tensor<B, 5>,
    device: &B::Device,
) {
    let offline = network.forward(clip.clone());
    let mut state = network.init_state(clip.dims()[0], TemporalFill::Zeros, device);
    let streamed = network
        .forward_steps(clip, &mut state, true)
        .expect("the clip is long enough for an output");
    assert_close(streamed, offline, "pulse+flush vs offline");
}

/// Steps every row of `clip` through `network` as one batch, then each row alone from a fresh
/// state, and asserts that the batch's rows equal the rows stepped alone.
///
/// # Shapes
/// - clip: `[rows, C, T, …]`, frames along dim 2
pub(crate) fn assert_batch_equals_rows_alone<B: Backend>(
    network: &Sequential<B>,
    clip: Tensor<B, 5>,
    fill: TemporalFill,
    device: &B::Device,
) {
    let step_all = |input: Tensor<B, 5>| {
        let mut state = network.init_state(input.dims()[0], fill, device);
        let outputs: Vec<_> = clip_frames(input)
            .filter_map(|frame| network.forward_step(frame, &mut state))
            .collect();
        stack_frames(outputs).expect("the clip is long enough for an output")
    };
    let batched = step_all(clip.clone());
    for row in 0..clip.dims()[0] {
        let alone = step_all(clip.clone().narrow(0, row, 1));
        assert_close(
            batched.clone().narrow(0, row, 1),
            alone,
            "batch row vs alone",
        );
    }
}
