//! Property tests of the continual transformer encoder over random sizes, depths 1–4,
//! windows of 1–7 tokens and both output forms:
//!
//! - the step at `t` equals the offline encoder on the window ending at `t` (`forward`);
//! - with query logits scaled ×100, steps stay finite wherever the offline result is, and
//!   still equal it;
//! - a batch of streams equals each stream stepped alone;
//! - a snapshot taken mid-stream and restored continues identically;
//! - the positional encoding gives each stream of a batch its own position.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    clip_frames, load_checkpoint, save_checkpoint, stack_frames, ActivationKind, CoModule,
    EncoderLayerConfig, EncoderOutput, PositionalTable, RecyclingPositionalEncoding, TemporalFill,
    TransformerEncoder, TransformerEncoderConfig, WeightTensor,
};
use costream_testkit::{assert_close, proptest_cases, values};
use proptest::prelude::*;

type B = TestBackend;

/// A random encoder, described so that proptest can shrink and print it.
#[derive(Debug, Clone)]
struct Spec {
    heads: usize,
    head_dim: usize,
    ff: usize,
    layers: usize,
    window: usize,
    extra: usize,
    gelu: bool,
    norm_first: bool,
    final_norm: bool,
    whole_window: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (1usize..4, 1usize..5, 1usize..9, 1usize..5),
        (1usize..8, 0usize..8),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (heads, head_dim, ff, layers),
                (window, extra),
                (gelu, norm_first, final_norm, whole_window),
            )| Spec {
                heads,
                head_dim,
                ff,
                layers,
                window,
                extra,
                gelu,
                norm_first,
                final_norm,
                whole_window,
            },
        )
}

impl Spec {
    fn d(&self) -> usize {
        self.heads * self.head_dim
    }

    fn build(&self, seed: u64, device: &Device<B>) -> TransformerEncoder<B> {
        B::seed(device, seed);
        let layer = EncoderLayerConfig::new(self.d(), self.heads, self.ff)
            .with_activation(if self.gelu {
                ActivationKind::Gelu
            } else {
                ActivationKind::Relu
            })
            .with_norm_first(self.norm_first);
        TransformerEncoderConfig::new(layer, self.layers, self.window)
            .with_output(if self.whole_window {
                EncoderOutput::Window
            } else {
                EncoderOutput::Last
            })
            .with_final_norm(self.final_norm)
            .init(device)
            .unwrap()
    }

    fn clip(&self, batch: usize, seed: u64, device: &Device<B>) -> Tensor<B, 5> {
        B::seed(device, seed.wrapping_add(1));
        let time = self.window + self.extra;
        Tensor::random(
            [batch, self.d(), time, 1, 1],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        )
    }
}

/// Every step's output, in order (`None` while filling).
fn step_all(
    m: &impl CoModule<B>,
    clip: Tensor<B, 5>,
    state: &mut costream_continual::State<B>,
) -> Vec<Option<Tensor<B, 4>>> {
    clip_frames(clip)
        .map(|frame| m.forward_step(frame, state))
        .collect()
}

fn stepped(m: &impl CoModule<B>, clip: Tensor<B, 5>) -> Option<Tensor<B, 5>> {
    let device = clip.device();
    let mut state = m.init_state(clip.dims()[0], TemporalFill::Zeros, &device);
    stack_frames(
        step_all(m, clip, &mut state)
            .into_iter()
            .flatten()
            .collect(),
    )
}

