//! Client messages in, server messages out, in the format the client chose: protobuf in
//! binary WebSocket frames, canonical JSON in text frames.

use prost::Message;

use crate::v1::{client_message, ClientMessage, Fill, ServerMessage};

/// The two encodings of a message on the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// Protobuf, in binary frames.
    Protobuf,
    /// Protobuf's canonical JSON mapping, in text frames.
    Json,
}

impl WireFormat {
    /// The format's name in messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            WireFormat::Protobuf => "protobuf",
            WireFormat::Json => "json",
        }
    }
}

/// An encoded server message, ready for a WebSocket frame of the matching kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// Protobuf bytes, for a binary frame.
    Binary(Vec<u8>),
    /// JSON text, for a text frame.
    Text(String),
}

/// Why a client message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a valid protobuf `ClientMessage`.
    #[error("not a valid protobuf ClientMessage: {0}")]
    Protobuf(String),
    /// The text is not a valid JSON `ClientMessage`.
    #[error("not a valid JSON ClientMessage: {0}")]
    Json(String),
    /// A JSON `start` names a `fill` the schema does not have. Protobuf carries such a value
    /// as a number and it is refused with the other options; JSON cannot hold it at all, so it
    /// is found here, for the same answer (`BAD_OPTIONS`) in both formats.
    #[error("options.fill = {0} is not a Fill: use FILL_ZEROS or FILL_REPLICATE")]
    UnknownFill(String),
    /// The message decoded but carries none of the message kinds.
    #[error("the message is empty: set one of start, frame, flush, reset, end, resume, keepalive")]
    Empty,
}

/// Decodes one client message and says which message kind it holds.
///
/// # Errors
/// [`DecodeError`] naming the format and the decoder's complaint; an empty message is an
/// error too (it would otherwise be silently ignored).
pub fn decode_client(bytes: &[u8], format: WireFormat) -> Result<client_message::Msg, DecodeError> {
    let message = match format {
        WireFormat::Protobuf => {
            ClientMessage::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))?
        }
        WireFormat::Json => serde_json::from_slice(bytes)
            .map_err(|e| unknown_fill(bytes).unwrap_or_else(|| DecodeError::Json(e.to_string())))?,
    };
    message.msg.ok_or(DecodeError::Empty)
}

/// The error for a JSON message that failed to decode because its `start.options.fill` is
/// not a `Fill` name or number; `None` when that is not why.
fn unknown_fill(bytes: &[u8]) -> Option<DecodeError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let fill = value.get("start")?.get("options")?.get("fill")?;
    let known = match fill {
        serde_json::Value::String(name) => Fill::from_str_name(name).is_some(),
        serde_json::Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .is_some_and(|n| Fill::try_from(n).is_ok()),
        _ => true,
    };
    (!known).then(|| DecodeError::UnknownFill(fill.to_string()))
}

/// Encodes one server message in `format`.
pub fn encode_server(message: &ServerMessage, format: WireFormat) -> Encoded {
    match format {
        WireFormat::Protobuf => Encoded::Binary(message.encode_to_vec()),
        WireFormat::Json => Encoded::Text(
            serde_json::to_string(message)
                .expect("a generated message always serialises to JSON; this is a bug"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{
        frame, server_message, Frame, LabelScore, Prediction, Start, StreamOptions, VoiceActivity,
    };

    #[test]
    fn an_unknown_json_fill_is_named_as_such() {
        for fill in [r#""FILL_BOGUS""#, "9"] {
            let text = format!(r#"{{"start": {{"model": "m", "options": {{"fill": {fill}}}}}}}"#);
            assert_eq!(
                decode_client(text.as_bytes(), WireFormat::Json),
                Err(DecodeError::UnknownFill(fill.to_string())),
            );
        }
        // Another fault in a message with a good fill stays a JSON error.
        let text = r#"{"start": {"model": 5, "options": {"fill": "FILL_ZEROS"}}}"#;
        assert!(matches!(
            decode_client(text.as_bytes(), WireFormat::Json),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn json_uses_the_canonical_mapping() {
        let text = r#"{"start": {"model": "m", "streamId": "a", "options": {"topK": 3, "fill": "FILL_REPLICATE"}}}"#;
        let msg = decode_client(text.as_bytes(), WireFormat::Json).unwrap();
        let client_message::Msg::Start(start) = msg else {
            panic!("decoded {msg:?}");
        };
        assert_eq!(start.model, "m");
        assert_eq!(start.stream_id.as_deref(), Some("a"));
        let options = start.options.unwrap();
        assert_eq!(options.top_k, 3);
        assert_eq!(options.fill(), crate::v1::Fill::Replicate);

        // 64-bit integers as strings or numbers, bytes as base64.
        let text = r#"{"frame": {"seq": "7", "pts": 40, "encoded": "AQID"}}"#;
        let msg = decode_client(text.as_bytes(), WireFormat::Json).unwrap();
        assert_eq!(
            msg,
            client_message::Msg::Frame(Frame {
                seq: 7,
                pts: 40,
                payload: Some(frame::Payload::Encoded(vec![1, 2, 3])),
            })
        );
    }

    #[test]
    fn both_formats_round_trip_a_server_message() {
        let message = ServerMessage {
            msg: Some(server_message::Msg::Prediction(Prediction {
                seq: 3,
                pts: -1,
                top_k: vec![LabelScore {
                    index: 2,
                    label: "waving".into(),
                    score: 0.75,
                }],
                scores: vec![0.1, 0.15, 0.75],
                queue_us: 12,
                compute_us: 900,
                batch_size: 4,
                voice: Some(VoiceActivity {
                    in_speech: true,
                    speech_start: Some(1056),
                    speech_end: None,
                }),
            })),
        };
        let Encoded::Binary(bytes) = encode_server(&message, WireFormat::Protobuf) else {
            panic!("protobuf must be binary");
        };
        assert_eq!(ServerMessage::decode(bytes.as_slice()).unwrap(), message);
        let Encoded::Text(text) = encode_server(&message, WireFormat::Json) else {
            panic!("JSON must be text");
        };
        assert!(
            text.contains(r#""topK":[{"index":2,"label":"waving","score":0.75}]"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            message
        );
    }

    #[test]
    fn malformed_and_empty_messages_are_errors() {
        let start = ClientMessage {
            msg: Some(client_message::Msg::Start(Start {
                model: "m".into(),
                stream_id: None,
                options: Some(StreamOptions::default()),
            })),
        }
        .encode_to_vec();
        assert!(decode_client(&start, WireFormat::Protobuf).is_ok());
        let truncated = &start[..start.len() - 1];
        assert!(matches!(
            decode_client(truncated, WireFormat::Protobuf),
            Err(DecodeError::Protobuf(_))
        ));
        assert_eq!(
            decode_client(&[], WireFormat::Protobuf),
            Err(DecodeError::Empty)
        );
        for bad in [
            r#"{"start": {"model": 5}}"#,
            "{",
            r#"{"frame": {"seq": -1}}"#,
        ] {
            assert!(
                matches!(
                    decode_client(bad.as_bytes(), WireFormat::Json),
                    Err(DecodeError::Json(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            decode_client(b"{}", WireFormat::Json),
            Err(DecodeError::Empty)
        );
    }
}
