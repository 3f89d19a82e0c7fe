//! The sending half of a connection: messages are encoded in the client's format and
//! written by one task, so the reader and the stream's forwarder never contend for the socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use costream_proto::{encode_server, v1::ServerMessage, Encoded, WireFormat};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::mpsc;

/// Messages waiting for the socket; senders wait when the client reads slowly.
const OUTGOING: usize = 256;

/// What the writer task sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A WebSocket data message.
    Message(Message),
    /// A close frame with a code and reason; nothing is sent after it.
    Close(u16, String),
}

/// A cloneable sender of server messages in the connection's format.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    sender: mpsc::Sender<Outgoing>,
    json: Arc<AtomicBool>,
}

impl Outbox {
    /// An outbox and the queue its writer task drains.
    pub(crate) fn new() -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (sender, queue) = mpsc::channel(OUTGOING);
        let outbox = Outbox {
            sender,
            json: Arc::new(AtomicBool::new(false)),
        };
        (outbox, queue)
    }

    /// Answers in `format` from now on.
    pub(crate) fn set_format(&self, format: WireFormat) {
        self.json
            .store(format == WireFormat::Json, Ordering::Relaxed);
    }

    /// Queues a message; `false` when the connection is gone.
    pub(crate) async fn send(&self, message: &ServerMessage) -> bool {
        let format = if self.json.load(Ordering::Relaxed) {
            WireFormat::Json
        } else {
            WireFormat::Protobuf
        };
        let frame = match encode_server(message, format) {
            Encoded::Binary(bytes) => Message::Binary(bytes.into()),
            Encoded::Text(text) => Message::Text(text.into()),
        };
        self.sender.send(Outgoing::Message(frame)).await.is_ok()
    }

    /// Queues a close frame (the reason is cut to the 123 bytes a close frame holds).
    pub(crate) async fn close(&self, code: u16, reason: &str) {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let _ = self
            .sender
            .send(Outgoing::Close(code, reason[..end].to_string()))
            .await;
    }
}

/// Writes queued messages to the socket until a close frame, a write error, or every
/// sender is gone.
pub(crate) async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outgoing>,
) {
    while let Some(outgoing) = queue.recv().await {
        match outgoing {
            Outgoing::Message(message) => {
                if sink.send(message).await.is_err() {
                    return;
                }
            }
            Outgoing::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        }
    }
    let _ = sink.close().await;
}
