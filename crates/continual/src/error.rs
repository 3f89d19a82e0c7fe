//! Errors of the continual layer: module construction, weight loading and state handling.

/// A module configuration that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {module} configuration: {reason}")]
pub struct ConfigError {
    /// The module kind, e.g. `Conv`.
    pub module: &'static str,
    /// What is wrong, naming the offending values.
    pub reason: String,
}

impl ConfigError {
    /// An error of a `module` configuration, saying what is wrong.
    pub fn new(module: &'static str, reason: impl Into<String>) -> Self {
        ConfigError {
            module,
            reason: reason.into(),
        }
    }
}

/// A checkpoint that does not fit the module it is loaded into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightError {
    /// The module needs a key the checkpoint does not have.
    #[error("missing weight `{key}`")]
    Missing {
        /// Full PyTorch key name.
        key: String,
    },
    /// The checkpoint has keys no module consumed.
    #[error("unused weights in checkpoint: {}", keys.join(", "))]
    Unused {
        /// Every unused key, sorted.
        keys: Vec<String>,
    },
    /// A tensor has another shape than the module expects.
    #[error("weight `{key}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Full PyTorch key name.
        key: String,
        /// The shape the module needs.
        expected: Vec<usize>,
        /// The shape in the checkpoint.
        found: Vec<usize>,
    },
    /// A tensor has a data type that cannot be read as float32.
    #[error("weight `{key}` has unsupported dtype {dtype}")]
    Dtype {
        /// Full PyTorch key name.
        key: String,
        /// The dtype in the file.
        dtype: String,
    },
    /// A value in the checkpoint contradicts the module (e.g. a BatchNorm variance below 0).
    #[error("weight `{key}` is invalid: {reason}")]
    Invalid {
        /// Full PyTorch key name.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is not a readable checkpoint.
    #[error("cannot read checkpoint: {0}")]
    Format(String),
}

/// A state that cannot be restored or combined with another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The bytes are not a costream state snapshot.
    #[error("not a costream state snapshot (bad magic bytes)")]
    Magic,
    /// The snapshot was written by an incompatible format version.
    #[error(
        "state snapshot format version {found} is not supported (this build reads {supported})"
    )]
    Version {
        /// Version in the snapshot.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The snapshot ends early or has bytes left over.
    #[error("state snapshot is truncated or has trailing bytes at offset {offset}")]
    Truncated {
        /// Byte offset where reading failed.
        offset: usize,
    },
    /// The snapshot belongs to another module structure.
    #[error("state at `{path}` belongs to module `{found}`, expected `{expected}`")]
    Structure {
        /// Position of the node in the module tree, e.g. `root/1/0`.
        path: String,
        /// The module kind the receiving state has.
        expected: String,
        /// The module kind in the snapshot.
        found: String,
    },
    /// The number of streams (batch rows) does not match.
    #[error("state at `{path}` holds {found} streams, expected {expected}")]
    Rows {
        /// Position of the node in the module tree.
        path: String,
        /// Rows expected.
        expected: usize,
        /// Rows found.
        found: usize,
    },
    /// A buffer's shape does not match its counterpart.
    #[error("state buffer at `{path}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Position of the node in the module tree.
        path: String,
        /// Expected shape (batch dim excluded where rows differ).
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A row index is out of range or repeated.
    #[error("row index {row} is out of range or repeated for a batch of {batch}")]
    Row {
        /// The offending row.
        row: usize,
        /// The batch size.
        batch: usize,
    },
    /// A value in the snapshot is not valid (e.g. an unknown fill mode).
    #[error("state snapshot is invalid: {0}")]
    Invalid(String),
}
