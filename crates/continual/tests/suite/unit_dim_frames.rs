//! Frames with unit spatial dims (1×1 frames, as after a global pool or strided convs down to
//! one pixel) keep their values through every module that stores or stacks them.
//!
//! A strided convolution's output on the GPU backends is a channels-last view; burn 0.21's
//! cubecl reshape mis-strides such views when it adds dims to them (`reshape_adding_dims`
//! in `state.rs`). On wgpu these cases failed before that was handled: the stacked clip, the
//! delayed frames and the pooled frames read other streams' values.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    clip_frames, stack_frames, CoConv, CoConvConfig, CoModule, CoPoolConfig, Delay, TemporalFill,
};
use costream_testkit::values;

type B = TestBackend;

const ROWS: usize = 3;
const FRAMES: usize = 4;

/// A depthwise 1×1 conv with spatial stride 2: 2×2 frames become 1×1 frames.
fn strided_conv(device: &Device<B>) -> CoConv<B> {
    CoConvConfig::new([2, 2], [1, 1, 1])
        .with_stride([1, 2, 2])
        .with_groups(2)
        .init(device)
        .unwrap()
}

/// The conv's 1×1 output frames for a clip of distinct values, one tensor per frame.
fn one_pixel_frames(device: &Device<B>) -> Vec<Tensor<B, 4>> {
    let conv = strided_conv(device);
    let count = ROWS * 2 * FRAMES * 2 * 2;
    let data: Vec<f32> = (0..count).map(|i| i as f32 * 0.25 - 3.0).collect();
    let clip = Tensor::<B, 5>::from_data(TensorData::new(data, [ROWS, 2, FRAMES, 2, 2]), device);
    let mut state = conv.init_state(ROWS, TemporalFill::Zeros, device);
    clip_frames(clip)
        .map(|frame| conv.forward_step(frame, &mut state).unwrap())
        .collect()
}

/// The outputs of `module` stepping `frames` as one batch of [`ROWS`] streams.
fn step_frames<M: CoModule<B>>(module: &M, frames: &[Tensor<B, 4>]) -> Vec<Tensor<B, 4>> {
    let device = Default::default();
    let mut state = module.init_state(ROWS, TemporalFill::Zeros, &device);
    frames
        .iter()
        .filter_map(|frame| module.forward_step(frame.clone(), &mut state))
        .collect()
}

#[test]
fn stacked_one_pixel_frames_are_the_frames() {
    let device = Default::default();
    let frames = one_pixel_frames(&device);
    let clip = stack_frames(frames.clone()).unwrap();
    assert_eq!(clip.dims(), [ROWS, 2, FRAMES, 1, 1]);
    for (t, frame) in frames.into_iter().enumerate() {
        let stacked = clip.clone().narrow(2, t, 1).squeeze_dim::<4>(2);
        assert_eq!(values(stacked), values(frame), "frame {t}");
    }
}

#[test]
fn delayed_one_pixel_frames_come_back_unchanged() {
    let device = Default::default();
    let frames = one_pixel_frames(&device);
    let delayed = step_frames(&Delay::<B>::new(2), &frames);
    assert_eq!(delayed.len(), FRAMES - 2);
    for (t, out) in delayed.into_iter().enumerate() {
        assert_eq!(values(out), values(frames[t].clone()), "frame {t}");
    }
}

#[test]
fn pooled_one_pixel_frames_are_their_temporal_means() {
    let device = Default::default();
    let frames = one_pixel_frames(&device);
    let pool = CoPoolConfig::avg([2, 1, 1])
        .with_stride(Some([1, 1, 1]))
        .init::<B>()
        .unwrap();
    let pooled = step_frames(&pool, &frames);
    assert_eq!(pooled.len(), FRAMES - 1);
    for (t, out) in pooled.into_iter().enumerate() {
        let (a, b) = (values(frames[t].clone()), values(frames[t + 1].clone()));
        let mean: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
        costream_testkit::assert_close(
            out,
            Tensor::<B, 4>::from_data(TensorData::new(mean, [ROWS, 2, 1, 1]), &device),
            &format!("frame {t}"),
        );
    }
}