/// Multiplies every layer's query projection (weights and bias) by `factor`.
fn scale_queries(m: &mut TransformerEncoder<B>, d: usize, factor: f32) {
    let mut weights = save_checkpoint(m);
    let keys: Vec<String> = weights
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| {
            k.ends_with("self_attn.in_proj_weight") || k.ends_with("self_attn.in_proj_bias")
        })
        .collect();
    for key in keys {
        let shape = weights
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap()
            .1
            .shape
            .clone();
        let mut tensor = weights.take_raw(&key, &shape).unwrap();
        // Rows 0..d are the query projection: d·cols values in row-major order.
        let cols = if shape.len() == 2 { shape[1] } else { 1 };
        tensor.values[..d * cols]
            .iter_mut()
            .for_each(|v| *v *= factor);
        weights.insert(
            key,
            WeightTensor {
                shape,
                values: tensor.values,
            },
        );
    }
    load_checkpoint(m, weights).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(24)))]

    #[test]
    fn steps_equal_the_offline_encoder_on_each_window(spec in spec(), seed in 0u64..1000) {
        let device = Default::default();
        let m = spec.build(seed, &device);
        let clip = spec.clip(2, seed, &device);
        let offline = m.forward(clip.clone());
        let steps = stepped(&m, clip).unwrap();
        prop_assert_eq!(steps.dims(), offline.dims());
        assert_close(steps, offline, "steps vs offline windows");
    }

    #[test]
    fn large_logits_stay_finite_and_exact(spec in spec(), seed in 0u64..1000) {
        let device = Default::default();
        let mut m = spec.build(seed, &device);
        scale_queries(&mut m, spec.d(), 100.0);
        let clip = spec.clip(2, seed, &device);
        let offline = values(m.forward(clip.clone()));
        prop_assume!(offline.iter().all(|v| v.is_finite()));
        let steps = values(stepped(&m, clip).unwrap());
        prop_assert!(steps.iter().all(|v| v.is_finite()), "non-finite step output");
        costream_testkit::check_close("steps vs offline (x100 logits)", &steps, &offline)
            .map_err(TestCaseError::fail)?;
    }

    #[test]
    fn a_batch_equals_its_streams_alone(spec in spec(), seed in 0u64..1000) {
        let device = Default::default();
        let m = spec.build(seed, &device);
        let clip = spec.clip(3, seed, &device);
        let batched = stepped(&m, clip.clone()).unwrap();
        for row in 0..3 {
            let alone = stepped(&m, clip.clone().narrow(0, row, 1)).unwrap();
            assert_close(batched.clone().narrow(0, row, 1), alone, "row alone vs in batch");
        }
    }

    #[test]
    fn snapshot_and_restore_continue_identically(spec in spec(), seed in 0u64..1000, cut in 1usize..10) {
        let device = Default::default();
        let m = spec.build(seed, &device);
        let clip = spec.clip(2, seed, &device);
        let time = clip.dims()[2];
        prop_assume!(time >= 2);
        let cut = cut.min(time - 1);
        let mut state = m.init_state(2, TemporalFill::Zeros, &device);
        step_all(&m, clip.clone().narrow(2, 0, cut), &mut state);
        let bytes = state.snapshot();
        let mut restored = m.init_state(2, TemporalFill::Zeros, &device);
        restored.restore(&bytes).unwrap();
        let rest = clip.narrow(2, cut, time - cut);
        let a: Vec<Option<Vec<f32>>> = step_all(&m, rest.clone(), &mut state).into_iter().map(|o| o.map(values)).collect();
        let b: Vec<Option<Vec<f32>>> = step_all(&m, rest, &mut restored).into_iter().map(|o| o.map(values)).collect();
        prop_assert_eq!(a, b, "restored stream diverged");
    }
}

#[test]
fn positional_encoding_gives_each_stream_its_own_position() {
    let device = Default::default();
    let pe = RecyclingPositionalEncoding::<B>::new(4, 5, PositionalTable::Cyclic, &device).unwrap();
    let frames: Tensor<B, 5> = Tensor::random(
        [2, 4, 9, 1, 1],
        burn::tensor::Distribution::Default,
        &device,
    );
    // Stream 0 starts 3 frames before stream 1; from then on they step as one batch.
    let mut early = pe.init_state(1, TemporalFill::Zeros, &device);
    step_all(
        &pe,
        frames.clone().narrow(0, 0, 1).narrow(2, 0, 3),
        &mut early,
    );
    let mut batch = early;
    batch
        .append(pe.init_state(1, TemporalFill::Zeros, &device))
        .unwrap();
    let together = stack_frames(
        step_all(&pe, frames.clone().narrow(2, 3, 6), &mut batch)
            .into_iter()
            .flatten()
            .collect(),
    )
    .unwrap();
    // Alone, each is the offline encoding of its own clip from its own first frame.
    let stream0 = pe.forward(frames.clone().narrow(0, 0, 1)).narrow(2, 3, 6);
    let stream1 = pe.forward(frames.narrow(0, 1, 1).narrow(2, 3, 6));
    assert_close(together.clone().narrow(0, 0, 1), stream0, "stream 0");
    assert_close(together.narrow(0, 1, 1), stream1, "stream 1");
}
