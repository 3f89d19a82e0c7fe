//! State handling at its edges: snapshot validation, row bookkeeping, phase grouping, and
//! weight loading errors that name the key.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    clip_frames, load_checkpoint, stack_frames, CoConvConfig, CoLayer, CoModule, CoPoolConfig,
    Sequential, State, StateError, TemporalFill, WeightError, WeightTensor, Weights,
};
use costream_testkit::{assert_close, values};

type B = TestBackend;

fn net(device: &Device<B>) -> CoLayer<B> {
    B::seed(device, 7);
    Sequential::new(vec![
        CoConvConfig::conv3d([2, 3], [3, 3, 3])
            .with_padding([1, 1, 1])
            .init(device)
            .unwrap()
            .into(),
        CoConvConfig::conv3d([3, 3], [3, 1, 1])
            .with_stride([2, 1, 1])
            .init(device)
            .unwrap()
            .into(),
        CoPoolConfig::max([2, 1, 1])
            .with_stride(Some([1, 1, 1]))
            .init()
            .unwrap()
            .into(),
    ])
    .into()
}

fn frames(n: usize, rows: usize, device: &Device<B>) -> Vec<Tensor<B, 4>> {
    B::seed(device, 11);
    let clip = Tensor::<B, 5>::random(
        [rows, 2, n, 4, 4],
        burn::tensor::Distribution::Default,
        device,
    );
    clip_frames(clip).collect()
}

#[test]
fn snapshot_rejects_bad_bytes_with_a_named_reason() {
    let device = Default::default();
    let m = net(&device);
    let mut state = m.init_state(2, TemporalFill::Zeros, &device);
    for f in frames(4, 2, &device) {
        m.forward_step(f, &mut state);
    }
    let bytes = state.snapshot();
    let fresh = || m.init_state(2, TemporalFill::Zeros, &device);

    assert_eq!(fresh().restore(b"nonsense").unwrap_err(), StateError::Magic);
    let mut wrong_version = bytes.clone();
    wrong_version[8] = 9;
    assert!(matches!(
        fresh().restore(&wrong_version),
        Err(StateError::Version { found: 9, .. })
    ));
    assert!(matches!(
        fresh().restore(&bytes[..bytes.len() - 3]),
        Err(StateError::Truncated { .. })
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        fresh().restore(&longer),
        Err(StateError::Truncated { .. })
    ));
    let mut other_rows = m.init_state(3, TemporalFill::Zeros, &device);
    assert!(matches!(
        other_rows.restore(&bytes),
        Err(StateError::Rows {
            expected: 3,
            found: 2,
            ..
        })
    ));
    let other_net: CoLayer<B> = CoConvConfig::conv3d([2, 3], [3, 3, 3])
        .init(&device)
        .unwrap()
        .into();
    let err = other_net
        .init_state(2, TemporalFill::Zeros, &device)
        .restore(&bytes)
        .unwrap_err();
    assert!(matches!(err, StateError::Structure { .. }), "{err}");
    assert!(err.to_string().contains("sequential(3)"), "{err}");
    let mut ok = fresh();
    ok.restore(&bytes).unwrap();
    assert_eq!(ok.steps(), &[4, 4]);
}

