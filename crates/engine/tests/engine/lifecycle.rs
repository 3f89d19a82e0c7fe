//! Stream lifecycle: backlog and refusal, idle reaping on a paused clock, snapshot and
//! restore continuing bit-identically, flush, reset and sampling.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use costream_continual::TemporalFill;
use costream_engine::{
    EndReason, EngineError, ManualClock, OpenError, OpenOptions, StreamEvent, SubmitError,
};

fn answers(
    stream: &costream_engine::StreamHandle,
    frames: impl Iterator<Item = u64>,
    id: u64,
) -> Vec<(u64, Option<Vec<f32>>)> {
    let frames: Vec<u64> = frames.collect();
    for &t in &frames {
        stream.submit(t, &tensor(id, t)).unwrap();
    }
    let last = *frames.last().unwrap();
    until_seq(stream, last).iter().filter_map(answer).collect()
}

#[test]
fn full_models_queue_then_refuse_and_a_freed_slot_goes_to_the_first_waiting() {
    let mut config = tiny_model("tiny");
    config.slots.capacity = 1;
    config.slots.backlog = 1;
    config.batch.max_batch = 1;
    let engine = start(vec![config], None);
    let first = engine.open("tiny", OpenOptions::default()).unwrap();
    assert_eq!(next(&first), StreamEvent::Active);
    let second = engine.open("tiny", OpenOptions::default()).unwrap();
    assert_eq!(next(&second), StreamEvent::Waiting { position: 1 });
    let refused = engine.open("tiny", OpenOptions::default()).unwrap_err();
    assert_eq!(
        refused,
        OpenError::Full {
            model: "tiny".into(),
            capacity: 1,
            backlog: 1
        }
    );
    assert!(refused.to_string().contains("try again later"), "{refused}");
    // The waiting stream's frames are kept and stepped once it has a slot.
    second.submit(0, &tensor(2, 0)).unwrap();
    assert!(second.recv_timeout(Duration::from_millis(100)).is_none());
    first.end().unwrap();
    assert!(matches!(next(&first), StreamEvent::Ended(_)));
    assert_eq!(next(&second), StreamEvent::Active);
    assert!(matches!(next(&second), StreamEvent::Filling { seq: 0 }));
    // The slot and the id are free again.
    let third = engine
        .open(
            "tiny",
            OpenOptions {
                stream_id: Some(first.id().to_string()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(next(&third), StreamEvent::Waiting { position: 1 });
}

#[test]
fn ids_unknown_models_and_snapshots_of_other_models_are_refused() {
    let engine = start(vec![tiny_model("a"), tiny_model("b")], None);
    let options = |id: &str| OpenOptions {
        stream_id: Some(id.into()),
        ..Default::default()
    };
    let stream = engine.open("a", options("cam-1")).unwrap();
    assert_eq!(
        engine.open("b", options("cam-1")).unwrap_err(),
        OpenError::DuplicateId("cam-1".into())
    );
    assert!(matches!(
        engine.open("a", options("bad id")),
        Err(OpenError::InvalidId(_))
    ));
    let err = engine.open("c", OpenOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "unknown model `c`; served: a, b");
    let snapshot = stream.snapshot().unwrap();
    let err = engine
        .open(
            "b",
            OpenOptions {
                resume: Some(snapshot.clone()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("belongs to model `a`, not `b`"),
        "{err}"
    );
    let mut damaged = snapshot;
    damaged.state.truncate(20);
    let err = engine
        .open(
            "a",
            OpenOptions {
                resume: Some(damaged),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, OpenError::Snapshot(EngineError::Snapshot(_))),
        "{err}"
    );
}

#[test]
fn idle_streams_are_reaped_on_the_engine_clock() {
    let clock = ManualClock::new();
    let mut config = tiny_model("tiny");
    config.slots.idle_timeout = Duration::from_secs(30);
    let engine = start(vec![config], Some(Arc::new(clock.clone())));
    let idle = engine.open("tiny", OpenOptions::default()).unwrap();
    let busy = engine.open("tiny", OpenOptions::default()).unwrap();
    assert_eq!(next(&idle), StreamEvent::Active);
    assert_eq!(next(&busy), StreamEvent::Active);
    idle.submit(0, &tensor(0, 0)).unwrap();
    until_seq(&idle, 0);
    clock.advance(Duration::from_secs(20));
    busy.submit(0, &tensor(1, 0)).unwrap();
    until_seq(&busy, 0);
    assert!(engine.reap_idle().is_empty());
    clock.advance(Duration::from_secs(11));
    // The device thread reaps on its own poll too: whichever comes first ends the idle
    // stream, and only it.
    let reaped = engine.reap_idle();
    assert!(
        reaped.is_empty() || reaped == vec![idle.id().to_string()],
        "{reaped:?}"
    );
    match next(&idle) {
        StreamEvent::Ended(summary) => {
            assert_eq!(summary.reason, EndReason::Idle);
            assert_eq!(summary.counts.frames_in, 1);
        }
        other => panic!("expected the summary, got {other:?}"),
    }
    assert_eq!(idle.submit(1, &tensor(0, 1)), Err(SubmitError::Ended));
    busy.submit(1, &tensor(1, 1)).unwrap();
    until_seq(&busy, 1);
}

#[test]
fn a_restored_snapshot_continues_bit_identically() {
    let mut config = tiny_model("tiny");
    config.batch.max_batch = 1;
    let engine = start(vec![config], None);
    let original = engine.open("tiny", OpenOptions::default()).unwrap();
    answers(&original, 0..10, 9);
    let snapshot = original.snapshot().unwrap();
    assert_eq!(snapshot.last_seq, Some(9));
    let bytes = snapshot.to_bytes();
    let continued = answers(&original, 10..16, 9);
    original.end().unwrap();

    let snapshot = costream_engine::StreamSnapshot::from_bytes(&bytes).unwrap();
    let resumed = engine
        .open(
            "tiny",
            OpenOptions {
                resume: Some(snapshot),
                ..Default::default()
            },
        )
        .unwrap();
    let replayed = answers(&resumed, 10..16, 9);
    assert_eq!(continued.len(), 6);
    assert!(
        continued.iter().all(|(_, s)| s.is_some()),
        "the stream should predict by frame 10 (delay 8)"
    );
    assert_eq!(
        replayed, continued,
        "resumed outputs differ from the original's"
    );
}

#[test]
fn flush_reset_and_sampling_follow_the_reference() {
    let reference = Reference::new();
    let engine = start(vec![tiny_model("tiny")], None);
    let stream = engine
        .open(
            "tiny",
            OpenOptions {
                sample_stride: 2,
                fill: TemporalFill::Replicate,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(next(&stream), StreamEvent::Active);
    // Frames 0, 2, 4, … are stepped; 1, 3, … skipped.
    let mut state = reference.state(TemporalFill::Replicate);
    for t in 0..12 {
        stream.submit(t, &tensor(3, t)).unwrap();
    }
    let events = until_seq(&stream, 11);
    for (t, event) in (0..12).zip(&events) {
        if t % 2 == 1 {
            assert_eq!(event, &StreamEvent::Skipped { seq: t });
            continue;
        }
        let expected = reference.step(&frame(3, t), &mut state);
        let actual = answer(event).unwrap().1;
        assert_same_answer(
            actual.as_deref(),
            expected.as_deref(),
            &format!("frame {t}"),
        );
    }
    // Flush: the reference's end padding outputs, then a fresh stream.
    stream.flush().unwrap();
    let expected: Vec<f32> = {
        use costream_continual::CoModule;
        reference
            .network
            .flush(&mut state)
            .map(|t| t.swap_dims(1, 2).into_data().into_vec::<f32>().unwrap())
            .unwrap_or_default()
    };
    match next(&stream) {
        StreamEvent::Flushed { predictions } => {
            let flat: Vec<f32> = predictions.concat();
            assert!(!predictions.is_empty());
            assert_scores_close(&flat, &expected, "flush");
        }
        other => panic!("expected the flush, got {other:?}"),
    }
    let after_flush = answers(&stream, 0..10, 4);
    let stepped: Vec<_> = after_flush
        .iter()
        .filter(|(t, _)| t % 2 == 0)
        .map(|(_, s)| s.clone())
        .collect();
    let mut s = reference.state(TemporalFill::Replicate);
    let expected: Vec<_> = (0..10)
        .step_by(2)
        .map(|t| reference.step(&frame(4, t), &mut s))
        .collect();
    assert_eq!(stepped.len(), expected.len());
    for (a, e) in stepped.iter().zip(&expected) {
        assert_same_answer(a.as_deref(), e.as_deref(), "after flush");
    }
    // Reset: as a new stream again.
    stream.reset().unwrap();
    assert_eq!(next(&stream), StreamEvent::Reset);
    let after_reset = answers(&stream, 0..10, 4);
    assert_eq!(
        after_reset, after_flush,
        "a reset stream must repeat a fresh stream exactly"
    );
    let counts = stream.counts();
    assert_eq!(counts.frames_in, 32);
    assert_eq!(counts.skipped, 16);
    assert_eq!(counts.predicted + counts.filling, 16);
}

#[test]
fn a_dropped_handle_frees_its_slot_and_other_streams_continue() {
    let reference = Reference::new();
    let mut config = tiny_model("tiny");
    config.slots.capacity = 2;
    config.batch.max_batch = 2;
    let engine = start(vec![config], None);
    let kept = engine.open("tiny", OpenOptions::default()).unwrap();
    let mut dropped = Some(engine.open("tiny", OpenOptions::default()).unwrap());
    let waiting = engine.open("tiny", OpenOptions::default()).unwrap();
    assert_eq!(next(&waiting), StreamEvent::Waiting { position: 1 });
    let mut state = reference.state(TemporalFill::Zeros);
    for t in 0..12 {
        kept.submit(t, &tensor(0, t)).unwrap();
        if let Some(stream) = &dropped {
            stream.submit(t, &tensor(1, t)).unwrap();
        }
        if t == 6 {
            // Gone with a frame queued and its answers unread: the engine ends it.
            dropped = None;
        }
        let actual = answer(until_seq(&kept, t).last().unwrap()).unwrap().1;
        let expected = reference.step(&frame(0, t), &mut state);
        assert_same_answer(
            actual.as_deref(),
            expected.as_deref(),
            &format!("frame {t}"),
        );
    }
    assert!(dropped.is_none());
    assert_eq!(next(&waiting), StreamEvent::Active);
}
