//! `Sequential::fold_into_convs`: steps with BatchNorms and activations folded into the
//! convs before them give the unfolded network's outputs (to rounding), for every kind of
//! conv step (grouped with temporal taps and a bias, depthwise, pointwise on planes the CPU
//! kernel takes and on smaller ones, strided 1×1, spatial kernels), for every activation
//! kind, with and without a BatchNorm between, in nested containers, through the end
//! padding; the offline forward and the saved weights do not change; loading weights undoes
//! the fold.
#![allow(clippy::unwrap_used)]

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use costream_backend::TestBackend;
use costream_continual::{
    save_checkpoint, Activation, ActivationKind, BatchNormConfig, BroadcastReduce, CoConvConfig,
    CoLayer, CoModule, Reduce, Sequential, TemporalFill,
};
use costream_testkit::assert_close;

type B = TestBackend;

fn conv(config: CoConvConfig, device: &Device<B>) -> CoLayer<B> {
    config.init(device).unwrap().into()
}

/// A BatchNorm with a random scale and shift (not the identity it starts as).
fn batch_norm(channels: usize, device: &Device<B>) -> CoLayer<B> {
    let mut norm = BatchNormConfig::new(channels).init(device);
    norm.scale = Param::from_tensor(Tensor::random(
        [channels],
        Distribution::Uniform(0.5, 2.0),
        device,
    ));
    norm.shift = Param::from_tensor(Tensor::random(
        [channels],
        Distribution::Uniform(-1.0, 1.0),
        device,
    ));
    norm.into()
}

fn act(kind: ActivationKind) -> CoLayer<B> {
    Activation::new(kind).into()
}

/// Every kind of conv step, most followed by a BatchNorm, an activation or both, in nested
/// containers. On 8×8 frames, the pointwise convs see planes of 16 values (which the CPU
/// kernel takes), 4 and 1 (which it leaves to burn's matrix product).
fn network(device: &Device<B>) -> Sequential<B> {
    let grouped = CoConvConfig::new([4, 6], [3, 3, 3])
        .with_padding([1, 1, 1])
        .with_groups(2);
    let depthwise = CoConvConfig::new([6, 6], [3, 3, 3])
        .with_padding([1, 1, 1])
        .with_stride([1, 2, 2])
        .with_groups(6)
        .with_bias(false);
    let pointwise = CoConvConfig::new([6, 6], [1, 1, 1]);
    let strided = CoConvConfig::new([4, 6], [1, 1, 1])
        .with_stride([1, 2, 2])
        .with_bias(false);
    let branch = Sequential::new(vec![
        conv(grouped, device),
        batch_norm(6, device),
        act(ActivationKind::Relu),
        conv(depthwise, device),
        batch_norm(6, device),
        act(ActivationKind::Silu),
        conv(pointwise.clone(), device),
        batch_norm(6, device),
        act(ActivationKind::Relu),
        conv(pointwise.clone(), device),
        batch_norm(6, device),
    ]);
    let shortcut = Sequential::new(vec![
        conv(strided, device),
        batch_norm(6, device),
        act(ActivationKind::Sigmoid),
    ]);
    let block =
        BroadcastReduce::new(vec![branch.into(), shortcut.into()], Reduce::Sum, true).unwrap();
    // Activations directly after a conv, and pointwise convs on 2×2 and 1×1 planes.
    let spatial = || {
        CoConvConfig::new([6, 6], [1, 3, 3])
            .with_stride([1, 2, 2])
            .with_padding([0, 1, 1])
    };
    let tail = Sequential::new(vec![
        conv(spatial(), device),
        act(ActivationKind::Tanh),
        conv(pointwise.clone(), device),
        act(ActivationKind::Relu),
        conv(spatial(), device),
        conv(pointwise, device),
        act(ActivationKind::Relu),
        conv(CoConvConfig::new([6, 4], [1, 1, 1]), device),
        batch_norm(4, device),
        act(ActivationKind::Gelu),
    ]);
    Sequential::new(vec![block.into(), tail.into()])
}

fn steps(network: &Sequential<B>, clip: &Tensor<B, 5>) -> Tensor<B, 5> {
    let device = clip.device();
    let mut state = network.init_state(clip.dims()[0], TemporalFill::Zeros, &device);
    network
        .forward_steps(clip.clone(), &mut state, true)
        .unwrap()
}

#[test]
fn folded_steps_match_and_nothing_else_changes() {
    let device = Default::default();
    B::seed(&device, 3);
    let unfolded = network(&device);
    let mut folded = unfolded.clone();
    folded.fold_into_convs();
    // Folding twice folds nothing more.
    folded.fold_into_convs();
    let clip = Tensor::<B, 5>::random([2, 4, 9, 8, 8], Distribution::Default, &device);
    assert_close(steps(&folded, &clip), steps(&unfolded, &clip), "steps");
    let offline = |network: &Sequential<B>| network.forward(clip.clone()).into_data();
    assert_eq!(offline(&folded), offline(&unfolded), "offline forward");
    assert_eq!(
        save_checkpoint(&folded).to_safetensors(None).unwrap(),
        save_checkpoint(&unfolded).to_safetensors(None).unwrap(),
        "saved weights"
    );
}

#[test]
fn loading_weights_undoes_the_fold() {
    let device = Default::default();
    B::seed(&device, 4);
    let mut network_a = network(&device);
    network_a.fold_into_convs();
    // Other weights, BatchNorms included, loaded into the folded network: its steps are
    // the other network's, not a mix with the old folded copies.
    let other = network(&device);
    let mut weights = save_checkpoint(&other);
    network_a.load_weights(&mut weights, "").unwrap();
    let clip = Tensor::<B, 5>::random([1, 4, 7, 8, 8], Distribution::Default, &device);
    assert_eq!(
        steps(&network_a, &clip).into_data(),
        steps(&other, &clip).into_data()
    );
}
