//! One WebSocket connection at `/v1/stream`: the protocol's state machine. A connection
//! opens one stream (`start` or `resume`), feeds it frames and commands, and forwards its
//! answers; when the client disconnects (or goes silent, or the server drains) the stream's
//! state is saved for `resume`.
//!
//! # Layout
//! - this file: the connection loop and message dispatch.
//! - [`ending`]: errors, summaries, and saving a stream's state when its connection ends.
//! - [`open`]: `start` and `resume`.
//! - [`stream`]: the open stream, its queue and its forwarder.
//! - [`intake`]: sequence-number and rate checks.
//! - [`outbox`]: the writer task.

mod audio;
mod ending;
mod intake;
mod open;
mod outbox;
mod stream;
mod voice;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket};
use costream_proto::v1::{self, client_message, server_message::Msg, ErrorCode};
use costream_proto::{decode_client, DecodeError, WireFormat};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::outbox::Outbox;
use self::stream::{OpenStream, Queued};
use crate::app::{App, ConnectionGuard, Lifecycle};
use crate::auth::{AuthError, Principal};
use crate::error::{close, ProtocolError};
use crate::live::ServerCounts;
use crate::wire::{self, message};

/// Serves one WebSocket connection until it closes; a connection without a valid API key
/// (when keys are configured) is answered `UNAUTHENTICATED` and closed.
pub(crate) async fn serve(
    socket: WebSocket,
    app: Arc<App>,
    principal: Result<Principal, AuthError>,
) {
    let _guard = ConnectionGuard::new(app.clone());
    let (sink, incoming) = socket.split();
    let (out, queue) = Outbox::new();
    let writer = tokio::spawn(outbox::write_loop(sink, queue));
    let lifecycle = app.lifecycle.subscribe();
    let mut incoming = incoming;
    match principal {
        Ok(principal) => {
            let connection = Connection {
                app,
                out,
                principal,
                stream: None,
                lifecycle,
            };
            connection.run(&mut incoming).await;
        }
        Err(e) => {
            adopt_first_message_format(&mut incoming, &out).await;
            app.metrics.error(ErrorCode::Unauthenticated.as_str_name());
            let error = ProtocolError::new(ErrorCode::Unauthenticated, e.to_string());
            out.send(&error.to_message()).await;
            out.close(close::POLICY, "unauthenticated").await;
            drop(out);
        }
    }
    // Finish the close handshake: let the writer send what is queued and the close frame,
    // then read (and drop) what the client still sends until its close, so that unread input
    // does not make the kernel reset the connection before the client has read our answers.
    let mut writer = writer;
    if tokio::time::timeout(CLOSE_HANDSHAKE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE, async {
        while let Some(Ok(_)) = incoming.next().await {}
    })
    .await;
}

/// How long a connection refused at once (unauthenticated, or opened while the server
/// drains) waits for the client's first message, to answer in its encoding.
const FIRST_MESSAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits up to [`FIRST_MESSAGE_WAIT`] for the client's first message and answers in its
/// encoding from now on (protobuf when none comes); the message itself is not served.
async fn adopt_first_message_format(incoming: &mut SplitStream<WebSocket>, out: &Outbox) {
    if let Ok(Some(Ok(Message::Text(_)))) =
        tokio::time::timeout(FIRST_MESSAGE_WAIT, incoming.next()).await
    {
        out.set_format(WireFormat::Json);
    }
}

/// How long a closing connection waits for its last writes and the client's close frame.
const CLOSE_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection's state.
struct Connection {
    app: Arc<App>,
    out: Outbox,
    principal: Principal,
    stream: Option<OpenStream>,
    lifecycle: watch::Receiver<Lifecycle>,
}

/// The stream's forwarder task, which ends with the stream.
type Forwarder = JoinHandle<Option<stream::Ended>>;

/// How the connection loop goes on after a message.
enum Next {
    /// Keep reading.
    Continue,
    /// A stream opened: watch its forwarder.
    Opened(Forwarder),
    /// Close the connection (already answered).
    Stop,
}

