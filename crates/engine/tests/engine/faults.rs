//! Contained failures (faults injected with the `fault-injection` feature): a failed step,
//! gather, state push or row removal ends only the streams it touched, each told why and
//! given its last good state where one exists; the device thread goes on, and every other
//! stream continues exactly as the reference.
#![allow(clippy::unwrap_used)]

use std::ops::Range;

use crate::common::*;
use costream_continual::TemporalFill;
use costream_engine::{
    EndReason, Engine, FaultPoint, OpenOptions, StreamEvent, StreamHandle, StreamSnapshot,
    StreamSummary,
};

type Answers = Vec<(u64, Option<Vec<f32>>)>;

/// Submits frames `frames` of stream pattern `id` and collects their answers.
fn stream_frames(stream: &StreamHandle, id: u64, frames: Range<u64>) -> Answers {
    for t in frames.clone() {
        stream.submit(t, &tensor(id, t)).unwrap();
    }
    until_seq(stream, frames.end - 1)
        .iter()
        .filter_map(answer)
        .collect()
}

/// The reference's answers to frames `frames` of pattern `id`, stepped from frame 0.
fn expected(reference: &Reference, id: u64, frames: Range<u64>) -> Answers {
    let mut state = reference.state(TemporalFill::Zeros);
    (0..frames.end)
        .map(|t| (t, reference.step(&frame(id, t), &mut state)))
        .filter(|(t, _)| frames.contains(t))
        .collect()
}

fn assert_answers(actual: &Answers, expected: &Answers, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: answers");
    for ((seq, a), (want, e)) in actual.iter().zip(expected) {
        assert_eq!(seq, want, "{what}: order");
        assert_same_answer(a.as_deref(), e.as_deref(), &format!("{what}, frame {seq}"));
    }
}

/// Reads a stream's events up to its end, which must come from a failure: the message, the
/// state it left, the summary.
fn failure(stream: &StreamHandle) -> (String, Option<StreamSnapshot>, StreamSummary) {
    let mut failed = None;
    loop {
        match next(stream) {
            StreamEvent::Failed { message, snapshot } => failed = Some((message, snapshot)),
            StreamEvent::Ended(summary) => {
                let (message, snapshot) = failed.expect("`failed` before `ended`");
                assert_eq!(summary.reason, EndReason::Fault);
                return (message, snapshot, summary);
            }
            StreamEvent::Active | StreamEvent::Waiting { .. } => {}
            other => panic!("unexpected {other:?} before the failure"),
        }
    }
}

fn resume(engine: &Engine, snapshot: StreamSnapshot) -> StreamHandle {
    engine
        .open(
            "tiny",
            OpenOptions {
                resume: Some(snapshot),
                ..Default::default()
            },
        )
        .unwrap()
}

/// One stream per batch (`max_batch` 1), so each step gathers its row from the others'.
fn engine_of_single_batches() -> Engine {
    let mut config = tiny_model("tiny");
    config.batch.max_batch = 1;
    start(vec![config], None)
}

#[test]
fn a_failed_step_or_gather_ends_its_stream_with_its_state_before_and_others_go_on() {
    let reference = Reference::new();
    for point in [FaultPoint::Step, FaultPoint::Gather] {
        let engine = engine_of_single_batches();
        let failing = engine.open("tiny", OpenOptions::default()).unwrap();
        let other = engine.open("tiny", OpenOptions::default()).unwrap();
        let mut got = stream_frames(&failing, 1, 0..10);
        let mut others = stream_frames(&other, 2, 0..10);

        engine.inject_fault(point, 1);
        failing.submit(10, &tensor(1, 10)).unwrap();
        let (message, snapshot, summary) = failure(&failing);
        assert!(message.contains("injected"), "{point:?}: {message}");
        assert_eq!(summary.counts.dropped, 1, "{point:?}: the frame taken");
        assert_eq!(summary.counts.frames_in, 11);
        let snapshot = snapshot.unwrap_or_else(|| panic!("{point:?}: no state to resume"));
        assert_eq!(
            snapshot.last_seq,
            Some(9),
            "{point:?}: the state before the step"
        );

        // The other stream goes on exactly; the failed one resumes where its state was.
        others.extend(stream_frames(&other, 2, 10..16));
        assert_answers(&others, &expected(&reference, 2, 0..16), "the other stream");
        let resumed = resume(&engine, snapshot);
        got.extend(stream_frames(&resumed, 1, 10..16));
        assert_answers(&got, &expected(&reference, 1, 0..16), "the resumed stream");
    }
}

