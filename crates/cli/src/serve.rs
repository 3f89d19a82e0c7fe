//! `costream serve`: loads the models, opens the store, and serves until SIGTERM or Ctrl-C,
//! then drains. Every limit is a flag with an environment variable.
//!
//! With no `--config`, one model is served from the `--model-*` flags; their defaults are
//! the built-in model: a tiny CoX3D (32×32 frames, 5 classes) on the CPU.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use costream_engine::{
    BatchPolicy, DeviceSpec, Engine, EngineConfig, Family, ModelConfig, SlotPolicy, WeightsSource,
    DEFAULT_MAX_IMAGE_PIXELS,
};
use costream_models::oadtr::NamedOadTr;
use costream_models::stgcn::NamedStGcn;
use costream_server::auth::ApiKey;
use costream_server::{App, Limits, QueuePolicy, ServerConfig, Store};
use tokio::net::TcpListener;

use crate::duration;

/// Flags of `costream serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "COSTREAM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,

    /// A TOML file of models to serve (`[[model]]` tables); overrides the --model-* flags.
    #[arg(long, env = "COSTREAM_CONFIG")]
    config: Option<PathBuf>,

    /// Name of the served model (without --config; default: synthetic-actions, or silero-vad
    /// for the vad family).
    #[arg(long, env = "COSTREAM_MODEL_NAME")]
    model_name: Option<String>,

    /// Family of the served model (without --config): x3d (video), stgcn (skeletons), vad
    /// (voice activity on 16 kHz audio) or transformer (online action detection on feature
    /// vectors, CoOadTR).
    #[arg(long, env = "COSTREAM_MODEL_FAMILY", value_enum, default_value = "x3d")]
    model_family: FamilyArg,

    /// Variant of the served model (without --config). x3d: xs, s, m, l, tiny, tiny-nose or
    /// synthetic-actions (the default); stgcn: ntu60, ntu120 or kinetics, each also with -mod
    /// (CoST-GCN*, a prediction every frame); vad: silero-16k (the default); transformer: b1-
    /// or b2- followed by thumos-anet, thumos-kin, tvseries or tiny (e.g. b2-thumos-kin).
    #[arg(long, env = "COSTREAM_MODEL_VARIANT")]
    model_variant: Option<String>,

    /// Weights of the served model: a checkpoint file, builtin (compiled in: x3d's model
    /// trained on synthetic actions, vad's Silero VAD weights) or random:SEED (without
    /// --config).
    #[arg(long, env = "COSTREAM_WEIGHTS", default_value = "builtin")]
    weights: String,

    /// Device of the served model: cpu, wgpu[:N] or cuda[:N] (without --config).
    #[arg(long, env = "COSTREAM_DEVICE", default_value = "cpu")]
    device: String,

    /// Streams of the served model stepped at once (state slots; without --config).
    #[arg(long, env = "COSTREAM_CAPACITY", default_value_t = SlotPolicy::default().capacity)]
    capacity: usize,

    /// Streams that may wait for a slot of the served model (without --config).
    #[arg(long, env = "COSTREAM_BACKLOG", default_value_t = SlotPolicy::default().backlog)]
    backlog: usize,

    /// Frames a stream may have queued or unanswered in the engine (without --config).
    #[arg(long, env = "COSTREAM_MAX_PENDING_FRAMES", default_value_t = SlotPolicy::default().max_pending_frames)]
    max_pending_frames: usize,

    /// The largest image a frame may carry (encoded or raw), in pixels; larger ones are
    /// refused before decoding (without --config).
    #[arg(long, env = "COSTREAM_MAX_IMAGE_PIXELS", default_value_t = DEFAULT_MAX_IMAGE_PIXELS)]
    max_image_pixels: usize,

    /// Streams stepped in one batch at most (without --config).
    #[arg(long, env = "COSTREAM_MAX_BATCH", default_value_t = BatchPolicy::default().max_batch)]
    max_batch: usize,

    /// How long a ready frame waits for other streams' frames to join its batch (without
    /// --config).
    #[arg(long, env = "COSTREAM_MAX_WAIT", default_value = "2ms", value_parser = duration::parse)]
    max_wait: Duration,

    /// Where predictions are stored: sqlite://PATH or sqlite::memory:.
    #[arg(
        long,
        env = "COSTREAM_DATABASE_URL",
        default_value = "sqlite://costream.sqlite3"
    )]
    database_url: String,

    /// Streams open at once on this server.
    #[arg(long, env = "COSTREAM_MAX_STREAMS", default_value_t = Limits::default().max_streams)]
    max_streams: usize,

    /// Largest WebSocket message in bytes; larger frames are refused.
    #[arg(long, env = "COSTREAM_MAX_FRAME_BYTES", default_value_t = Limits::default().max_frame_bytes)]
    max_frame_bytes: usize,

    /// Frames per second a stream may send (0: no limit).
    #[arg(long, env = "COSTREAM_MAX_FRAMES_PER_SECOND", default_value_t = 0.0)]
    max_frames_per_second: f64,

    /// What happens to a frame beyond the model's pending limit.
    #[arg(long, env = "COSTREAM_QUEUE_POLICY", value_enum, default_value_t = QueuePolicyArg::Block)]
    queue_policy: QueuePolicyArg,

    /// Frames a stream may have waiting in the server under drop_oldest.
    #[arg(long, env = "COSTREAM_MAX_QUEUED_FRAMES", default_value_t = Limits::default().max_queued_frames)]
    max_queued_frames: usize,

    /// A connection that sends nothing this long is closed (its stream's state is kept).
    #[arg(long, env = "COSTREAM_IDLE_TIMEOUT", default_value = "60s", value_parser = duration::parse)]
    idle_timeout: Duration,

    /// A stream is ended this long after it started (0: no limit).
    #[arg(long, env = "COSTREAM_MAX_STREAM_DURATION", default_value = "0", value_parser = duration::parse)]
    max_stream_duration: Duration,

    /// How long a disconnected stream's state is kept for resume.
    #[arg(long, env = "COSTREAM_RESUME_WINDOW", default_value = "5m", value_parser = duration::parse)]
    resume_window: Duration,

    /// How long a drain (SIGTERM) waits for streams to end before saving and closing them.
    #[arg(long, env = "COSTREAM_DRAIN_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    drain_timeout: Duration,

    /// Stored predictions older than this are deleted (0: kept forever).
    #[arg(long, env = "COSTREAM_RETENTION", default_value = "7d", value_parser = duration::parse)]
    retention: Duration,

    /// Labels per prediction when a stream does not ask for a number.
    #[arg(long, env = "COSTREAM_DEFAULT_TOP_K", default_value_t = 5)]
    default_top_k: u32,

    /// A file of API keys, one `NAME:TOKEN[:MAX_STREAMS]` per line; with keys, every stream
    /// and `/v1` request needs `Authorization: Bearer TOKEN`.
    #[arg(long, env = "COSTREAM_API_KEYS_FILE")]
    api_keys_file: Option<PathBuf>,

    /// API keys as `NAME:TOKEN[:MAX_STREAMS]`, comma-separated (added to --api-keys-file). A
    /// token has at least 16 characters and no white space.
    #[arg(long, env = "COSTREAM_API_KEYS", hide_env_values = true)]
    api_keys: Option<String>,

    /// Log format on standard error.
    #[arg(long, env = "COSTREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--queue-policy` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum QueuePolicyArg {
    /// Stop reading the connection until a place frees.
    Block,
    /// Queue in the server and drop the oldest waiting frame when full.
    DropOldest,
}

