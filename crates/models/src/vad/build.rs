//! The Silero VAD network from the continual modules.

use burn::prelude::*;
use costream_continual::{
    Activation, ActivationKind, CoConvConfig, CoLayer, Lambda, Overlap, RecurrentConfig,
    RecurrentKind, Sequential,
};

use super::config::SileroVadConfig;
use crate::error::LoadError;

/// Builds the network `config` describes, with PyTorch's default initialisation (load weights
/// with [`super::load_silero_vad_weights`]).
///
/// Children and their weight keys: `overlap`, `reflect_pad`, `stft_conv` (the Fourier basis,
/// `[2·frequencies, 1, 1, n_fft]`), `magnitude`, `conv1`…`conv4` (`[out, in, 1, 3]`, with
/// `relu1`…), `lstm_cell` (`weight_ih_l0`, …), `relu`, `final_conv` (`[1, hidden, 1, 1]`),
/// `sigmoid`.
///
/// # Shapes
/// - frame: `[rows, 1, chunk, 1]`; step output: `[rows, 1, 1, 1]`, the speech probability
/// - clip: `[B, 1, T, chunk, 1]`; offline output: `[B, 1, T, 1, 1]`
///
/// # Errors
/// [`LoadError::Config`] when `config` does not validate.
pub fn build_silero_vad<B: Backend>(
    config: &SileroVadConfig,
    device: &B::Device,
) -> Result<Sequential<B>, LoadError> {
    config.validate()?;
    let mut layers: Vec<(String, CoLayer<B>)> = vec![
        ("overlap".into(), Overlap::new(config.context)?.into()),
        (
            "reflect_pad".into(),
            reflect_pad_end::<B>(config.reflect_pad).into(),
        ),
        (
            "stft_conv".into(),
            CoConvConfig::conv2d([1, 2 * config.frequencies()], [1, config.filter_length])
                .with_stride([1, config.hop, 1])
                .with_bias(false)
                .init(device)?
                .into(),
        ),
        ("magnitude".into(), magnitude::<B>().into()),
    ];
    let mut channels = config.frequencies();
    for (i, layer) in config.encoder.iter().enumerate() {
        let conv = CoConvConfig::conv2d([channels, layer.channels], [1, 3])
            .with_stride([1, layer.stride, 1])
            .with_padding([0, 1, 0])
            .init(device)?;
        layers.push((format!("conv{}", i + 1), conv.into()));
        layers.push((format!("relu{}", i + 1), relu()));
        channels = layer.channels;
    }
    let lstm = RecurrentConfig::new(RecurrentKind::Lstm, channels, config.hidden).init(device)?;
    layers.push(("lstm_cell".into(), lstm.into()));
    layers.push(("relu".into(), relu()));
    let head = CoConvConfig::conv2d([config.hidden, 1], [1, 1]).init(device)?;
    layers.push(("final_conv".into(), head.into()));
    layers.push((
        "sigmoid".into(),
        Activation::new(ActivationKind::Sigmoid).into(),
    ));
    Ok(Sequential::named(layers))
}

fn relu<B: Backend>() -> CoLayer<B> {
    Activation::new(ActivationKind::Relu).into()
}

/// Mirrors the last `pad` samples before the end of each frame after it, without repeating the
/// edge (PyTorch's `reflect` padding on the right): `x[n + k] = x[n − 2 − k]`.
///
/// # Shapes
/// - frames: `[N, C, n, W]` with `n > pad`; output: `[N, C, n + pad, W]`
fn reflect_pad_end<B: Backend>(pad: usize) -> Lambda<B> {
    Lambda::new(move |frames: Tensor<B, 4>| {
        if pad == 0 {
            return frames;
        }
        let n = frames.dims()[2];
        let mirrored = frames.clone().narrow(2, n - 1 - pad, pad).flip([2]);
        Tensor::cat(vec![frames, mirrored], 2)
    })
}

/// The STFT magnitude from the basis' output: the first half of the channels are the real
/// parts, the second half the imaginary parts; `sqrt(re² + im²)`.
///
/// # Shapes
/// - frames: `[N, 2F, H, W]`; output: `[N, F, H, W]`
fn magnitude<B: Backend>() -> Lambda<B> {
    Lambda::new(|frames: Tensor<B, 4>| {
        let [n, channels, h, w] = frames.dims();
        let half = channels / 2;
        // Squares of the whole (contiguous) tensor, then the sum of its two halves as a
        // reduction: element-wise ops on the halves as slices are several times slower on
        // flex.
        (frames.clone() * frames)
            .reshape([n, 2, half * h * w])
            .sum_dim(1)
            .sqrt()
            .reshape([n, half, h, w])
    })
}