#[test]
fn a_step_failing_in_place_ends_its_streams_without_a_state_and_the_device_goes_on() {
    let reference = Reference::new();
    // Two slots, both streams in one batch (stepped in place), a third stream waiting.
    let mut config = tiny_model("tiny");
    config.slots.capacity = 2;
    config.batch.max_batch = 2;
    // A step waits for both streams' frames (it runs as soon as both are ready).
    config.batch.max_wait = std::time::Duration::from_secs(5);
    let engine = start(vec![config], None);
    let pair: Vec<StreamHandle> = (0..2)
        .map(|_| engine.open("tiny", OpenOptions::default()).unwrap())
        .collect();
    let waiting = engine.open("tiny", OpenOptions::default()).unwrap();
    assert!(matches!(next(&waiting), StreamEvent::Waiting { .. }));
    for t in 0..4 {
        for (stream, id) in pair.iter().zip(1..) {
            stream.submit(t, &tensor(id, t)).unwrap();
        }
    }
    for stream in &pair {
        until_seq(stream, 3);
    }

    engine.inject_fault(FaultPoint::Step, 1);
    for (stream, id) in pair.iter().zip(1..) {
        stream.submit(4, &tensor(id, 4)).unwrap();
    }
    for stream in &pair {
        let (_, snapshot, summary) = failure(stream);
        assert!(
            snapshot.is_none(),
            "a state stepped in place is not a good state"
        );
        assert_eq!(summary.counts.dropped, 1);
    }

    // The waiting stream gets a slot in the emptied batch and steps exactly.
    let got = stream_frames(&waiting, 3, 0..12);
    assert_answers(
        &got,
        &expected(&reference, 3, 0..12),
        "the stream that waited",
    );
}

#[test]
fn a_state_that_cannot_join_the_batch_ends_only_its_stream() {
    let reference = Reference::new();
    let engine = start(vec![tiny_model("tiny")], None);
    let running = engine.open("tiny", OpenOptions::default()).unwrap();
    let mut got = stream_frames(&running, 1, 0..6);

    engine.inject_fault(FaultPoint::Push, 1);
    let refused = engine.open("tiny", OpenOptions::default()).unwrap();
    let (message, snapshot, _) = failure(&refused);
    assert!(message.contains("injected"), "{message}");
    assert_eq!(snapshot.map(|s| s.last_seq), Some(None), "a fresh state");

    // Slots and rows still agree: the running stream and a new one step exactly.
    let later = engine.open("tiny", OpenOptions::default()).unwrap();
    got.extend(stream_frames(&running, 1, 6..14));
    assert_answers(&got, &expected(&reference, 1, 0..14), "the running stream");
    let later_got = stream_frames(&later, 4, 0..10);
    assert_answers(
        &later_got,
        &expected(&reference, 4, 0..10),
        "a later stream",
    );
}

#[test]
fn a_row_that_cannot_be_removed_is_cut_out_and_the_other_streams_keep_their_state() {
    let reference = Reference::new();
    let engine = start(vec![tiny_model("tiny")], None);
    let streams: Vec<StreamHandle> = (0..3)
        .map(|_| engine.open("tiny", OpenOptions::default()).unwrap())
        .collect();
    let mut got: Vec<Answers> = streams
        .iter()
        .zip(1..)
        .map(|(s, id)| stream_frames(s, id, 0..6))
        .collect();

    engine.inject_fault(FaultPoint::Remove, 1);
    streams[1].end().unwrap();
    loop {
        if let StreamEvent::Ended(summary) = next(&streams[1]) {
            assert_eq!(summary.reason, EndReason::Client);
            break;
        }
    }
    for (i, id) in [(0, 1), (2, 3)] {
        got[i].extend(stream_frames(&streams[i], id, 6..14));
        assert_answers(
            &got[i],
            &expected(&reference, id, 0..14),
            &format!("stream {id}"),
        );
    }
}
