//! The shared state of a running server: the engine, the store, the limits, the open
//! streams, and where the server is in its life (serving, draining, closing).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use costream_engine::Engine;
use tokio::sync::{watch, Notify};

use crate::config::ServerConfig;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::store::Store;

/// Where the server is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Accepting streams.
    Serving,
    /// Draining: no new streams; open ones were told (`go_away`) to finish by the deadline.
    Draining {
        /// Milliseconds left when the drain began.
        deadline_ms: u64,
    },
    /// The drain's deadline passed: open streams save their state and close (1001).
    Closing,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    /// The device side.
    pub engine: Arc<Engine>,
    /// Where predictions and disconnected streams' states go.
    pub store: Store,
    /// Limits and policies.
    pub config: ServerConfig,
    /// The open streams.
    pub live: Arc<Live>,
    /// Where the server is in its life.
    pub lifecycle: watch::Sender<Lifecycle>,
    /// WebSocket connections open now, and a signal when one closes.
    pub connections: Connections,
    /// What `/metrics` exports.
    pub metrics: Metrics,
    /// When the server started.
    pub started: Instant,
}

impl App {
    /// The shared state of a server that starts serving now.
    pub fn new(engine: Arc<Engine>, store: Store, config: ServerConfig) -> App {
        let live = Arc::new(Live::new(config.limits.max_streams));
        App {
            engine,
            store,
            live,
            config,
            lifecycle: watch::channel(Lifecycle::Serving).0,
            connections: Connections::default(),
            metrics: Metrics::new(),
            started: Instant::now(),
        }
    }

    /// Whether new streams are accepted.
    pub fn serving(&self) -> bool {
        *self.lifecycle.borrow() == Lifecycle::Serving
    }
}

/// A count of open WebSocket connections that can be waited on.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicUsize,
    closed: Notify,
}

/// Counts one connection while it lives.
#[derive(Debug)]
pub struct ConnectionGuard {
    app: Arc<App>,
}

impl Connections {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits until no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl ConnectionGuard {
    /// Counts a connection of `app` until the guard is dropped.
    pub fn new(app: Arc<App>) -> ConnectionGuard {
        app.connections.open.fetch_add(1, Ordering::SeqCst);
        app.metrics.connection(1);
        ConnectionGuard { app }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.app.connections.open.fetch_sub(1, Ordering::SeqCst);
        self.app.metrics.connection(-1);
        self.app.connections.closed.notify_waiters();
    }
}
