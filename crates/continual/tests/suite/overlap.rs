//! `Overlap` against the frames it must produce, written out in plain Rust: each frame with the
//! previous frame's tail in front, zeros (or the frame's own tail) before the first.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{CoModule, Overlap, TemporalFill};
use costream_testkit::values;

type B = TestBackend;

const ROWS: usize = 2;
const CHANNELS: usize = 2;
const SAMPLES: usize = 5;
const FRAMES: usize = 4;
const OVERLAP: usize = 3;

/// Sample `i` of channel `c` of frame `t` of stream `row`.
fn sample(row: usize, c: usize, t: usize, i: usize) -> f32 {
    (row * 1000 + c * 100 + t * 10 + i) as f32
}

/// A clip `[ROWS, CHANNELS, FRAMES, SAMPLES, 1]` of [`sample`]s.
fn clip(device: &Device<B>) -> Tensor<B, 5> {
    let mut data = Vec::new();
    for row in 0..ROWS {
        for c in 0..CHANNELS {
            for t in 0..FRAMES {
                data.extend((0..SAMPLES).map(|i| sample(row, c, t, i)));
            }
        }
    }
    Tensor::from_data(
        TensorData::new(data, [ROWS, CHANNELS, FRAMES, SAMPLES, 1]),
        device,
    )
}

/// What frame `t` must become, `[ROWS, CHANNELS, OVERLAP + SAMPLES]` flattened; `before_first`
/// gives the context of frame 0 from the frame's own samples.
fn expected(t: usize, before_first: impl Fn(usize, usize, usize) -> f32) -> Vec<f32> {
    let mut out = Vec::new();
    for row in 0..ROWS {
        for c in 0..CHANNELS {
            for k in 0..OVERLAP {
                let i = SAMPLES - OVERLAP + k;
                out.push(if t == 0 {
                    before_first(row, c, i)
                } else {
                    sample(row, c, t - 1, i)
                });
            }
            out.extend((0..SAMPLES).map(|i| sample(row, c, t, i)));
        }
    }
    out
}

fn frame(clip: &Tensor<B, 5>, t: usize) -> Tensor<B, 4> {
    clip.clone().narrow(2, t, 1).squeeze_dim(2)
}

#[test]
fn steps_and_offline_prepend_the_previous_frames_tail() {
    let device = Default::default();
    let overlap = Overlap::<B>::new(OVERLAP).unwrap();
    let clip = clip(&device);
    let mut state = overlap.init_state(ROWS, TemporalFill::Zeros, &device);
    let offline = overlap.forward(clip.clone());
    assert_eq!(
        offline.dims(),
        [ROWS, CHANNELS, FRAMES, OVERLAP + SAMPLES, 1]
    );
    for t in 0..FRAMES {
        let want = expected(t, |_, _, _| 0.0);
        let step = overlap.forward_step(frame(&clip, t), &mut state).unwrap();
        assert_eq!(step.dims(), [ROWS, CHANNELS, OVERLAP + SAMPLES, 1]);
        assert_eq!(values(step), want, "step {t}");
        assert_eq!(values(frame(&offline, t)), want, "offline frame {t}");
    }
    assert!(overlap.flush(&mut state).is_none());
}

#[test]
fn replicate_fill_gives_the_first_frame_its_own_tail() {
    let device = Default::default();
    let overlap = Overlap::<B>::new(OVERLAP).unwrap();
    let clip = clip(&device);
    let mut state = overlap.init_state(ROWS, TemporalFill::Replicate, &device);
    let first = overlap.forward_step(frame(&clip, 0), &mut state).unwrap();
    assert_eq!(values(first), expected(0, |row, c, i| sample(row, c, 0, i)));
    let second = overlap.forward_step(frame(&clip, 1), &mut state).unwrap();
    assert_eq!(values(second), expected(1, |_, _, _| f32::NAN));
}

#[test]
fn streams_keep_their_own_context_when_rows_move() {
    let device = Default::default();
    let overlap = Overlap::<B>::new(OVERLAP).unwrap();
    let clip = clip(&device);
    let mut state = overlap.init_state(ROWS, TemporalFill::Zeros, &device);
    overlap.forward_step(frame(&clip, 0), &mut state).unwrap();
    // Stream 1 steps on alone, then returns to the batch.
    let mut alone = state.take_rows(&[1]).unwrap();
    let next = frame(&clip, 1).narrow(0, 1, 1);
    let out = values(overlap.forward_step(next, &mut alone).unwrap());
    let want = expected(1, |_, _, _| 0.0);
    assert_eq!(out, want[want.len() / 2..]);
    state.put_rows(&[1], alone).unwrap();
    let mut stream_1_only = state.take_rows(&[1]).unwrap();
    let after = values(
        overlap
            .forward_step(frame(&clip, 2).narrow(0, 1, 1), &mut stream_1_only)
            .unwrap(),
    );
    let want = expected(2, |_, _, _| 0.0);
    assert_eq!(after, want[want.len() / 2..]);
}

#[test]
fn an_overlap_of_nothing_is_refused() {
    let err = Overlap::<B>::new(0).err().unwrap().to_string();
    assert!(err.contains("overlap must be positive"), "{err}");
}
