//! The protobuf bytes docs/protocol.md shows for read markers, presence and
//! scheduled messages
//! are what the codec writes, so the document cannot drift from the code.

use chat_proto::v1::{
    client_frame, server_frame, CancelScheduled, ClientFrame, MarkRead, Presence, PresenceNow,
    ReadBy, ReadMarker, Reads, Send, ServerFrame, UserPresence,
};
use prost::Message as _;

/// The scheduled message's id in the document's example.
const SCHEDULED_ID: &str = "0193e3a5-7c41-7b2e-9f0a-3d5c8e1f2a40";

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn document() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/protocol.md"
    ))
    .expect("docs/protocol.md")
}

#[test]
fn the_documented_bytes_are_the_encoded_frames() {
    let client = |request_id: &str, kind| ClientFrame {
        request_id: request_id.into(),
        kind: Some(kind),
    };
    let server = |request_id: &str, kind| ServerFrame {
        request_id: request_id.into(),
        kind: Some(kind),
    };
    let frames = [
        client(
            "9",
            client_frame::Kind::MarkRead(MarkRead {
                room: "team".into(),
                seq: 7,
            }),
        )
        .encode_to_vec(),
        server(
            "9",
            server_frame::Kind::ReadMarker(ReadMarker {
                room: "team".into(),
                seq: 7,
                unread: 2,
                head_seq: 9,
            }),
        )
        .encode_to_vec(),
        server(
            "",
            server_frame::Kind::Reads(Reads {
                room: "team".into(),
                reads: vec![ReadBy {
                    user: "bob".into(),
                    seq: 7,
                }],
            }),
        )
        .encode_to_vec(),
        client(
            "5",
            client_frame::Kind::Presence(Presence {
                users: vec!["bob".into(), "cat".into()],
            }),
        )
        .encode_to_vec(),
        server(
            "",
            server_frame::Kind::PresenceNow(PresenceNow {
                room: "team".into(),
                users: vec![UserPresence {
                    user: "cat".into(),
                    online: true,
                }],
            }),
        )
        .encode_to_vec(),
        client(
            "12",
            client_frame::Kind::Send(Send {
                room: "team".into(),
                client_msg_id: "m9".into(),
                body: "standup".into(),
                reply_to: None,
                deliver_at_ms: Some(1_800_000_000_000),
            }),
        )
        .encode_to_vec(),
        client(
            "13",
            client_frame::Kind::CancelScheduled(CancelScheduled {
                room: "team".into(),
                id: SCHEDULED_ID.into(),
            }),
        )
        .encode_to_vec(),
    ];
    let document = document();
    for bytes in frames {
        let shown = hex(&bytes);
        assert!(document.contains(&shown), "docs/protocol.md lacks {shown}");
    }
}
