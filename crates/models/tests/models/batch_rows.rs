//! The batching property both network families share: a batch of streams stepped together
//! gives each stream's outputs stepped alone.

use burn::prelude::*;
use costream_continual::{clip_frames, stack_frames, CoModule, Sequential, TemporalFill};
use costream_testkit::assert_close;

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
