//! The two encodings of the wire protocol, negotiated by WebSocket subprotocol.
//!
//! Both the gateway (decoding client frames) and clients (decoding server
//! frames) use this, so the two sides cannot drift apart.

use bytes::Bytes;
use prost::Message;
use serde::{de::DeserializeOwned, Serialize};

/// Subprotocol for text frames carrying proto3 canonical JSON.
pub const JSON_SUBPROTOCOL: &str = "chat.v1.json";
/// Subprotocol for binary frames carrying protobuf.
pub const PROTO_SUBPROTOCOL: &str = "chat.v1.proto";

/// One of the two encodings a socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    Json,
    Proto,
}

/// A frame's payload, independent of the WebSocket library in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Text(String),
    Binary(Bytes),
}

impl Payload {
    /// The payload as a message of whichever WebSocket library is in use
    /// (axum's and tungstenite's both convert from text and bytes).
    pub fn into_message<M: From<String> + From<Bytes>>(self) -> M {
        match self {
            Self::Text(text) => text.into(),
            Self::Binary(bytes) => bytes.into(),
        }
    }
}

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON frame: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid protobuf frame: {0}")]
    Proto(#[from] prost::DecodeError),
    #[error("a {0:?} socket expects {1} frames")]
    WrongFrameType(Encoding, &'static str),
}

impl Encoding {
    /// The encoding a subprotocol names, if any.
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        match name {
            JSON_SUBPROTOCOL => Some(Self::Json),
            PROTO_SUBPROTOCOL => Some(Self::Proto),
            _ => None,
        }
    }

    pub fn subprotocol(self) -> &'static str {
        match self {
            Self::Json => JSON_SUBPROTOCOL,
            Self::Proto => PROTO_SUBPROTOCOL,
        }
    }

    pub fn encode<M: Message + Serialize>(self, msg: &M) -> Payload {
        match self {
            Self::Json => {
                Payload::Text(serde_json::to_string(msg).expect("generated types always serialize"))
            }
            Self::Proto => Payload::Binary(Bytes::from(msg.encode_to_vec())),
        }
    }

    pub fn decode<M: Message + Default + DeserializeOwned>(
        self,
        payload: &Payload,
    ) -> Result<M, DecodeError> {
        match (self, payload) {
            (Self::Json, Payload::Text(text)) => Ok(serde_json::from_str(text)?),
            (Self::Proto, Payload::Binary(bytes)) => Ok(M::decode(bytes.as_ref())?),
            (Self::Json, Payload::Binary(_)) => Err(DecodeError::WrongFrameType(self, "text")),
            (Self::Proto, Payload::Text(_)) => Err(DecodeError::WrongFrameType(self, "binary")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::v1::{client_frame::Kind, ClientFrame, Send};

    fn send_frame() -> ClientFrame {
        ClientFrame {
            request_id: "r1".into(),
            kind: Some(Kind::Send(Send {
                room: "lobby".into(),
                client_msg_id: "c1".into(),
                body: "hi".into(),
                reply_to: None,
                deliver_at_ms: None,
            })),
        }
    }

    #[test]
    fn both_encodings_round_trip() {
        for enc in [Encoding::Json, Encoding::Proto] {
            let payload = enc.encode(&send_frame());
            let back: ClientFrame = enc.decode(&payload).unwrap();
            assert_eq!(back, send_frame());
        }
    }

    #[test]
    fn json_uses_the_canonical_mapping() {
        let Payload::Text(text) = Encoding::Json.encode(&send_frame()) else {
            panic!("json encodes text");
        };
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["requestId"], "r1");
        assert_eq!(value["send"]["clientMsgId"], "c1");
    }

    #[test]
    fn unknown_kinds_decode_to_no_kind() {
        let frame: ClientFrame = Encoding::Json
            .decode(&Payload::Text(r#"{"requestId":"1","dance":{}}"#.into()))
            .unwrap();
        assert_eq!(frame.kind, None);
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(Encoding::Json
            .decode::<ClientFrame>(&Payload::Text("{not json".into()))
            .is_err());
        assert!(Encoding::Proto
            .decode::<ClientFrame>(&Payload::Binary(Bytes::from_static(&[0x12, 0xff, 0x01])))
            .is_err());
    }
}
