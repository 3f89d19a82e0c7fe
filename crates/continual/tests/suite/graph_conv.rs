//! The spatial graph convolution equals a direct evaluation of its formula for both checkpoint
//! layouts, loads the tensors it saves, and names what is wrong with a checkpoint.
#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use costream_backend::TestBackend;
use costream_continual::{
    load_checkpoint, save_checkpoint, CoModule, GraphConv, GraphConvConfig, GraphConvLayout,
    WeightTensor, Weights,
};
use costream_testkit::{assert_close, max_abs_diff, values};

type B = TestBackend;

const K: usize = 3;
const V: usize = 5;
const C_IN: usize = 4;
const C_OUT: usize = 6;
const N: usize = 2;

/// Deterministic uneven values.
fn pattern(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 31 + salt * 17) % 29) as f32 - 14.0) / 10.0)
        .collect()
}

fn tensor(shape: &[usize], salt: usize) -> WeightTensor {
    WeightTensor {
        shape: shape.to_vec(),
        values: pattern(shape.iter().product(), salt),
    }
}

/// A checkpoint of `layout` with uneven values, and the weights as `[k][co][ci]`, biases
/// `[k][co]` and the masked graph `[k][v][w]` for the direct evaluation.
#[allow(clippy::type_complexity)]
fn checkpoint(layout: GraphConvLayout) -> (Weights, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut weights = Weights::new();
    let a = tensor(&[K, V, V], 1);
    let mask = tensor(&[K, V, V], 2);
    let graph: Vec<f32> = a
        .values
        .iter()
        .zip(&mask.values)
        .map(|(a, m)| a * m)
        .collect();
    let (w, b);
    match layout {
        GraphConvLayout::Mmskeleton => {
            let conv = tensor(&[K * C_OUT, C_IN, 1, 1], 3);
            let bias = tensor(&[K * C_OUT], 4);
            (w, b) = (conv.values.clone(), bias.values.clone());
            weights.insert("conv.weight", conv);
            weights.insert("conv.bias", bias);
            weights.insert("edge_importance", mask);
        }
        GraphConvLayout::PerSubset => {
            let (mut ws, mut bs) = (Vec::new(), Vec::new());
            for k in 0..K {
                let conv = tensor(&[C_OUT, C_IN, 1, 1], 10 + k);
                let bias = tensor(&[C_OUT], 20 + k);
                ws.extend_from_slice(&conv.values);
                bs.extend_from_slice(&bias.values);
                weights.insert(format!("g_conv.{k}.weight"), conv);
                weights.insert(format!("g_conv.{k}.bias"), bias);
            }
            (w, b) = (ws, bs);
            weights.insert("graph_attn", mask);
        }
    }
    weights.insert("A", a);
    (weights, w, b, graph)
}

/// The formula of the module docs, evaluated term by term: `x` is `[n][ci][v]`.
fn direct(layout: GraphConvLayout, x: &[f32], w: &[f32], b: &[f32], g: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f64; N * C_OUT * V];
    for n in 0..N {
        for co in 0..C_OUT {
            for wj in 0..V {
                let mut sum = 0.0f64;
                for k in 0..K {
                    for v in 0..V {
                        let mut mixed = 0.0f64;
                        for ci in 0..C_IN {
                            mixed += f64::from(w[(k * C_OUT + co) * C_IN + ci])
                                * f64::from(x[(n * C_IN + ci) * V + v]);
                        }
                        if layout == GraphConvLayout::Mmskeleton {
                            mixed += f64::from(b[k * C_OUT + co]);
                        }
                        sum += mixed * f64::from(g[(k * V + v) * V + wj]);
                    }
                    if layout == GraphConvLayout::PerSubset {
                        sum += f64::from(b[k * C_OUT + co]);
                    }
                }
                y[(n * C_OUT + co) * V + wj] = sum;
            }
        }
    }
    y.into_iter().map(|v| v as f32).collect()
}

fn layer(layout: GraphConvLayout, device: &Device<B>) -> GraphConv<B> {
    GraphConvConfig::new([C_IN, C_OUT], [K, V])
        .with_layout(layout)
        .init(None, device)
        .unwrap()
}

#[test]
fn both_layouts_equal_the_formula_per_frame_and_over_a_clip() {
    let device = Default::default();
    for layout in [GraphConvLayout::Mmskeleton, GraphConvLayout::PerSubset] {
        let (weights, w, b, g) = checkpoint(layout);
        let mut conv = layer(layout, &device);
        load_checkpoint(&mut conv, weights).unwrap();
        let x = pattern(N * C_IN * V, 5);
        let frame = Tensor::<B, 4>::from_data(TensorData::new(x.clone(), [N, C_IN, V, 1]), &device);
        let expected = direct(layout, &x, &w, &b, &g);
        let mut state = conv.init_state(N, Default::default(), &device);
        let step = conv.forward_step(frame.clone(), &mut state).unwrap();
        assert_eq!(step.dims(), [N, C_OUT, V, 1]);
        let expected_frame =
            Tensor::<B, 4>::from_data(TensorData::new(expected.clone(), [N, C_OUT, V, 1]), &device);
        assert_close(step, expected_frame, &format!("{layout:?} step"));
        // A clip of two identical frames gives the same values at both times.
        let clip = Tensor::stack::<5>(vec![frame.clone(), frame], 2);
        let offline = values(conv.forward(clip).permute([2, 0, 1, 3, 4]));
        let twice: Vec<f32> =
            values(Tensor::<B, 1>::from_floats(expected.as_slice(), &device).repeat_dim(0, 2));
        assert!(max_abs_diff(&offline, &twice) < 1e-4, "{layout:?} clip");
    }
}

#[test]
fn saved_tensors_load_back_under_the_same_names() {
    let device = Default::default();
    for layout in [GraphConvLayout::Mmskeleton, GraphConvLayout::PerSubset] {
        let (weights, ..) = checkpoint(layout);
        let mut expected: Vec<(String, WeightTensor)> = weights
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect();
        let mut conv = layer(layout, &device);
        load_checkpoint(&mut conv, weights).unwrap();
        let saved = save_checkpoint(&conv);
        let mut got: Vec<(String, WeightTensor)> = saved
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got.len(), expected.len(), "{layout:?}");
        for ((gk, gt), (ek, et)) in got.iter().zip(&expected) {
            assert_eq!((gk, &gt.shape), (ek, &et.shape));
            assert!(
                max_abs_diff(&gt.values, &et.values) == 0.0,
                "{layout:?} {gk}"
            );
        }
    }
}

#[test]
fn a_wrong_checkpoint_or_adjacency_is_named() {
    let device = Default::default();
    let (mut weights, ..) = checkpoint(GraphConvLayout::PerSubset);
    weights.insert("A", tensor(&[K, V + 1, V + 1], 1));
    let mut conv = layer(GraphConvLayout::PerSubset, &device);
    let err = load_checkpoint(&mut conv, weights).unwrap_err().to_string();
    assert!(
        err.contains("`A`") || err.contains("A:") || err.contains(" A "),
        "{err}"
    );
    let err = GraphConvConfig::new([C_IN, C_OUT], [K, V])
        .init::<B>(Some(&[0.0; 7]), &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("holds 7 values"), "{err}");
}
