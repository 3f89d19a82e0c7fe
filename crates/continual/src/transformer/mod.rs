//! Continual transformer encoders (Continual Transformers, Hedegaard et al., ICLR 2023):
//! single-output and retroactive attention, encoder layers and stacks of any depth.
//!
//! - [`attention`]: multi-head self-attention weights and the offline window attention.
//! - [`layer`]: one encoder layer (post- or pre-norm, ReLU or exact GELU).
//! - [`retroactive`]: the stable running-sum update of every query of a window.
//! - [`encoder`]: the [`TransformerEncoder`] Co module, its per-step algorithm and costs.
//! - [`reference_key`]: continual-inference's weight names mapped onto torch's.

pub mod attention;
pub mod encoder;
mod keys;
pub mod layer;
mod retroactive;
mod ring;
mod window;

pub use attention::{InProjection, MultiheadAttention};
pub use encoder::{EncoderOutput, TransformerEncoder, TransformerEncoderConfig};
pub use keys::reference_key;
pub use layer::{EncoderLayer, EncoderLayerConfig};
