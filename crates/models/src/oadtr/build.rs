//! The CoOadTR network from the continual modules.

use burn::prelude::*;
use costream_continual::{
    ActivationKind, EncoderLayerConfig, EncoderOutput, LinearConfig, RecyclingPositionalEncoding,
    Sequential, TransformerEncoderConfig,
};

use super::config::CoOadTrConfig;
use crate::error::LoadError;

/// Builds the network `config` describes, with PyTorch's default initialisation (load weights
/// with [`super::load_co_oadtr_weights`]).
///
/// Children and their weight keys (costream's own layout, which
/// [`costream_continual::save_checkpoint`] writes): `input` (`Linear(D_in → d)`: `weight`,
/// `bias`), `positional` (`pe.pattern` or `pe.weight`), `encoder` (post-norm layers with
/// exact GELU under `torch.nn.TransformerEncoder`'s names `layers.{i}.self_attn.*`,
/// `layers.{i}.linear1.*`, …, and the pre-head LayerNorm as its final `norm.*`),
/// `classifier` (`Linear(d → classes)`). A step returns the classes' logits.
///
/// # Shapes
/// - frame: `[rows, D_in, 1, 1]`; step output: `[rows, classes, 1, 1]` once `window` frames
///   have arrived
/// - clip: `[B, D_in, T, 1, 1]`; offline output: `[B, classes, T − window + 1, 1, 1]`, the
///   logits of the last token of every window
///
/// # Errors
/// [`LoadError::Config`] when `config` does not validate.
pub fn build_co_oadtr<B: Backend>(
    config: &CoOadTrConfig,
    device: &B::Device,
) -> Result<Sequential<B>, LoadError> {
    config.validate()?;
    let layer = EncoderLayerConfig::new(config.d_model, config.heads, config.feedforward)
        .with_activation(ActivationKind::Gelu)
        .with_bias(config.attention_bias);
    let encoder = TransformerEncoderConfig::new(layer, config.layers, config.window)
        .with_output(EncoderOutput::Last)
        .with_final_norm(true)
        .init(device)?;
    let positional = RecyclingPositionalEncoding::new(
        config.d_model,
        config.positions,
        config.positional,
        device,
    )?;
    Ok(Sequential::named(vec![
        (
            "input",
            LinearConfig::new([config.input_features, config.d_model])
                .init(device)
                .into(),
        ),
        ("positional", positional.into()),
        ("encoder", encoder.into()),
        (
            "classifier",
            LinearConfig::new([config.d_model, config.classes])
                .init(device)
                .into(),
        ),
    ]))
}
