//! Property tests over random configurations: the continual contract for every module kind.
//!
//! - `forward_steps(pad_end)` equals `forward`;
//! - a batch of N streams equals N single streams (also through `take_rows`/`put_rows`);
//! - snapshot and restore mid-stream continues identically;
//! - temporal dilation equals a direct offline computation;
//! - replicate fill equals the offline network on a clip whose first frame is repeated.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    clip_frames, residual, stack_frames, Activation, ActivationKind, BroadcastReduce, CoConvConfig,
    CoLayer, CoModule, CoPoolConfig, PoolKind, Reduce, ResidualShrink, Sequential, TemporalFill,
};
use costream_testkit::{assert_close, proptest_cases, values};
use proptest::prelude::*;

type B = TestBackend;

/// A random module, described so that proptest can shrink and print it.
#[derive(Debug, Clone)]
enum Spec {
    /// `c_out == 0` keeps the input channels.
    Conv {
        c_out: usize,
        kt: usize,
        dil: usize,
        pad: usize,
        stride_t: usize,
        spatial: usize,
        stride_s: usize,
        depthwise: bool,
    },
    Pool {
        max: bool,
        kt: usize,
        pad: usize,
        stride_t: usize,
        spatial: usize,
    },
    Seq(Vec<Spec>),
    Residual(Box<Spec>, ResidualShrink),
    Broadcast(Vec<Spec>, Reduce),
}

impl Spec {
    fn channels_out(&self, c_in: usize) -> usize {
        match self {
            Spec::Conv {
                c_out, depthwise, ..
            } => {
                if *depthwise || *c_out == 0 {
                    c_in
                } else {
                    *c_out
                }
            }
            Spec::Pool { .. } | Spec::Residual(..) => c_in,
            Spec::Seq(items) => items.iter().fold(c_in, |c, s| s.channels_out(c)),
            Spec::Broadcast(items, Reduce::Concat) => {
                items.iter().map(|s| s.channels_out(c_in)).sum()
            }
            Spec::Broadcast(items, _) => items[0].channels_out(c_in),
        }
    }

    fn build(&self, c_in: usize, device: &Device<B>) -> CoLayer<B> {
        match self {
            Spec::Conv {
                kt,
                dil,
                pad,
                stride_t,
                spatial,
                stride_s,
                depthwise,
                ..
            } => {
                let groups = if *depthwise { c_in } else { 1 };
                let c_out = self.channels_out(c_in);
                CoConvConfig::new([c_in, c_out], [*kt, *spatial, *spatial])
                    .with_dilation([*dil, 1, 1])
                    .with_padding([*pad, spatial / 2, spatial / 2])
                    .with_stride([*stride_t, *stride_s, *stride_s])
                    .with_groups(groups)
                    .init(device)
                    .unwrap()
                    .into()
            }
            Spec::Pool {
                max,
                kt,
                pad,
                stride_t,
                spatial,
            } => {
                let kind = if *max { PoolKind::Max } else { PoolKind::Avg };
                CoPoolConfig::new(kind, [*kt, *spatial, *spatial])
                    .with_stride(Some([*stride_t, 1, 1]))
                    .with_padding([*pad, 0, 0])
                    .init()
                    .unwrap()
                    .into()
            }
            Spec::Seq(items) => {
                let mut c = c_in;
                let mut layers = Vec::new();
                for item in items {
                    layers.push(item.build(c, device));
                    c = item.channels_out(c);
                    layers.push(Activation::new(ActivationKind::Relu).into());
                }
                Sequential::new(layers).into()
            }
            Spec::Residual(inner, shrink) => {
                residual(inner.build(c_in, device), Reduce::Sum, *shrink)
                    .unwrap()
                    .into()
            }
            Spec::Broadcast(items, reduce) => BroadcastReduce::new(
                items.iter().map(|s| s.build(c_in, device)).collect(),
                *reduce,
                true,
            )
            .unwrap()
            .into(),
        }
    }
}

/// A temporal conv that keeps the channel count (for residuals) and, with `same`, the length.
fn channel_preserving_conv(same: bool) -> impl Strategy<Value = Spec> {
    (1usize..=3, 0usize..=1).prop_map(move |(half, spatial)| Spec::Conv {
        c_out: 0,
        kt: if same { 2 * half - 1 } else { 2 * half + 1 },
        dil: 1,
        pad: if same { half - 1 } else { 0 },
        stride_t: 1,
        spatial: 2 * spatial + 1,
        stride_s: 1,
        depthwise: false,
    })
}

