//! What the engine serves: models with their weights, device and limits, from a TOML file or
//! built in code.
//!
//! ```toml
//! [[model]]
//! name = "cox3d-s"          # the name clients ask for
//! family = "x3d"            # model family: x3d (video), stgcn (skeletons), vad (audio),
//!                           # transformer (feature vectors)
//! variant = "s"             # x3d: xs, s, m, l, tiny, tiny-nose, synthetic-actions;
//!                           # stgcn: ntu60, ntu120, kinetics (+ "-mod": every frame);
//!                           # vad: silero-16k; transformer: b1-/b2- + thumos-anet,
//!                           # thumos-kin, tvseries, tiny
//! weights = "x3d_s.pyth"    # checkpoint (relative to this file), "builtin" or "random:SEED"
//! device = "cpu"            # cpu, wgpu[:N], cuda[:N]
//! pool_window = 64          # optional: prediction window in frames (CoX3D-*64)
//! num_classes = 400         # optional: classifier width (default: the variant's)
//! labels = "labels.txt"     # optional: one class name per line (default: Kinetics-400)
//! capacity = 16             # streams stepped at once (state slots)
//! backlog = 8               # streams waiting for a slot before new ones are refused
//! idle_timeout_s = 60       # an active stream without frames this long is ended
//! max_pending_frames = 8    # frames a stream may have queued or unanswered
//! max_batch = 16            # streams stepped in one batch
//! max_wait_ms = 2           # how long a ready frame waits for others to join its batch
//! max_image_pixels = 40000000  # largest image decoded (JPEG, PNG, raw), in pixels
//! warmup = "auto"           # none, single, batches, auto
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::device::DeviceSpec;
use crate::error::EngineError;
use crate::model::Family;

/// Every model the engine serves.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The models, each with a unique name.
    pub models: Vec<ModelConfig>,
}

/// One served model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The name clients ask for.
    pub name: String,
    /// The model family.
    pub family: Family,
    /// The family's variant (X3D: `xs`, `s`, `m`, `l`, `tiny`, or `tiny-nose`: tiny without
    /// squeeze-excitation, `synthetic-actions`; ST-GCN: `ntu60`, `ntu120`, `kinetics`, each
    /// also with `-mod`; VAD: `silero-16k`; transformer: `b1-` or `b2-` followed by
    /// `thumos-anet`, `thumos-kin`, `tvseries` or `tiny`).
    pub variant: String,
    /// Where the weights come from.
    pub weights: WeightsSource,
    /// The device it runs on.
    pub device: DeviceSpec,
    /// Prediction window in frames (the head's pool); `None` for the variant's clip length.
    pub pool_window: Option<usize>,
    /// Classifier width; `None` for the variant's (400 for the Kinetics variants).
    pub num_classes: Option<usize>,
    /// Class names, one per line; `None` for Kinetics-400 (or numbered classes).
    pub labels: Option<PathBuf>,
    /// Stream slots and their lifetime.
    pub slots: SlotPolicy,
    /// How ready frames are batched.
    pub batch: BatchPolicy,
    /// Which batch sizes run once before the engine reports ready.
    pub warmup: Warmup,
    /// The largest image a frame may carry (encoded or raw), in pixels: a larger one is
    /// refused before it is decoded (a decompression-bomb guard).
    pub max_image_pixels: usize,
}

/// Where a model's weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    /// A checkpoint file (PyTorch pickle or safetensors).
    File(PathBuf),
    /// The weights compiled into the binary (`costream_models::builtin`: the X3D variant
    /// `synthetic-actions`, trained on synthetic actions).
    Builtin,
    /// Untrained weights drawn from `seed` (benchmarks and tests; the predictions mean
    /// nothing).
    Random {
        /// Seed of the initialisation.
        seed: u64,
    },
}

/// Per-model stream slots: how many streams step at once, how many may wait, and how long an
/// idle one keeps its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPolicy {
    /// Streams with a state slot (stepped on the device).
    pub capacity: usize,
    /// Streams waiting for a slot; a stream opened beyond this is refused.
    pub backlog: usize,
    /// An active stream that has not sent a frame for this long is ended.
    pub idle_timeout: Duration,
    /// Frames (and commands) a stream may have queued or unanswered; more are refused with
    /// back-pressure.
    pub max_pending_frames: usize,
}

