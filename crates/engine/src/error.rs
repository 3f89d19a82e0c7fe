//! The engine's errors: start-up, opening a stream, submitting to it, and bad frames.

use costream_continual::StateError;

/// Start-up and engine-wide failures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The configuration is invalid (`model` empty for file-level problems).
    #[error("invalid configuration{}: {message}", if model.is_empty() { String::new() } else { format!(" of model `{model}`") })]
    Config {
        /// The model concerned.
        model: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The requested device is not compiled in or does not exist.
    #[error("device `{device}` for model `{model}`: {message}")]
    Device {
        /// The device as named.
        device: String,
        /// The model that asked for it.
        model: String,
        /// Why it cannot be used.
        message: String,
    },
    /// A model could not be built or its weights loaded.
    #[error("model `{model}`: {message}")]
    Load {
        /// The model.
        model: String,
        /// The loader's error (names the file and key).
        message: String,
    },
    /// A snapshot does not belong to this model or is damaged.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// The device thread has stopped (shut down, or it failed).
    #[error("the engine has stopped")]
    Stopped,
}

impl From<StateError> for EngineError {
    fn from(e: StateError) -> Self {
        EngineError::Snapshot(e.to_string())
    }
}

/// Why a stream was not opened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenError {
    /// No model of that name is served.
    #[error("unknown model `{model}`; served: {}", served.join(", "))]
    UnknownModel {
        /// The name asked for.
        model: String,
        /// The names served.
        served: Vec<String>,
    },
    /// Every slot and backlog place is taken.
    #[error(
        "model `{model}` is full: {capacity} streams active and {backlog} waiting; try again later"
    )]
    Full {
        /// The model.
        model: String,
        /// Its slots.
        capacity: usize,
        /// Its backlog places.
        backlog: usize,
    },
    /// A stream with this id is open.
    #[error("stream `{0}` is already open")]
    DuplicateId(String),
    /// The requested id is not usable.
    #[error("invalid stream id: {0}")]
    InvalidId(String),
    /// The snapshot to resume from does not fit this model.
    #[error(transparent)]
    Snapshot(#[from] EngineError),
}

/// Why a frame or command was not accepted by a stream.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// The frame is malformed; the stream is unaffected.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream has too many frames queued or unanswered: read its events first.
    #[error(
        "stream has {pending} frames pending (limit {limit}): read predictions before sending more"
    )]
    Backpressure {
        /// Frames queued or unanswered.
        pending: usize,
        /// The limit.
        limit: usize,
    },
    /// The stream has ended (by the client, idle reaping or shutdown).
    #[error("the stream has ended")]
    Ended,
    /// The engine's command queue is full (the device is overloaded).
    #[error("the engine is overloaded: its command queue is full")]
    Busy,
}

/// A frame that cannot be used, with what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// The payload kind does not fit the model's input.
    #[error("this model takes {expected}, not {found}")]
    WrongKind {
        /// What the model takes.
        expected: &'static str,
        /// What was sent.
        found: &'static str,
    },
    /// An encoded image that is neither JPEG nor PNG.
    #[error("unknown image encoding (first bytes {0:02x?}): send JPEG or PNG")]
    UnknownEncoding(Vec<u8>),
    /// The image decoder failed.
    #[error("cannot decode {format}: {message}")]
    Decode {
        /// JPEG or PNG.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The image has no pixels or exceeds the size limit.
    #[error("image of {width}×{height} pixels is outside 1×1 to {max_pixels} pixels")]
    ImageSize {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// The limit on width × height.
        max_pixels: usize,
    },
    /// Raw pixels whose byte count does not match the declared size.
    #[error("raw {format} image of {width}×{height} needs {expected} bytes, got {found}")]
    RawLength {
        /// The pixel format.
        format: &'static str,
        /// Declared width.
        width: usize,
        /// Declared height.
        height: usize,
        /// Bytes needed.
        expected: usize,
        /// Bytes sent.
        found: usize,
    },
    /// A tensor, skeleton or feature vector of the wrong shape.
    #[error("expected shape {expected:?}, got {found:?}")]
    Shape {
        /// The shape the model takes.
        expected: Vec<usize>,
        /// The shape sent.
        found: Vec<usize>,
    },
    /// Declared shape and value count disagree.
    #[error("shape {shape:?} holds {expected} values, got {found}")]
    Length {
        /// The declared shape.
        shape: Vec<usize>,
        /// Values the shape holds.
        expected: usize,
        /// Values sent.
        found: usize,
    },
    /// A skeleton frame with more persons than the model takes.
    #[error("the frame has {found} persons; this model takes at most {max} (send the main ones)")]
    Persons {
        /// Persons the model takes.
        max: usize,
        /// Persons sent.
        found: usize,
    },
    /// A skeleton frame with another joint count than the model's skeleton.
    #[error("the frame has {found} joints per person; this model's skeleton has {expected}")]
    Joints {
        /// The model's joints.
        expected: usize,
        /// Joints sent.
        found: usize,
    },
    /// Audio at another sample rate than the model's.
    #[error(
        "audio at {found} Hz: this model takes {expected} Hz (resample first; `costream stream` \
         does)"
    )]
    SampleRate {
        /// The model's rate.
        expected: u32,
        /// The rate sent.
        found: u32,
    },
    /// Audio of another length than one chunk.
    #[error("{found} samples: a frame is one chunk of {expected} samples")]
    Samples {
        /// Samples per chunk.
        expected: usize,
        /// Samples sent.
        found: usize,
    },
    /// A feature vector of another length than the model's input.
    #[error("a feature vector of {found} values: this model takes {expected} per frame")]
    Features {
        /// Features per frame.
        expected: usize,
        /// Values sent.
        found: usize,
    },
    /// A NaN or infinite value.
    #[error("value {index} is {value}: inputs must be finite")]
    NonFinite {
        /// Flat index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
}