fn leaf() -> impl Strategy<Value = Spec> {
    let conv = (
        1usize..=4,
        1usize..=3,
        1usize..=2,
        0usize..=4,
        1usize..=2,
        0usize..=1,
        1usize..=2,
        any::<bool>(),
    )
        .prop_map(
            |(c_out, kt, dil, pad, stride_t, spatial, stride_s, depthwise)| {
                let span = dil * (kt - 1) + 1;
                Spec::Conv {
                    c_out,
                    kt,
                    dil,
                    pad: pad.min(span - 1),
                    stride_t,
                    spatial: 2 * spatial + 1,
                    stride_s,
                    depthwise,
                }
            },
        );
    let pool = (
        any::<bool>(),
        1usize..=3,
        0usize..=1,
        1usize..=2,
        1usize..=2,
    )
        .prop_map(|(max, kt, pad, stride_t, spatial)| Spec::Pool {
            max,
            kt,
            pad: pad.min(kt / 2),
            stride_t,
            spatial,
        });
    prop_oneof![3 => conv, 1 => pool]
}

fn spec() -> impl Strategy<Value = Spec> {
    let shrink = prop_oneof![
        Just(ResidualShrink::Centered),
        Just(ResidualShrink::Leading),
        Just(ResidualShrink::Lagging)
    ];
    prop_oneof![
        4 => leaf(),
        2 => prop::collection::vec(leaf(), 2..=3).prop_map(Spec::Seq),
        1 => channel_preserving_conv(true).prop_map(|c| Spec::Residual(Box::new(c), ResidualShrink::None)),
        1 => (channel_preserving_conv(false), shrink).prop_map(|(c, s)| Spec::Residual(Box::new(c), s)),
        1 => (prop::collection::vec(channel_preserving_conv(true), 2..=3), prop_oneof![Just(Reduce::Sum), Just(Reduce::Mul), Just(Reduce::Concat)])
            .prop_map(|(items, r)| Spec::Broadcast(items, r)),
    ]
}

fn random_clip(
    rows: usize,
    channels: usize,
    time: usize,
    seed: u64,
    device: &Device<B>,
) -> Tensor<B, 5> {
    B::seed(device, seed);
    Tensor::random(
        [rows, channels, time, 5, 5],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    )
}

fn module(spec: &Spec, seed: u64, device: &Device<B>) -> CoLayer<B> {
    B::seed(device, seed);
    spec.build(2, device)
}

/// Frames long enough that the offline output of `m` is not empty.
fn long_enough(m: &CoLayer<B>, extra: usize) -> usize {
    m.timing().receptive_field + extra
}

fn step_all(
    m: &CoLayer<B>,
    clip: Tensor<B, 5>,
    state: &mut costream_continual::State<B>,
) -> Vec<Tensor<B, 4>> {
    clip_frames(clip)
        .filter_map(|f| m.forward_step(f, state))
        .collect()
}

/// Three streams of a random module over a clip long enough to fill it, and the reference:
/// the whole clip stepped as one batch (its outputs and final state).
struct ThreeStreams {
    m: CoLayer<B>,
    clip: Tensor<B, 5>,
    time: usize,
    expected: Tensor<B, 5>,
    reference: costream_continual::State<B>,
}

fn three_streams(spec: &Spec, seed: u64, device: &Device<B>) -> ThreeStreams {
    let m = module(spec, seed, device);
    let time = long_enough(&m, 3);
    let clip = random_clip(3, 2, time, seed + 1, device);
    let mut reference = m.init_state(3, TemporalFill::Zeros, device);
    let expected = stack_frames(step_all(&m, clip.clone(), &mut reference)).unwrap();
    ThreeStreams {
        m,
        clip,
        time,
        expected,
        reference,
    }
}

