//! Sequence modules against PyTorch and continual-inference: vectors written by
//! `tools/reference/sequence_vectors.py` (`tests/data/sequence_reference.safetensors`).
//!
//! - the fixed cyclic positional tables equal the reference's;
//! - RNN, GRU and LSTM (2 layers): the offline run and the steps equal torch's output;
//! - transformer encoders of 3 and 4 layers (post- and pre-norm, ReLU and GELU, a final
//!   norm), and 1 and 2 layers with query logits scaled ×100: the offline windows and the
//!   steps equal `torch.nn.TransformerEncoder` on every window, last token and whole window.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    clip_frames, load_checkpoint, stack_frames, ActivationKind, CoModule, EncoderLayerConfig,
    EncoderOutput, PositionalTable, RecurrentConfig, RecurrentKind, RecyclingPositionalEncoding,
    TemporalFill, TransformerEncoderConfig, Weights,
};
use costream_testkit::{check_close, values};

type B = TestBackend;

const DATA: &[u8] = include_bytes!("../data/sequence_reference.safetensors");

fn weights(prefix: &str) -> Weights {
    Weights::from_safetensors(DATA, prefix).unwrap()
}

fn config(name: &str) -> serde_json::Value {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(DATA).unwrap();
    let all: serde_json::Value =
        serde_json::from_str(&metadata.metadata().as_ref().unwrap()["config"]).unwrap();
    all[name].clone()
}

/// Tensor `key` of the file as a rank-`D` tensor of its stored shape padded with unit dims.
fn tensor<const D: usize>(key: &str, device: &burn::tensor::Device<B>) -> Tensor<B, D> {
    let mut all = weights("");
    let shape = all.iter().find(|(k, _)| *k == key).unwrap().1.shape.clone();
    let raw = all.take_raw(key, &shape).unwrap();
    let mut dims = [1; D];
    dims[..shape.len()].copy_from_slice(&shape);
    Tensor::from_data(TensorData::new(raw.values, dims), device)
}

fn close(what: &str, actual: Vec<f32>, expected: Vec<f32>) {
    let detail = check_close(what, &actual, &expected).unwrap_or_else(|e| panic!("{e}"));
    println!("{detail}");
}

/// Steps `module` through `input` from a zero state and stacks the outputs.
fn steps(module: &impl CoModule<B>, input: Tensor<B, 5>) -> Tensor<B, 5> {
    let device = input.device();
    let mut state = module.init_state(input.dims()[0], TemporalFill::Zeros, &device);
    let outputs = clip_frames(input)
        .filter_map(|frame| module.forward_step(frame, &mut state))
        .collect();
    stack_frames(outputs).unwrap()
}

#[test]
fn cyclic_positional_tables_equal_the_reference() {
    let device = Default::default();
    for (d, num) in [(2, 4), (3, 7), (16, 15), (10, 31), (64, 100)] {
        let ours = RecyclingPositionalEncoding::<B>::new(d, num, PositionalTable::Cyclic, &device)
            .unwrap();
        let reference: Tensor<B, 2> = tensor(&format!("cyclic.{d}x{num}"), &device);
        close(
            &format!("cyclic {d}x{num}"),
            values(ours.table.val()),
            values(reference),
        );
    }
}

#[test]
fn recurrent_layers_equal_torch_offline_and_stepped() {
    let device = Default::default();
    for (name, kind) in [
        ("rnn_tanh", RecurrentKind::RnnTanh),
        ("rnn_relu", RecurrentKind::RnnRelu),
        ("gru", RecurrentKind::Gru),
        ("lstm", RecurrentKind::Lstm),
    ] {
        let c = config(name);
        let size = |k: &str| c[k].as_u64().unwrap() as usize;
        let mut module = RecurrentConfig::new(kind, size("input_size"), size("hidden_size"))
            .with_layers(size("layers"))
            .init::<B>(&device)
            .unwrap();
        let mut w = weights(&format!("{name}."));
        w.discard("input");
        w.discard("output");
        load_checkpoint(&mut module, w).unwrap();
        let input: Tensor<B, 5> = tensor(&format!("{name}.input"), &device);
        let expected = values(tensor::<5>(&format!("{name}.output"), &device));
        close(
            &format!("{name} offline"),
            values(module.forward(input.clone())),
            expected.clone(),
        );
        close(
            &format!("{name} steps"),
            values(steps(&module, input)),
            expected,
        );
    }
}

#[test]
fn transformer_encoders_equal_torch_on_every_window() {
    let device = Default::default();
    for name in [
        "enc_deep3",
        "enc_deep4_gelu_prenorm",
        "enc_single_scaled",
        "enc_two_scaled",
    ] {
        let c = config(name);
        let size = |k: &str| c[k].as_u64().unwrap() as usize;
        let activation = match c["activation"].as_str().unwrap() {
            "gelu" => ActivationKind::Gelu,
            _ => ActivationKind::Relu,
        };
        let layer =
            EncoderLayerConfig::new(size("d_model"), size("heads"), size("dim_feedforward"))
                .with_activation(activation)
                .with_norm_first(c["norm_first"].as_bool().unwrap());
        let input: Tensor<B, 5> = tensor(&format!("{name}.input"), &device);
        for (output, key) in [
            (EncoderOutput::Last, "last"),
            (EncoderOutput::Window, "window"),
        ] {
            let mut encoder =
                TransformerEncoderConfig::new(layer, size("layers"), size("sequence_len"))
                    .with_output(output)
                    .with_final_norm(c["final_norm"].as_bool().unwrap())
                    .init::<B>(&device)
                    .unwrap();
            let mut w = weights(&format!("{name}."));
            for extra in ["input", "last", "window"] {
                w.discard(extra);
            }
            load_checkpoint(&mut encoder, w).unwrap();
            let expected = values(tensor::<5>(&format!("{name}.{key}"), &device));
            let stepped = values(steps(&encoder, input.clone()));
            assert!(
                stepped.iter().all(|v| v.is_finite()),
                "{name} {key}: non-finite step output"
            );
            close(
                &format!("{name} {key} offline"),
                values(encoder.forward(input.clone())),
                expected.clone(),
            );
            close(&format!("{name} {key} steps"), stepped, expected);
        }
    }
}