impl Default for SlotPolicy {
    fn default() -> Self {
        SlotPolicy {
            capacity: 16,
            backlog: 16,
            idle_timeout: Duration::from_secs(60),
            max_pending_frames: 8,
        }
    }
}

/// How the scheduler forms batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Streams stepped in one batch at most.
    pub max_batch: usize,
    /// How long the first ready frame waits for frames of other streams before its batch
    /// runs anyway (a batch also runs as soon as every active stream, or `max_batch`, is
    /// ready).
    pub max_wait: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            max_batch: 16,
            max_wait: Duration::from_millis(2),
        }
    }
}

/// Which batch sizes are stepped through a whole fill before the engine reports ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Warmup {
    /// None: the first streams pay for lazy initialisation and kernel selection.
    None,
    /// One stream, one fill: every op shape of batch 1 has run.
    Single,
    /// Every power of two up to `max_batch`, and `max_batch` itself (GPU backends compile
    /// and select kernels per shape; autotuning buckets shapes by powers of two).
    Batches,
    /// `Batches` where the backend prepares kernels per op shape (GPUs), else `Single`.
    #[default]
    Auto,
}

impl Warmup {
    /// The batch sizes to warm up for a model batching up to `max_batch` streams on
    /// `device`.
    pub fn batch_sizes(self, max_batch: usize, device: DeviceSpec) -> Vec<usize> {
        let all = || {
            let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
                .take_while(|&n| n < max_batch)
                .collect();
            sizes.push(max_batch);
            sizes
        };
        match self {
            Warmup::None => vec![],
            Warmup::Single => vec![1],
            Warmup::Batches => all(),
            Warmup::Auto if device.prepares_kernels_per_shape() => all(),
            Warmup::Auto => vec![1],
        }
    }
}

/// The default largest image, in pixels: 8K UHD (33 MP) fits.
pub const DEFAULT_MAX_IMAGE_PIXELS: usize = 40_000_000;

impl ModelConfig {
    /// A model with default slots, batching and warm-up on the CPU.
    pub fn new(
        name: impl Into<String>,
        family: Family,
        variant: impl Into<String>,
        weights: WeightsSource,
    ) -> ModelConfig {
        ModelConfig {
            name: name.into(),
            family,
            variant: variant.into(),
            weights,
            device: DeviceSpec::Cpu,
            pool_window: None,
            num_classes: None,
            labels: None,
            slots: SlotPolicy::default(),
            batch: BatchPolicy::default(),
            warmup: Warmup::Auto,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
        }
    }

    /// Checks the limits: every count at least 1, the batch no larger than the capacity.
    ///
    /// # Errors
    /// [`EngineError::Config`] naming the model and the field.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |message: String| EngineError::Config {
            model: self.name.clone(),
            message,
        };
        if self.name.is_empty() || self.name.len() > 128 || self.name.contains(char::is_control) {
            return Err(bad("the name must be 1 to 128 printable characters".into()));
        }
        for (field, value) in [
            ("capacity", self.slots.capacity),
            ("max_pending_frames", self.slots.max_pending_frames),
            ("max_batch", self.batch.max_batch),
            ("max_image_pixels", self.max_image_pixels),
        ] {
            if value == 0 {
                return Err(bad(format!("`{field}` must be at least 1")));
            }
        }
        if self.batch.max_batch > self.slots.capacity {
            return Err(bad(format!(
                "`max_batch` ({}) exceeds `capacity` ({}): a batch holds active streams only",
                self.batch.max_batch, self.slots.capacity
            )));
        }
        if self.pool_window == Some(0) || self.num_classes == Some(0) {
            return Err(bad(
                "`pool_window` and `num_classes` must be at least 1".into()
            ));
        }
        Ok(())
    }
}

