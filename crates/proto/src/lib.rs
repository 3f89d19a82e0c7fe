//! The costream wire messages, generated at build time from `proto/costream.proto` (the
//! single source of truth), and their two encodings on the WebSocket: binary protobuf and
//! protobuf's canonical JSON mapping in text frames.
//!
//! # Layout
//! - [`v1`]: the generated messages ([`v1::ClientMessage`], [`v1::ServerMessage`], …).
//! - [`codec`]: decoding client messages and encoding server messages in either format.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;

/// The messages of `proto/costream.proto`, package `costream.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/costream.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/costream.v1.serde.rs"));
}

pub use codec::{decode_client, encode_server, DecodeError, Encoded, WireFormat};
