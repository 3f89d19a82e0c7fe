//! Errors of model construction and checkpoint loading.

use std::path::PathBuf;

use costream_continual::{ConfigError, WeightError};

/// Why a model could not be built or its weights loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be opened or is not a checkpoint in a known format.
    #[error("cannot read checkpoint {}: {reason}", path.display())]
    Read {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong, as the parser reports it.
        reason: String,
    },
    /// The checkpoint's key names belong to no naming family this model knows.
    #[error("checkpoint {} is not {model}: {reason}", path.display())]
    Family {
        /// The checkpoint file.
        path: PathBuf,
        /// The model it was loaded for.
        model: String,
        /// What was looked for and not found.
        reason: String,
    },
    /// The tensors do not fit the network: a missing, unused or mis-shaped key.
    #[error("checkpoint {} does not fit {model}: {source}", path.display())]
    Weights {
        /// The checkpoint file.
        path: PathBuf,
        /// The model it was loaded for.
        model: String,
        /// The key-level error.
        source: WeightError,
    },
    /// The model's configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}
