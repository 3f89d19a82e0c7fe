//! Training and evaluation batches: synthetic clips prepared exactly as the engine prepares a
//! served stream's frames (the model's preprocessing spec applied to each RGB frame).

use burn::prelude::*;
use costream_models::{RgbImage, VideoPreprocess};
use costream_synth::{rng::SplitMix64, Action, Clip, Frame};

/// Side of the rendered frames, in pixels, before the model's resize (as a camera's frames are
/// larger than the model's input).
pub const RENDER_SIZE: usize = 64;

/// The clip of example `seed`: its class cycles through the actions with the seed (so that a
/// run of consecutive seeds is balanced), its other parameters are drawn from it.
pub fn example(seed: u64) -> Clip {
    let action = Action::ALL[(seed % Action::ALL.len() as u64) as usize];
    Clip::random(action, seed, RENDER_SIZE, RENDER_SIZE)
}

/// Where in its clip example `seed` starts (clips have no end; starting anywhere in the first
/// 64 frames shows the model every phase of growth, rotation and wrap-around).
pub fn start_frame(seed: u64) -> usize {
    SplitMix64::new(seed ^ 0x57A2_7F2A_0000_0001).below(64)
}

/// One frame as the model's input.
///
/// # Shapes
/// - output: `[3, crop, crop]`, channel-major
pub fn model_input(frame: Frame, spec: &VideoPreprocess) -> Vec<f32> {
    let image = RgbImage {
        width: frame.width,
        height: frame.height,
        pixels: frame.rgb,
    };
    spec.apply(&image)
}

/// A batch of `frames`-frame clips, one per seed, and their class indices.
///
/// # Shapes
/// - clips: `[seeds, 3, frames, crop, crop]`
pub fn batch<B: Backend>(
    seeds: &[u64],
    frames: usize,
    spec: &VideoPreprocess,
    device: &B::Device,
) -> (Tensor<B, 5>, Vec<usize>) {
    let crop = spec.crop;
    let plane = crop * crop;
    let mut values = vec![0.0f32; seeds.len() * 3 * frames * plane];
    let mut labels = Vec::with_capacity(seeds.len());
    for (b, &seed) in seeds.iter().enumerate() {
        let clip = example(seed);
        labels.push(clip.action().index());
        let start = start_frame(seed);
        for t in 0..frames {
            let input = model_input(clip.frame(start + t), spec);
            for c in 0..3 {
                let at = ((b * 3 + c) * frames + t) * plane;
                values[at..at + plane].copy_from_slice(&input[c * plane..(c + 1) * plane]);
            }
        }
    }
    let shape = [seeds.len(), 3, frames, crop, crop];
    (
        Tensor::from_data(TensorData::new(values, shape), device),
        labels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use costream_backend::Cpu;

    #[test]
    fn batches_hold_each_clip_in_model_layout() {
        let spec = VideoPreprocess::kinetics(32, 1);
        let device = Default::default();
        let (clips, labels) = batch::<Cpu>(&[8, 9], 3, &spec, &device);
        assert_eq!(clips.dims(), [2, 3, 3, 32, 32]);
        assert_eq!(labels, [0, 1]);
        let values: Vec<f32> = clips.into_data().into_vec().unwrap();
        let expected = model_input(example(9).frame(start_frame(9) + 2), &spec);
        // Example 1, channel 1, frame 2.
        let at = ((3 + 1) * 3 + 2) * 1024;
        assert_eq!(&values[at..at + 1024], &expected[1024..2048]);
    }
}