impl EngineConfig {
    /// Parses a TOML config; relative paths are taken from `base` (the file's folder).
    ///
    /// # Errors
    /// [`EngineError::Config`] with the parser's message (line, column, field) or the first
    /// invalid model.
    pub fn from_toml(text: &str, base: &Path) -> Result<EngineConfig, EngineError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| EngineError::Config {
            model: String::new(),
            message: e.to_string(),
        })?;
        let models = file
            .model
            .into_iter()
            .map(|m| m.into_config(base))
            .collect::<Result<Vec<_>, _>>()?;
        let config = EngineConfig { models };
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML config file.
    ///
    /// # Errors
    /// [`EngineError::Config`] naming the file when it cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<EngineConfig, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::Config {
            model: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        EngineConfig::from_toml(&text, base).map_err(|e| match e {
            EngineError::Config { model, message } => EngineError::Config {
                model,
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// Checks every model and that names are unique and present.
    ///
    /// # Errors
    /// [`EngineError::Config`] for the first problem.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.models.is_empty() {
            return Err(EngineError::Config {
                model: String::new(),
                message: "no model to serve: add a [[model]] section".into(),
            });
        }
        let mut names = std::collections::HashSet::new();
        for model in &self.models {
            model.validate()?;
            if !names.insert(model.name.as_str()) {
                return Err(EngineError::Config {
                    model: model.name.clone(),
                    message: "two models have this name".into(),
                });
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for WeightsSource {
    type Err = String;

    /// `builtin` for the compiled-in weights, `random` or `random:SEED` for untrained
    /// weights, anything else is a file path.
    fn from_str(s: &str) -> Result<WeightsSource, String> {
        if s == "builtin" {
            return Ok(WeightsSource::Builtin);
        }
        match s.strip_prefix("random") {
            Some("") => Ok(WeightsSource::Random { seed: 0 }),
            Some(rest) => match rest.strip_prefix(':').map(str::parse::<u64>) {
                Some(Ok(seed)) => Ok(WeightsSource::Random { seed }),
                _ => Err(format!(
                    "`{s}`: write random:SEED with an integer seed (or ./{s} for a file)"
                )),
            },
            None if s.is_empty() => Err("the weights path is empty".into()),
            None => Ok(WeightsSource::File(PathBuf::from(s))),
        }
    }
}

/// The file layout: `[[model]]` tables with flat fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    model: Vec<ModelEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    name: String,
    family: Family,
    variant: String,
    weights: String,
    #[serde(default)]
    device: DeviceSpec,
    pool_window: Option<usize>,
    num_classes: Option<usize>,
    labels: Option<PathBuf>,
    capacity: Option<usize>,
    backlog: Option<usize>,
    idle_timeout_s: Option<f64>,
    max_pending_frames: Option<usize>,
    max_batch: Option<usize>,
    max_wait_ms: Option<f64>,
    #[serde(default)]
    warmup: WarmupName,
    max_image_pixels: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum WarmupName {
    None,
    Single,
    Batches,
    #[default]
    Auto,
}

impl ModelEntry {
    fn into_config(self, base: &Path) -> Result<ModelConfig, EngineError> {
        let bad = |message: String| EngineError::Config {
            model: self.name.clone(),
            message,
        };
        let weights = match self.weights.parse().map_err(bad)? {
            WeightsSource::File(path) => WeightsSource::File(base.join(path)),
            random => random,
        };
        let seconds = |field: &str, value: f64| {
            Duration::try_from_secs_f64(value).map_err(|_| {
                bad(format!(
                    "`{field}` must be a non-negative number, got {value}"
                ))
            })
        };
        let defaults = (SlotPolicy::default(), BatchPolicy::default());
        let slots = SlotPolicy {
            capacity: self.capacity.unwrap_or(defaults.0.capacity),
            backlog: self.backlog.unwrap_or(defaults.0.backlog),
            idle_timeout: match self.idle_timeout_s {
                Some(s) => seconds("idle_timeout_s", s)?,
                None => defaults.0.idle_timeout,
            },
            max_pending_frames: self
                .max_pending_frames
                .unwrap_or(defaults.0.max_pending_frames),
        };
        let batch = BatchPolicy {
            // A smaller capacity caps the default batch.
            max_batch: self
                .max_batch
                .unwrap_or(defaults.1.max_batch.min(slots.capacity)),
            max_wait: match self.max_wait_ms {
                Some(ms) => seconds("max_wait_ms", ms / 1000.0)?,
                None => defaults.1.max_wait,
            },
        };
        Ok(ModelConfig {
            labels: self.labels.map(|p| base.join(p)),
            name: self.name,
            family: self.family,
            variant: self.variant,
            weights,
            device: self.device,
            pool_window: self.pool_window,
            num_classes: self.num_classes,
            slots,
            batch,
            warmup: match self.warmup {
                WarmupName::None => Warmup::None,
                WarmupName::Single => Warmup::Single,
                WarmupName::Batches => Warmup::Batches,
                WarmupName::Auto => Warmup::Auto,
            },
            max_image_pixels: self.max_image_pixels.unwrap_or(DEFAULT_MAX_IMAGE_PIXELS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        [[model]]
        name = "cox3d-s"
        family = "x3d"
        variant = "s"
        weights = "zoo/x3d_s.pyth"
        device = "cuda:1"
        pool_window = 64
        labels = "k400.txt"
        capacity = 32
        backlog = 4
        idle_timeout_s = 2.5
        max_pending_frames = 3
        max_batch = 8
        max_wait_ms = 0.5
        warmup = "batches"
        max_image_pixels = 2073600

        [[model]]
        name = "tiny"
        family = "x3d"
        variant = "tiny"
        weights = "random:7"
    "#;

    #[test]
    fn parses_every_field_and_resolves_paths_from_the_file() {
        let config = EngineConfig::from_toml(FULL, Path::new("/etc/costream")).unwrap();
        let s = &config.models[0];
        assert_eq!(
            s.weights,
            WeightsSource::File("/etc/costream/zoo/x3d_s.pyth".into())
        );
        assert_eq!(s.device, DeviceSpec::Cuda(1));
        assert_eq!(s.pool_window, Some(64));
        assert_eq!(
            s.labels.as_deref(),
            Some(Path::new("/etc/costream/k400.txt"))
        );
        assert_eq!(s.slots.capacity, 32);
        assert_eq!(s.slots.backlog, 4);
        assert_eq!(s.slots.idle_timeout, Duration::from_millis(2500));
        assert_eq!(s.slots.max_pending_frames, 3);
        assert_eq!(s.batch.max_batch, 8);
        assert_eq!(s.batch.max_wait, Duration::from_micros(500));
        assert_eq!(s.warmup, Warmup::Batches);
        assert_eq!(s.max_image_pixels, 1920 * 1080);
        let tiny = &config.models[1];
        assert_eq!(tiny.weights, WeightsSource::Random { seed: 7 });
        assert_eq!(tiny.device, DeviceSpec::Cpu);
        assert_eq!(tiny.slots, SlotPolicy::default());
        assert_eq!(tiny.warmup, Warmup::Auto);
        assert_eq!(tiny.max_image_pixels, DEFAULT_MAX_IMAGE_PIXELS);
    }

    #[test]
    fn errors_name_the_field_and_the_model() {
        let cases = [
            (FULL.replace("capacity = 32", "capacitty = 32"), "capacitty"),
            (
                FULL.replace("\"cuda:1\"", "\"tpu\""),
                "unknown device `tpu`",
            ),
            (FULL.replace("\"x3d\"", "\"resnet\""), "resnet"),
            (
                FULL.replace("max_batch = 8", "max_batch = 64"),
                "exceeds `capacity`",
            ),
            (
                FULL.replace("capacity = 32", "capacity = 0"),
                "`capacity` must be",
            ),
            (FULL.replace("random:7", "random:x"), "random:SEED"),
            (
                FULL.replace("idle_timeout_s = 2.5", "idle_timeout_s = -1"),
                "idle_timeout_s",
            ),
            (FULL.replace("\"tiny\"\n", "\"cox3d-s\"\n"), "two models"),
            (String::new(), "no model"),
        ];
        for (text, expected) in cases {
            let err = EngineConfig::from_toml(&text, Path::new(".")).unwrap_err();
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn warmup_sizes_cover_powers_of_two_and_the_maximum() {
        assert_eq!(
            Warmup::Batches.batch_sizes(12, DeviceSpec::Cpu),
            [1, 2, 4, 8, 12]
        );
        assert_eq!(
            Warmup::Batches.batch_sizes(8, DeviceSpec::Cpu),
            [1, 2, 4, 8]
        );
        assert_eq!(Warmup::Batches.batch_sizes(1, DeviceSpec::Cpu), [1]);
        assert_eq!(Warmup::Auto.batch_sizes(8, DeviceSpec::Cpu), [1]);
        assert!(Warmup::None.batch_sizes(8, DeviceSpec::Cpu).is_empty());
        assert_eq!(
            Warmup::Auto.batch_sizes(8, DeviceSpec::Cuda(0)),
            [1, 2, 4, 8]
        );
    }
}
