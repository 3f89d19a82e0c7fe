//! The WebSocket message decoder on arbitrary bytes, as both encodings: it never panics, a
//! message that decodes survives a round trip through its encoding, and a frame's payload
//! converts to the engine's form or is refused with a message.
//!
//! JSON numbers beyond f32's range decode as infinities (the engine refuses them as
//! `BAD_FRAME`); pbjson writes those as "Infinity" but cannot read that back inside repeated
//! fields, so JSON round trips are checked for finite values only (the server never writes
//! a non-finite float: its scores are probabilities).
#![no_main]

use costream_proto::v1::{client_message, ClientMessage};
use costream_proto::{decode_client, WireFormat};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    for format in [WireFormat::Protobuf, WireFormat::Json] {
        let Ok(msg) = decode_client(data, format) else {
            continue;
        };
        if format == WireFormat::Json && !finite(&msg) {
            continue;
        }
        let message = ClientMessage { msg: Some(msg) };
        let again = match format {
            WireFormat::Protobuf => decode_client(&message.encode_to_vec(), format),
            WireFormat::Json => {
                let text = serde_json::to_string(&message).expect("a decoded message serialises");
                decode_client(text.as_bytes(), format)
            }
        }
        .expect("a decoded message decodes again after encoding");
        // NaN payload values compare unequal to themselves; compare their encodings instead.
        assert_eq!(
            ClientMessage {
                msg: Some(again.clone())
            }
            .encode_to_vec(),
            message.encode_to_vec(),
            "round trip through {}",
            format.name()
        );
        if let client_message::Msg::Frame(frame) = again {
            let _ = costream_server::wire::payload(frame.payload);
        }
    }
});

/// Whether every float a message carries is finite.
fn finite(msg: &client_message::Msg) -> bool {
    use costream_proto::v1::frame::Payload;
    let client_message::Msg::Frame(frame) = msg else {
        return true;
    };
    let values: &[f32] = match &frame.payload {
        Some(Payload::Tensor(t)) => &t.data,
        Some(Payload::Skeleton(s)) => &s.data,
        Some(Payload::Features(f)) => &f.values,
        _ => &[],
    };
    values.iter().all(|v| v.is_finite())
}