/// `--model-family` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum FamilyArg {
    /// X3D video models (variants xs, s, m, l, tiny, tiny-nose, synthetic-actions).
    X3d,
    /// ST-GCN skeleton models (variants ntu60, ntu120, kinetics, each also with -mod).
    Stgcn,
    /// Voice activity detection on 16 kHz audio (variant silero-16k).
    Vad,
    /// CoOadTR online action detection on feature vectors (variants b1-thumos-anet,
    /// b2-thumos-kin, b1-tvseries, …).
    Transformer,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl ServeArgs {
    fn engine_config(&self) -> Result<EngineConfig, String> {
        if let Some(path) = &self.config {
            return EngineConfig::from_file(path).map_err(|e| e.to_string());
        }
        let weights: WeightsSource = self
            .weights
            .parse()
            .map_err(|e| format!("--weights: {e}"))?;
        let device: DeviceSpec = self.device.parse().map_err(|e| format!("--device: {e}"))?;
        let (family, default_variant) = match self.model_family {
            FamilyArg::X3d => (Family::X3d, Some("synthetic-actions")),
            FamilyArg::Stgcn => (Family::StGcn, None),
            FamilyArg::Vad => (Family::Vad, Some("silero-16k")),
            FamilyArg::Transformer => (Family::Transformer, None),
        };
        let variant = match (&self.model_variant, default_variant) {
            (Some(variant), _) => variant.clone(),
            (None, Some(variant)) => variant.to_string(),
            (None, None) => {
                return Err(format!(
                    "--model-family {} needs --model-variant ({})",
                    family.name(),
                    match family {
                        Family::Transformer => NamedOadTr::NAMES,
                        _ => NamedStGcn::NAMES,
                    }
                ))
            }
        };
        let name = match (&self.model_name, family) {
            (Some(name), _) => name.clone(),
            (None, Family::Vad) => "silero-vad".to_string(),
            (None, Family::Transformer) => format!("cooadtr-{variant}"),
            (None, _) => "synthetic-actions".to_string(),
        };
        let mut model = ModelConfig::new(name, family, variant, weights);
        model.device = device;
        model.slots.capacity = self.capacity;
        model.slots.backlog = self.backlog;
        model.slots.max_pending_frames = self.max_pending_frames;
        model.batch.max_batch = self.max_batch;
        model.batch.max_wait = self.max_wait;
        model.max_image_pixels = self.max_image_pixels;
        let config = EngineConfig {
            models: vec![model],
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    fn server_config(&self) -> Result<ServerConfig, String> {
        if !(self.max_frames_per_second >= 0.0 && self.max_frames_per_second.is_finite()) {
            return Err(format!(
                "--max-frames-per-second = {}: use a number of at least 0",
                self.max_frames_per_second
            ));
        }
        for (flag, value) in [
            ("--max-streams", self.max_streams),
            ("--max-frame-bytes", self.max_frame_bytes),
            ("--max-queued-frames", self.max_queued_frames),
        ] {
            if value == 0 {
                return Err(format!("{flag} = 0: use at least 1"));
            }
        }
        let mut keys = String::new();
        if let Some(path) = &self.api_keys_file {
            keys = std::fs::read_to_string(path)
                .map_err(|e| format!("--api-keys-file {}: {e}", path.display()))?;
        }
        if let Some(more) = &self.api_keys {
            keys.push('\n');
            keys.push_str(more);
        }
        let api_keys = ApiKey::parse_list(&keys).map_err(|e| format!("API keys: {e}"))?;
        if self.idle_timeout.is_zero() {
            return Err("--idle-timeout = 0: use a positive duration".into());
        }
        Ok(ServerConfig {
            limits: Limits {
                max_streams: self.max_streams,
                max_frame_bytes: self.max_frame_bytes,
                max_frames_per_second: self.max_frames_per_second,
                queue_policy: match self.queue_policy {
                    QueuePolicyArg::Block => QueuePolicy::Block,
                    QueuePolicyArg::DropOldest => QueuePolicy::DropOldest,
                },
                max_queued_frames: self.max_queued_frames,
                idle_timeout: self.idle_timeout,
                max_stream_duration: self.max_stream_duration,
            },
            resume_window: self.resume_window,
            drain_timeout: self.drain_timeout,
            retention: self.retention,
            default_top_k: self.default_top_k,
            api_keys,
        })
    }
}

/// Runs `costream serve`.
///
/// # Errors
/// A message naming the flag, file or address that is wrong.
pub(crate) fn run(args: ServeArgs) -> Result<(), String> {
    init_logs(args.log_format);
    let engine_config = args.engine_config()?;
    let server_config = args.server_config()?;
    let store = Store::open(&args.database_url).map_err(|e| e.to_string())?;
    for model in &engine_config.models {
        if let WeightsSource::Random { seed } = model.weights {
            tracing::warn!(
                model = model.name,
                seed,
                "serving untrained (random) weights: its predictions mean nothing"
            );
        }
    }
    let engine = Engine::start(&engine_config).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("costream-io")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        let app = Arc::new(App::new(Arc::new(engine), store, server_config));
        tracing::info!(%address, store = app.store.describe(), "serving");
        // Text logs are for people (and scripts reading stdout); JSON logs keep every line
        // JSON: the address is in the `serving` event.
        if args.log_format == LogFormat::Text {
            println!("costream listening on http://{address}");
        }
        costream_server::serve(listener, app, shutdown_signal())
            .await
            .map_err(|e| format!("server failed: {e}"))
    })
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COSTREAM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    // A panic the server contains (a decoder's, a backend's) is logged like everything else,
    // not printed as a plain-text line between JSON ones.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "a thread panicked");
    }));
}
