//! Accuracy of a trained network stepped continually, as the server runs it: every clip from
//! its first frame, zero fill, one prediction per frame after the fill.

use burn::prelude::*;
use costream_continual::{CoModule, Sequential, TemporalFill};
use costream_models::VideoPreprocess;

use crate::data::{example, model_input, start_frame};

/// The top class of every prediction, in row-major order of the other dimensions.
///
/// # Shapes
/// - scores: `[rows, classes, …]`
pub(crate) fn top_classes<B: Backend, const D: usize>(scores: Tensor<B, D>) -> Vec<usize> {
    scores
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .unwrap_or_default()
        .into_iter()
        .map(|class| usize::try_from(class).unwrap_or(usize::MAX))
        .collect()
}

/// Streams `frames` frames of each example in `seeds` through `network` (all clips as one
/// batch of streams) and returns the fraction of predictions whose top class is the clip's,
/// with the number of predictions counted.
pub fn streaming_accuracy<B: Backend>(
    network: &Sequential<B>,
    seeds: &[u64],
    frames: usize,
    spec: &VideoPreprocess,
    device: &B::Device,
) -> (f32, usize) {
    let clips: Vec<_> = seeds
        .iter()
        .map(|&s| (example(s), start_frame(s)))
        .collect();
    let mut state = network.init_state(seeds.len(), TemporalFill::Zeros, device);
    let crop = spec.crop;
    let (mut right, mut total) = (0, 0);
    for t in 0..frames {
        let values: Vec<f32> = clips
            .iter()
            .flat_map(|(clip, start)| model_input(clip.frame(start + t), spec))
            .collect();
        let frame = Tensor::from_data(
            TensorData::new(values, [seeds.len(), 3, crop, crop]),
            device,
        );
        let Some(out) = network.forward_step(frame, &mut state) else {
            continue;
        };
        for ((clip, _), class) in clips.iter().zip(top_classes(out)) {
            right += usize::from(class == clip.action().index());
            total += 1;
        }
    }
    (right as f32 / total.max(1) as f32, total)
}