/// 40 cases per property unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: proptest_cases(40),
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pulse_with_end_padding_equals_offline(spec in spec(), seed in 0u64..1000, extra in 0usize..6) {
        let device = Default::default();
        let m = module(&spec, seed, &device);
        let clip = random_clip(2, 2, long_enough(&m, extra), seed + 1, &device);
        let offline = m.forward(clip.clone());
        let mut state = m.init_state(2, TemporalFill::Zeros, &device);
        let pulsed = m.forward_steps(clip, &mut state, true).expect("some output");
        assert_close(pulsed, offline, &format!("{spec:?}"));
    }

    #[test]
    fn batch_equals_single_streams(spec in spec(), seed in 0u64..1000, extra in 0usize..4) {
        let device = Default::default();
        let m = module(&spec, seed, &device);
        let rows = 3;
        let clip = random_clip(rows, 2, long_enough(&m, extra), seed + 1, &device);
        let mut state = m.init_state(rows, TemporalFill::Zeros, &device);
        let batched = stack_frames(step_all(&m, clip.clone(), &mut state)).unwrap();
        for row in 0..rows {
            let mut single = m.init_state(1, TemporalFill::Zeros, &device);
            let alone = stack_frames(step_all(&m, clip.clone().narrow(0, row, 1), &mut single)).unwrap();
            assert_close(batched.clone().narrow(0, row, 1), alone, &format!("row {row} of {spec:?}"));
        }
    }

    #[test]
    fn rows_taken_out_and_put_back_continue_exactly(spec in spec(), seed in 0u64..1000) {
        let device = Default::default();
        let ThreeStreams { m, clip, time, expected, mut reference } = three_streams(&spec, seed, &device);
        let split = time / 2;

        // Step the first half as one batch, then rows [2, 0] on their own, then put them back.
        let mut state = m.init_state(3, TemporalFill::Zeros, &device);
        let mut outputs = step_all(&m, clip.clone().narrow(2, 0, split), &mut state);
        let mut part = state.take_rows(&[2, 0]).unwrap();
        let rest = clip.clone().narrow(2, split, time - split);
        let part_out = step_all(&m, Tensor::cat(vec![rest.clone().narrow(0, 2, 1), rest.clone().narrow(0, 0, 1)], 0), &mut part);
        let mut middle = state.take_rows(&[1]).unwrap();
        let middle_out = step_all(&m, rest.narrow(0, 1, 1), &mut middle);
        state.put_rows(&[2, 0], part).unwrap();
        state.put_rows(&[1], middle).unwrap();
        for (p, q) in part_out.into_iter().zip(middle_out) {
            outputs.push(Tensor::cat(vec![p.clone().narrow(0, 1, 1), q, p.narrow(0, 0, 1)], 0));
        }
        assert_close(stack_frames(outputs).unwrap(), expected, &format!("{spec:?}"));
        prop_assert_eq!(state.steps(), reference.steps());
        assert_close(m.flush(&mut state).map(values).map(|v| Tensor::<B, 1>::from_floats(v.as_slice(), &device)).unwrap_or_else(|| Tensor::zeros([1], &device)),
            m.flush(&mut reference).map(values).map(|v| Tensor::<B, 1>::from_floats(v.as_slice(), &device)).unwrap_or_else(|| Tensor::zeros([1], &device)), "flush");
    }

    #[test]
    fn streams_stepped_apart_then_appended_continue_exactly(spec in spec(), seed in 0u64..1000) {
        let device = Default::default();
        let ThreeStreams { m, clip, time, expected, reference } = three_streams(&spec, seed, &device);
        let split = time / 2;

        // Rows 0..2 and row 2 step the first half apart (in phase), then as one batch.
        let mut state = m.init_state(2, TemporalFill::Zeros, &device);
        let mut late = m.init_state(1, TemporalFill::Zeros, &device);
        let first = clip.clone().narrow(2, 0, split);
        let a = step_all(&m, first.clone().narrow(0, 0, 2), &mut state);
        let b = step_all(&m, first.narrow(0, 2, 1), &mut late);
        let mut outputs: Vec<_> = a.into_iter().zip(b).map(|(a, b)| Tensor::cat(vec![a, b], 0)).collect();
        state.append(late).unwrap();
        outputs.extend(step_all(&m, clip.narrow(2, split, time - split), &mut state));
        assert_close(stack_frames(outputs).unwrap(), expected, &format!("{spec:?}"));
        prop_assert_eq!(state.steps(), reference.steps());
    }

    #[test]
    fn snapshot_and_restore_continue_identically(spec in spec(), seed in 0u64..1000, cut in 1usize..8) {
        let device = Default::default();
        let m = module(&spec, seed, &device);
        let time = long_enough(&m, 4);
        let cut = cut.clamp(1, time - 1);
        let clip = random_clip(2, 2, time, seed + 1, &device);
        let mut state = m.init_state(2, TemporalFill::Zeros, &device);
        step_all(&m, clip.clone().narrow(2, 0, cut), &mut state);
        let bytes = state.snapshot();
        let mut restored = m.init_state(2, TemporalFill::Zeros, &device);
        restored.restore(&bytes).unwrap();
        prop_assert_eq!(restored.snapshot(), bytes);
        let rest = clip.narrow(2, cut, time - cut);
        let a: Vec<Vec<f32>> = step_all(&m, rest.clone(), &mut state).into_iter().map(values).collect();
        let b: Vec<Vec<f32>> = step_all(&m, rest, &mut restored).into_iter().map(values).collect();
        prop_assert_eq!(a, b, "restored stream diverged");
    }

    #[test]
    fn temporal_dilation_matches_direct_computation(k in 1usize..=4, dil in 1usize..=3, pad in 0usize..=6, extra in 0usize..6, seed in 0u64..1000) {
        let device = Default::default();
        let span = dil * (k - 1) + 1;
        let pad = pad.min(span - 1);
        B::seed(&device, seed);
        let conv = CoConvConfig::conv1d([2, 3], k).with_dilation([dil, 1, 1]).with_padding([pad, 0, 0]).init::<B>(&device).unwrap();
        let time = span + extra;
        let clip = random_clip(1, 2, time, seed + 1, &device).narrow(3, 0, 1).narrow(4, 0, 1);
        let mut state = conv.init_state(1, TemporalFill::Zeros, &device);
        let streamed = values(conv.forward_steps(clip.clone(), &mut state, true).unwrap());
        // Direct: y[o][c] = b[c] + Σ_j Σ_i w[c][i][j] · xpad[i][o + j·dil].
        let x = values(clip);
        let w = values(conv.weight());
        let bias = values(conv.bias.as_ref().unwrap().val());
        let out_len = time + 2 * pad - span + 1;
        let mut direct = vec![0f32; 3 * out_len];
        for c in 0..3 {
            for o in 0..out_len {
                let mut acc = f64::from(bias[c]);
                for i in 0..2 {
                    for j in 0..k {
                        let p = (o + j * dil) as i64 - pad as i64;
                        if p >= 0 && (p as usize) < time {
                            acc += f64::from(w[(c * 2 + i) * k + j]) * f64::from(x[i * time + p as usize]);
                        }
                    }
                }
                direct[c * out_len + o] = acc as f32;
            }
        }
        let diff = costream_testkit::max_abs_diff(&streamed, &direct);
        prop_assert!(diff <= costream_testkit::tolerance(&direct), "max |Δ| {diff}");
    }

    #[test]
    fn replicate_fill_equals_offline_on_a_repeated_first_frame(spec in leaf(), seed in 0u64..1000, extra in 0usize..5) {
        let device = Default::default();
        let m = module(&spec, seed, &device);
        let t = m.timing();
        let time = t.receptive_field + extra;
        let clip = random_clip(1, 2, time, seed + 1, &device);
        let mut state = m.init_state(1, TemporalFill::Replicate, &device);
        let streamed = step_all(&m, clip.clone(), &mut state);
        // Step s covers inputs s-rf+1..=s, and before frame 0 every frame is frame 0. The
        // offline network over the clip prefixed with P copies of frame 0 (P a multiple of
        // the stride, at least rf-1) has that window at output (P + s - delay) / stride.
        let prefix_len = (t.receptive_field - 1).div_ceil(t.stride) * t.stride;
        let mut parts = vec![clip.clone()];
        if prefix_len > 0 {
            parts.insert(0, clip.clone().narrow(2, 0, 1).repeat_dim(2, prefix_len));
        }
        let reference = m.forward(Tensor::cat(parts, 2));
        let picks: Vec<Tensor<B, 5>> = (0..time)
            .filter(|&s| t.emits_at(s as u64))
            .map(|s| reference.clone().narrow(2, (prefix_len + s - t.delay) / t.stride, 1))
            .collect();
        prop_assert_eq!(picks.len(), streamed.len());
        if !streamed.is_empty() {
            assert_close(stack_frames(streamed).unwrap(), Tensor::cat(picks, 2), &format!("{spec:?}"));
        }
    }
}
