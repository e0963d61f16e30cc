//! The protobuf bytes docs/protocol.md shows for read markers and presence
//! are what the codec writes, so the document cannot drift from the code.

use chat_proto::v1::{
    client_frame, server_frame, ClientFrame, MarkRead, Presence, PresenceNow, ReadBy, ReadMarker,
    Reads, ServerFrame, UserPresence,
};
use prost::Message as _;

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
    ];
    let document = document();
    for bytes in frames {
        let shown = hex(&bytes);
        assert!(document.contains(&shown), "docs/protocol.md lacks {shown}");
    }
}
