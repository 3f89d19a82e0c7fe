//! A batch of N streams gives exactly the outputs of N streams stepped alone, with streams
//! that start, pause and end at different times.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::*;
use costream_continual::TemporalFill;
use costream_engine::{DeviceSpec, OpenOptions, StreamEvent};

/// When each stream is open and sending: (opens at, sends at these ticks, ends after, fill).
struct Script {
    open_at: u64,
    sends: Vec<u64>,
    end_at: Option<u64>,
    fill: TemporalFill,
}

#[test]
fn batched_streams_equal_streams_stepped_alone_on_the_cpu() {
    let reference = Reference::new();
    batched_streams_equal_streams_stepped_alone(&reference, DeviceSpec::Cpu, 1e-5);
}

/// The reference steps each stream alone on the same backend (its RNG draws the same
/// weights). GPU kernels are the same for a batch and its rows (conv2d, matmul, reductions,
/// broadcasts, select and cat each agree exactly between a batch and its rows on lavapipe),
/// so the tolerance stays below the 1e-4 by which different streams' predictions differ.
/// This failed by up to 9e-4 until the continual crate stopped reshaping cubecl views with
/// a unit dim after a larger one in place (`reshape_adding_dims` in the continual crate):
/// batched `[N, C, 1, 1]` frames read other elements.
#[cfg(feature = "wgpu")]
#[test]
fn batched_streams_equal_streams_stepped_alone_on_wgpu() {
    let device = costream_backend::WgpuDevice::DefaultDevice;
    let reference = Reference::<costream_backend::Wgpu>::on(device);
    batched_streams_equal_streams_stepped_alone(&reference, DeviceSpec::Wgpu(None), 2e-5);
}

#[cfg(feature = "cuda")]
#[test]
fn batched_streams_equal_streams_stepped_alone_on_cuda() {
    let reference = Reference::<costream_backend::Cuda>::on(Default::default());
    batched_streams_equal_streams_stepped_alone(&reference, DeviceSpec::Cuda(0), 2e-5);
}

fn batched_streams_equal_streams_stepped_alone<B: burn::prelude::Backend>(
    reference: &Reference<B>,
    device: DeviceSpec,
    tolerance: f32,
) {
    let mut model = tiny_model("tiny");
    model.device = device;
    let engine = start(vec![model], None);
    let scripts = [
        Script {
            open_at: 0,
            sends: (0..14).collect(),
            end_at: Some(13),
            fill: TemporalFill::Zeros,
        },
        Script {
            open_at: 2,
            sends: (2..6).chain(10..24).collect(),
            end_at: None,
            fill: TemporalFill::Zeros,
        },
        Script {
            open_at: 5,
            sends: (5..24).collect(),
            end_at: None,
            fill: TemporalFill::Replicate,
        },
        Script {
            open_at: 8,
            sends: (8..24).collect(),
            end_at: None,
            fill: TemporalFill::Zeros,
        },
    ];
    let mut streams = HashMap::new();
    let mut states: Vec<_> = scripts.iter().map(|s| reference.state(s.fill)).collect();
    let mut largest_batch = 0;
    let mut predictions = 0;
    for tick in 0..24u64 {
        for (i, script) in scripts.iter().enumerate() {
            if script.open_at == tick {
                let options = OpenOptions {
                    fill: script.fill,
                    ..OpenOptions::default()
                };
                let stream = engine.open("tiny", options).unwrap();
                assert_eq!(next(&stream), StreamEvent::Active);
                streams.insert(i, stream);
            }
        }
        // Every sending stream submits its frame before any answer is read, so that the
        // engine can batch them.
        let sending: Vec<usize> = (0..scripts.len())
            .filter(|&i| streams.contains_key(&i) && scripts[i].sends.contains(&tick))
            .collect();
        for &i in &sending {
            streams[&i].submit(tick, &tensor(i as u64, tick)).unwrap();
        }
        for &i in &sending {
            let events = until_seq(&streams[&i], tick);
            let (seq, scores) = answer(events.last().unwrap()).unwrap();
            assert_eq!(seq, tick);
            let expected = reference.step(&frame(i as u64, tick), &mut states[i]);
            match (scores, expected) {
                (Some(actual), Some(expected)) => {
                    let diff = costream_testkit::max_abs_diff(&actual, &expected);
                    assert!(
                        diff <= tolerance,
                        "{device}: stream {i} frame {tick}: diff {diff}"
                    );
                    predictions += 1;
                }
                (None, None) => {}
                (actual, expected) => panic!(
                    "stream {i} frame {tick}: engine {:?}, alone {:?}",
                    actual.is_some(),
                    expected.is_some()
                ),
            }
            if let StreamEvent::Prediction(p) = events.last().unwrap() {
                largest_batch = largest_batch.max(p.batch_size);
            }
        }
        for (i, script) in scripts.iter().enumerate() {
            if script.end_at == Some(tick) {
                let stream = streams.remove(&i).unwrap();
                stream.end().unwrap();
                match next(&stream) {
                    StreamEvent::Ended(summary) => {
                        let c = summary.counts;
                        assert_eq!(c.frames_in, script.sends.len() as u64);
                        assert_eq!(c.predicted + c.filling, c.frames_in);
                        assert_eq!(c.dropped, 0);
                    }
                    other => panic!("expected the summary, got {other:?}"),
                }
            }
        }
    }
    assert!(predictions > 20, "only {predictions} predictions compared");
    assert!(
        largest_batch >= 3,
        "streams were never batched (largest batch {largest_batch})"
    );
}