impl Connection {
    async fn run(mut self, incoming: &mut SplitStream<WebSocket>) {
        let idle = self.app.config.limits.idle_timeout;
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        let mut forwarder: Option<Forwarder> = None;
        let at_start = *self.lifecycle.borrow_and_update();
        if at_start != Lifecycle::Serving {
            adopt_first_message_format(incoming, &self.out).await;
            self.fatal(ProtocolError::new(
                ErrorCode::ShuttingDown,
                "the server is draining",
            ))
            .await;
            return;
        }
        loop {
            let can_read = self.stream.as_ref().is_none_or(OpenStream::can_read);
            if !can_read {
                // The idle clock restarts once the connection is read again.
                idle_deadline = tokio::time::Instant::now() + idle;
            }
            let answered = self
                .stream
                .as_ref()
                .filter(|s| s.has_queued())
                .map(|s| s.answered.clone());
            let stream_deadline = self.stream.as_ref().and_then(|s| s.deadline);
            tokio::select! {
                changed = self.lifecycle.changed() => {
                    let now = if changed.is_ok() { *self.lifecycle.borrow_and_update() } else { Lifecycle::Closing };
                    match now {
                        Lifecycle::Serving => {}
                        Lifecycle::Draining { deadline_ms } => {
                            let go_away = Msg::GoAway(v1::GoAway {
                                reason: "the server is draining: end or resume elsewhere".into(),
                                deadline_ms,
                            });
                            self.out.send(&message(go_away)).await;
                        }
                        Lifecycle::Closing => {
                            self.save_and_close(forwarder, close::GOING_AWAY, "the server is shutting down").await;
                            return;
                        }
                    }
                }
                () = async { if let Some(n) = &answered { n.notified().await } else { std::future::pending().await } } => {
                    let errors = self.stream.as_mut().map(OpenStream::pump).unwrap_or_default();
                    self.send_errors(errors).await;
                }
                received = incoming.next(), if can_read => {
                    idle_deadline = tokio::time::Instant::now() + idle;
                    let (bytes, format) = match received {
                        Some(Ok(Message::Binary(b))) => (b.to_vec(), WireFormat::Protobuf),
                        Some(Ok(Message::Text(t))) => (t.as_bytes().to_vec(), WireFormat::Json),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Err(e)) if is_past_size_cap(&e) => {
                            let cap = self.app.config.limits.hard_message_cap();
                            let error = ProtocolError::new(
                                ErrorCode::FrameTooLarge,
                                format!("a message exceeds the hard cap of {cap} bytes (twice max_frame_bytes plus 1 MiB); the stream's state is kept for resume"),
                            ).closing_with(close::TOO_BIG);
                            self.send_errors(vec![error]).await;
                            self.save_and_close(forwarder, close::TOO_BIG, "message too big").await;
                            return;
                        }
                        Some(Ok(Message::Close(_)) | Err(_)) | None => {
                            self.save_and_close(forwarder, close::NORMAL, "").await;
                            return;
                        }
                    };
                    match self.on_message(&bytes, format).await {
                        Next::Continue => {}
                        Next::Opened(task) => forwarder = Some(task),
                        Next::Stop => return,
                    }
                }
                // While the connection is not read (back-pressure), the client is not idle.
                () = tokio::time::sleep_until(idle_deadline), if can_read => {
                    let limit = self.app.config.limits.idle_timeout;
                    let error = ProtocolError::new(
                        ErrorCode::IdleTimeout,
                        format!("idle_timeout_ms = {} passed without a message; the stream's state is kept for resume", limit.as_millis()),
                    );
                    self.send_errors(vec![error]).await;
                    self.save_and_close(forwarder, close::POLICY, "idle timeout").await;
                    return;
                }
                () = async { if let Some(d) = stream_deadline { tokio::time::sleep_until(d.into()).await } else { std::future::pending().await } } => {
                    let limit = self.app.config.limits.max_stream_duration;
                    let error = ProtocolError::new(
                        ErrorCode::MaxDuration,
                        format!("max_stream_duration_ms = {} reached; the stream ends", limit.as_millis()),
                    );
                    self.send_errors(vec![error]).await;
                    if let Some(stream) = &mut self.stream {
                        stream.end_now();
                    }
                    drop(self.finish(forwarder, Some("max_duration")).await);
                    self.out.close(close::POLICY, "max stream duration").await;
                    return;
                }
                ended = async { if let Some(f) = forwarder.as_mut() { f.await.ok().flatten() } else { std::future::pending().await } } => {
                    // The stream ended: the client's `end`, the engine's idle reaping,
                    // shutdown, or an engine failure.
                    let failed = ended.as_ref().is_some_and(|e| e.failure.is_some());
                    drop(self.finish_with(ended, None).await);
                    if failed {
                        self.out.close(close::INTERNAL, "engine failure").await;
                    } else {
                        self.out.close(close::NORMAL, "stream ended").await;
                    }
                    return;
                }
            }
        }
    }

    /// Decodes and handles one message.
    async fn on_message(&mut self, bytes: &[u8], format: WireFormat) -> Next {
        if self.stream.is_none() {
            self.out.set_format(format);
        }
        let max = self.app.config.limits.max_frame_bytes;
        if bytes.len() > max {
            let error = ProtocolError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "a message of {} bytes exceeds max_frame_bytes = {max}",
                    bytes.len()
                ),
            );
            if let Some(stream) = &self.stream {
                ServerCounts::bump(&stream.counts.rejected);
                stream.metrics.rejected();
            }
            self.send_errors(vec![error]).await;
            return Next::Continue;
        }
        let decoded = match decode_client(bytes, format) {
            Ok(m) => m,
            Err(e) => {
                let code = match e {
                    DecodeError::UnknownFill(_) => ErrorCode::BadOptions,
                    _ => ErrorCode::BadMessage,
                };
                self.send_errors(vec![ProtocolError::new(code, e.to_string())])
                    .await;
                return Next::Continue;
            }
        };
        tracing::debug!(
            stream = self.stream.as_ref().map(OpenStream::id),
            message = message_kind(&decoded),
            "received"
        );
        match decoded {
            client_message::Msg::Keepalive(k) => {
                self.out.send(&message(Msg::Keepalive(k))).await;
                Next::Continue
            }
            client_message::Msg::Start(start) => self.on_open(open::Request::Start(start)).await,
            client_message::Msg::Resume(resume) => {
                self.on_open(open::Request::Resume(resume)).await
            }
            client_message::Msg::Frame(frame) => {
                self.on_frame(frame).await;
                Next::Continue
            }
            client_message::Msg::Flush(_) => self.on_command(Queued::Flush, "flush").await,
            client_message::Msg::Reset(_) => self.on_command(Queued::Reset, "reset").await,
            client_message::Msg::End(_) => {
                let next = self.on_command(Queued::End, "end").await;
                if let Some(stream) = &mut self.stream {
                    stream.ending = true;
                }
                next
            }
        }
    }

    async fn on_open(&mut self, request: open::Request) -> Next {
        if let Some(stream) = &self.stream {
            let error = ProtocolError::new(
                ErrorCode::UnexpectedMessage,
                format!(
                    "stream `{}` is already open on this connection",
                    stream.id()
                ),
            );
            self.send_errors(vec![error]).await;
            return Next::Continue;
        }
        if !self.app.serving() {
            self.fatal(ProtocolError::new(
                ErrorCode::ShuttingDown,
                "the server is draining",
            ))
            .await;
            return Next::Stop;
        }
        match open::open(&self.app, request, &self.principal, &self.out).await {
            Ok(Some((stream, task))) => {
                self.stream = Some(stream);
                Next::Opened(task)
            }
            Ok(None) => Next::Continue,
            Err(error) => {
                let fatal = error.close_code().is_some();
                self.send_errors(vec![error]).await;
                if fatal {
                    Next::Stop
                } else {
                    Next::Continue
                }
            }
        }
    }

    async fn on_frame(&mut self, frame: v1::Frame) {
        let received = Instant::now();
        let seq = frame.seq;
        let Some(stream) = self.stream.as_mut().filter(|s| !s.ending) else {
            let error = ProtocolError::frame(
                ErrorCode::UnexpectedMessage,
                seq,
                "a frame needs an open stream: send start (or resume) first, and no frame after end",
            );
            self.send_errors(vec![error]).await;
            return;
        };
        let checked = stream.intake.check(seq, Instant::now()).and_then(|()| {
            wire::payload(frame.payload)
                .and_then(|payload| stream.audio.convert(payload))
                .map_err(|m| ProtocolError::frame(ErrorCode::BadFrame, seq, m))
        });
        let payload = match checked {
            Ok(p) => p,
            Err(error) => {
                ServerCounts::bump(&stream.counts.rejected);
                stream.metrics.rejected();
                self.send_errors(vec![error]).await;
                return;
            }
        };
        // Decoding and preprocessing are CPU work: keep them off the async workers.
        let handle = stream.handle.clone();
        let prepared = tokio::task::spawn_blocking(move || handle.prepare(seq, &payload)).await;
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let errors = match prepared {
            Ok(Ok(prepared)) => {
                stream.intake.accepted(seq);
                stream.enqueue(Queued::Frame(prepared, frame.pts, received))
            }
            Ok(Err(e)) => {
                stream.metrics.rejected();
                vec![crate::error::submit_error(seq, &e)]
            }
            Err(e) => vec![ProtocolError::frame(
                ErrorCode::Internal,
                seq,
                format!("preprocessing failed: {e}"),
            )],
        };
        self.send_errors(errors).await;
    }

    async fn on_command(&mut self, command: Queued, name: &str) -> Next {
        let Some(stream) = self.stream.as_mut().filter(|s| !s.ending) else {
            let error = ProtocolError::new(
                ErrorCode::UnexpectedMessage,
                format!("`{name}` needs an open stream: send start (or resume) first, and nothing after end"),
            );
            self.send_errors(vec![error]).await;
            return Next::Continue;
        };
        if matches!(command, Queued::Flush | Queued::Reset) {
            stream.audio.reset();
        }
        let errors = stream.enqueue(command);
        self.send_errors(errors).await;
        Next::Continue
    }
}

/// Whether a read failed because the message is larger than the socket reads at all.
fn is_past_size_cap(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The kind of a client message, for logs.
fn message_kind(message: &client_message::Msg) -> &'static str {
    match message {
        client_message::Msg::Start(_) => "start",
        client_message::Msg::Frame(_) => "frame",
        client_message::Msg::Flush(_) => "flush",
        client_message::Msg::Reset(_) => "reset",
        client_message::Msg::End(_) => "end",
        client_message::Msg::Resume(_) => "resume",
        client_message::Msg::Keepalive(_) => "keepalive",
    }
}