#[test]
fn put_rows_rejects_mismatches() {
    let device = Default::default();
    let m = net(&device);
    let mut state = m.init_state(3, TemporalFill::Zeros, &device);
    let one = m.init_state(1, TemporalFill::Zeros, &device);
    assert!(matches!(
        state.put_rows(&[3], one.clone()),
        Err(StateError::Row { row: 3, batch: 3 })
    ));
    assert!(matches!(
        state.put_rows(&[0, 0], m.init_state(2, TemporalFill::Zeros, &device)),
        Err(StateError::Row { row: 0, .. })
    ));
    assert!(matches!(
        state.put_rows(&[0, 1], one),
        Err(StateError::Rows {
            expected: 2,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        state.take_rows(&[5]),
        Err(StateError::Row { row: 5, batch: 3 })
    ));
}

/// Rows stepped apart in any order, then put back, continue as if the batch had stepped
/// whole: one run of consecutive rows, two runs, and scattered rows (written by a gather).
#[test]
fn rows_put_back_in_any_pattern_continue_as_the_whole_batch() {
    let device = Default::default();
    let m = net(&device);
    let rows = 5;
    let clip = frames(9, rows, &device);
    let mut whole = m.init_state(rows, TemporalFill::Zeros, &device);
    let step_all = |frames: &[Tensor<B, 4>], state: &mut State<B>| -> Vec<Tensor<B, 4>> {
        frames
            .iter()
            .filter_map(|f| m.forward_step(f.clone(), state))
            .collect()
    };
    let expected = stack_frames(step_all(&clip, &mut whole)).unwrap();
    let expected_flush = m.flush(&mut whole).unwrap();
    let pick = |frame: &Tensor<B, 4>, rows: &[usize]| {
        Tensor::cat(
            rows.iter()
                .map(|&r| frame.clone().narrow(0, r, 1))
                .collect(),
            0,
        )
    };
    for pattern in [vec![1, 2], vec![3, 0], vec![4, 2, 0], vec![0, 2, 4, 1]] {
        let others: Vec<usize> = (0..rows).filter(|r| !pattern.contains(r)).collect();
        // Batch row r is row `order[r]` of the part followed by the rest.
        let order: Vec<usize> = (0..rows)
            .map(|r| {
                pattern
                    .iter()
                    .position(|&p| p == r)
                    .unwrap_or_else(|| pattern.len() + others.iter().position(|&o| o == r).unwrap())
            })
            .collect();
        let mut state = m.init_state(rows, TemporalFill::Zeros, &device);
        let mut outputs = step_all(&clip[..4], &mut state);
        let mut part = state.take_rows(&pattern).unwrap();
        let mut rest = state.take_rows(&others).unwrap();
        let part_frames: Vec<_> = clip[4..].iter().map(|f| pick(f, &pattern)).collect();
        let rest_frames: Vec<_> = clip[4..].iter().map(|f| pick(f, &others)).collect();
        for (a, b) in step_all(&part_frames, &mut part)
            .into_iter()
            .zip(step_all(&rest_frames, &mut rest))
        {
            outputs.push(pick(&Tensor::cat(vec![a, b], 0), &order));
        }
        state.put_rows(&pattern, part).unwrap();
        state.put_rows(&others, rest).unwrap();
        let what = format!("rows {pattern:?} stepped apart");
        assert_close(stack_frames(outputs).unwrap(), expected.clone(), &what);
        assert_eq!(state.steps(), whole.steps(), "{what}");
        assert_close(m.flush(&mut state).unwrap(), expected_flush.clone(), &what);
    }
}

#[test]
fn append_rejects_another_module_and_keeps_the_state() {
    let device = Default::default();
    let m = net(&device);
    let other: CoLayer<B> = Sequential::new(vec![CoConvConfig::conv3d([2, 2], [3, 1, 1])
        .init(&device)
        .unwrap()
        .into()])
    .into();
    let mut state = m.init_state(2, TemporalFill::Zeros, &device);
    let err = state
        .append(other.init_state(1, TemporalFill::Zeros, &device))
        .unwrap_err();
    assert!(matches!(err, StateError::Structure { .. }), "{err}");
    assert_eq!(state.rows(), 2);
    state
        .append(m.init_state(3, TemporalFill::Replicate, &device))
        .unwrap();
    assert_eq!(state.rows(), 5);
    assert_eq!(state.fills()[4], TemporalFill::Replicate);
}

#[test]
fn streams_at_different_steps_but_one_phase_step_together() {
    let device = Default::default();
    let m = net(&device);
    let t = m.timing();
    let input = frames(12, 2, &device);
    // Stream a starts 2 frames (one period of the stride) before stream b.
    let mut a = m.init_state(1, TemporalFill::Zeros, &device);
    let mut b = m.init_state(1, TemporalFill::Zeros, &device);
    let mut alone_a = Vec::new();
    for f in &input {
        alone_a.push(
            m.forward_step(f.clone().narrow(0, 0, 1), &mut a)
                .map(values),
        );
    }
    let mut alone_b = Vec::new();
    for f in &input[..10] {
        alone_b.push(
            m.forward_step(f.clone().narrow(0, 1, 1), &mut b)
                .map(values),
        );
    }
    // Replay: a alone for 2 frames, then both in one batch once their phase keys agree.
    let mut sa = m.init_state(1, TemporalFill::Zeros, &device);
    let mut sb = m.init_state(1, TemporalFill::Zeros, &device);
    for f in &input[..2] {
        m.forward_step(f.clone().narrow(0, 0, 1), &mut sa);
    }
    let mut together_from = None;
    for (i, f) in input[2..].iter().enumerate() {
        let (ka, kb) = (t.phase_key(sa.steps()[0]), t.phase_key(sb.steps()[0]));
        if ka == kb {
            together_from.get_or_insert(i);
            let mut batch = m.init_state(2, TemporalFill::Zeros, &device);
            batch.put_rows(&[0], sa.clone()).unwrap();
            batch.put_rows(&[1], sb.clone()).unwrap();
            let frame = Tensor::cat(
                vec![f.clone().narrow(0, 0, 1), input[i].clone().narrow(0, 1, 1)],
                0,
            );
            let out = m.forward_step(frame, &mut batch);
            sa = batch.take_rows(&[0]).unwrap();
            sb = batch.take_rows(&[1]).unwrap();
            assert_eq!(out.is_some(), alone_a[i + 2].is_some());
            if let Some(out) = out {
                let want_a = Tensor::<B, 1>::from_floats(
                    alone_a[i + 2].clone().unwrap().as_slice(),
                    &device,
                );
                let want_b =
                    Tensor::<B, 1>::from_floats(alone_b[i].clone().unwrap().as_slice(), &device);
                assert_close(
                    Tensor::<B, 1>::from_floats(
                        values(out.clone().narrow(0, 0, 1)).as_slice(),
                        &device,
                    ),
                    want_a,
                    "a",
                );
                assert_close(
                    Tensor::<B, 1>::from_floats(values(out.narrow(0, 1, 1)).as_slice(), &device),
                    want_b,
                    "b",
                );
            }
        } else {
            m.forward_step(f.clone().narrow(0, 0, 1), &mut sa);
            m.forward_step(input[i].clone().narrow(0, 1, 1), &mut sb);
        }
    }
    assert!(together_from.is_some(), "streams never came into phase");
}

#[test]
#[should_panic(expected = "out of phase")]
fn out_of_phase_rows_are_refused() {
    let device = Default::default();
    let m = net(&device);
    let input = frames(3, 1, &device);
    let mut ahead = m.init_state(1, TemporalFill::Zeros, &device);
    m.forward_step(input[0].clone(), &mut ahead);
    let mut batch = m.init_state(2, TemporalFill::Zeros, &device);
    batch.put_rows(&[0], ahead).unwrap();
    m.forward_step(
        Tensor::cat(vec![input[1].clone(), input[2].clone()], 0),
        &mut batch,
    );
}

#[test]
fn weight_errors_name_the_key() {
    let device = Default::default();
    let mut m = net(&device);
    let mut weights = Weights::new();
    weights.insert(
        "0.weight",
        WeightTensor {
            shape: vec![3, 2, 3, 3, 3],
            values: vec![0.1; 162],
        },
    );
    weights.insert(
        "0.bias",
        WeightTensor {
            shape: vec![3],
            values: vec![0.0; 3],
        },
    );
    let err = load_checkpoint(&mut m, weights.clone()).unwrap_err();
    assert_eq!(
        err,
        WeightError::Missing {
            key: "1.weight".into()
        }
    );
    weights.insert(
        "1.weight",
        WeightTensor {
            shape: vec![3, 3, 3, 1],
            values: vec![0.0; 27],
        },
    );
    let err = load_checkpoint(&mut m, weights.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "weight `1.weight` has shape [3, 3, 3, 1], expected [3, 3, 3, 1, 1]"
    );
    weights.insert(
        "1.weight",
        WeightTensor {
            shape: vec![3, 3, 3, 1, 1],
            values: vec![0.0; 27],
        },
    );
    weights.insert(
        "1.bias",
        WeightTensor {
            shape: vec![3],
            values: vec![0.0; 3],
        },
    );
    weights.insert(
        "2.weight",
        WeightTensor {
            shape: vec![1],
            values: vec![0.0],
        },
    );
    let err = load_checkpoint(&mut m, weights.clone()).unwrap_err();
    assert_eq!(
        err,
        WeightError::Unused {
            keys: vec!["2.weight".into()]
        }
    );
}

#[test]
fn reset_forgets_and_replicate_is_per_row() {
    let device = Default::default();
    let m = net(&device);
    let input = frames(6, 2, &device);
    let mut state = m.init_state(2, TemporalFill::Zeros, &device);
    state.set_fill(1, TemporalFill::Replicate).unwrap();
    let mixed: Vec<_> = input
        .iter()
        .filter_map(|f| m.forward_step(f.clone(), &mut state))
        .collect();
    for (row, fill) in [(0, TemporalFill::Zeros), (1, TemporalFill::Replicate)] {
        let mut single = m.init_state(1, fill, &device);
        let alone: Vec<_> = input
            .iter()
            .filter_map(|f| m.forward_step(f.clone().narrow(0, row, 1), &mut single))
            .collect();
        assert_eq!(alone.len(), mixed.len());
        for (a, b) in alone.into_iter().zip(&mixed) {
            assert_close(b.clone().narrow(0, row, 1), a, "mixed fills");
        }
    }
    state.reset();
    assert_eq!(state.steps(), &[0, 0]);
    assert_eq!(state.size_bytes(), 0);
}
