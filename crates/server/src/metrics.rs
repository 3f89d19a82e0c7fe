//! Prometheus metrics at `/metrics`: one `costream_` prefix, seconds, `_total` counters, and
//! a small closed set of labels (`model`, `result`, `phase`, `code`).

use std::collections::HashMap;
use std::time::Duration;

use costream_proto::v1::ErrorCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::live::{Live, Phase};

/// Labels of per-model metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    /// The model's name.
    pub model: String,
}

/// Labels of the frame counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrameLabel {
    /// The model's name.
    pub model: String,
    /// `predicted`, `filling`, `skipped`, `rejected` or `dropped`.
    pub result: String,
}

/// Labels of the stream gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    /// The model's name.
    pub model: String,
    /// `active` (holding a state slot) or `waiting`.
    pub phase: String,
}

/// Labels of the error counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// The protocol error code, as named in `proto/costream.proto`.
    pub code: String,
}

type Histograms = Family<ModelLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs to ~27 s.
    Histogram::new(exponential_buckets(50e-6, 2.0, 20))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    frames: Family<FrameLabel, Counter>,
    queue: Histograms,
    step: Histograms,
    end_to_end: Histograms,
    batch_size: Histograms,
    streams: Family<StreamLabel, Gauge>,
    connections: Gauge,
    errors: Family<ErrorLabel, Counter>,
}

/// One model's metric handles, resolved once per stream.
#[derive(Debug, Clone)]
pub struct ModelMetrics {
    predicted: Counter,
    filling: Counter,
    skipped: Counter,
    rejected: Counter,
    dropped: Counter,
    queue: Histogram,
    step: Histogram,
    end_to_end: Histogram,
    batch_size: Histogram,
    /// The `NOT_STORED` count of the errors family.
    not_stored: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The metrics, registered under the `costream` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("costream");
        let frames = Family::<FrameLabel, Counter>::default();
        let queue = Histograms::new_with_constructor(latency_histogram);
        let step = Histograms::new_with_constructor(latency_histogram);
        let end_to_end = Histograms::new_with_constructor(latency_histogram);
        let batch_size = Histograms::new_with_constructor(batch_histogram);
        let streams = Family::<StreamLabel, Gauge>::default();
        let connections = Gauge::default();
        let errors = Family::<ErrorLabel, Counter>::default();
        registry.register(
            "frames",
            "Frames received, by what became of them (predicted, filling, skipped, rejected, dropped)",
            frames.clone(),
        );
        registry.register(
            "queue_seconds",
            "Time from a frame's receipt to the start of its batch step",
            queue.clone(),
        );
        registry.register(
            "step_seconds",
            "Time of the batch step that answered a frame (per frame)",
            step.clone(),
        );
        registry.register(
            "end_to_end_seconds",
            "Time from a frame's receipt to its answer being sent",
            end_to_end.clone(),
        );
        registry.register(
            "batch_size",
            "Streams stepped together, per answered frame",
            batch_size.clone(),
        );
        registry.register(
            "streams",
            "Streams open now, by phase (active: holding a state slot; waiting: in the backlog)",
            streams.clone(),
        );
        registry.register(
            "connections",
            "WebSocket connections open now",
            connections.clone(),
        );
        registry.register(
            "errors",
            "Protocol errors answered, by code",
            errors.clone(),
        );
        Metrics {
            registry,
            frames,
            queue,
            step,
            end_to_end,
            batch_size,
            streams,
            connections,
            errors,
        }
    }

    /// The handles of `model`'s metrics.
    pub fn model(&self, model: &str) -> ModelMetrics {
        let frames = |result: &str| {
            self.frames
                .get_or_create(&FrameLabel {
                    model: model.to_string(),
                    result: result.to_string(),
                })
                .clone()
        };
        let label = ModelLabel {
            model: model.to_string(),
        };
        ModelMetrics {
            predicted: frames("predicted"),
            filling: frames("filling"),
            skipped: frames("skipped"),
            rejected: frames("rejected"),
            dropped: frames("dropped"),
            queue: self.queue.get_or_create(&label).clone(),
            step: self.step.get_or_create(&label).clone(),
            end_to_end: self.end_to_end.get_or_create(&label).clone(),
            batch_size: self.batch_size.get_or_create(&label).clone(),
            not_stored: self
                .errors
                .get_or_create(&ErrorLabel {
                    code: ErrorCode::NotStored.as_str_name().to_string(),
                })
                .clone(),
        }
    }

    /// Counts a protocol error.
    pub fn error(&self, code: &str) {
        self.errors
            .get_or_create(&ErrorLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// Counts a connection opening (`+1`) or closing (`-1`).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// The text exposition, with the stream gauges read from `live` (and `models`, so that
    /// models without streams show zeros).
    pub fn encode<'a>(&self, live: &Live, models: impl Iterator<Item = &'a str>) -> String {
        let mut counts: HashMap<(String, &'static str), i64> = HashMap::new();
        for model in models {
            for phase in ["active", "waiting"] {
                counts.insert((model.to_string(), phase), 0);
            }
        }
        for stream in live.list() {
            let phase = match stream.phase {
                Phase::Active => "active",
                Phase::Waiting => "waiting",
            };
            *counts.entry((stream.model, phase)).or_default() += 1;
        }
        for ((model, phase), n) in counts {
            self.streams
                .get_or_create(&StreamLabel {
                    model,
                    phase: phase.to_string(),
                })
                .set(n);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail; this is a bug");
        text
    }
}

impl ModelMetrics {
    /// Counts an answered prediction and its timings.
    pub fn predicted(&self, queued: Duration, step: Duration, batch_size: usize) {
        self.predicted.inc();
        self.queue.observe(queued.as_secs_f64());
        self.step.observe(step.as_secs_f64());
        self.batch_size.observe(batch_size as f64);
    }

    /// Counts a frame consumed while the network fills.
    pub fn filling(&self) {
        self.filling.inc();
    }

    /// Counts a frame left out by the sampling stride.
    pub fn skipped(&self) {
        self.skipped.inc();
    }

    /// Counts a refused frame.
    pub fn rejected(&self) {
        self.rejected.inc();
    }

    /// Counts a dropped frame.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// Counts a `NOT_STORED` error (a prediction sent but not stored).
    pub fn not_stored(&self) {
        self.not_stored.inc();
    }

    /// Records the time from a frame's receipt to its answer.
    pub fn answered(&self, since_receipt: Duration) {
        self.end_to_end.observe(since_receipt.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_prefixed_described_metrics() {
        let metrics = Metrics::new();
        let model = metrics.model("m");
        model.predicted(Duration::from_millis(1), Duration::from_millis(2), 4);
        model.filling();
        metrics.error("BAD_FRAME");
        let live = Live::new(4);
        let text = metrics.encode(&live, ["m"].into_iter());
        for line in [
            "costream_frames_total{model=\"m\",result=\"predicted\"} 1",
            "costream_frames_total{model=\"m\",result=\"filling\"} 1",
            "costream_errors_total{code=\"BAD_FRAME\"} 1",
            "costream_streams{model=\"m\",phase=\"active\"} 0",
            "costream_batch_size_count{model=\"m\"} 1",
            "# HELP costream_step_seconds Time of the batch step that answered a frame (per frame).",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
    }
}
