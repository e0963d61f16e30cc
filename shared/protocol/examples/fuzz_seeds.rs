//! Writes the fuzzers' seed corpus: real frames of every kind, in both
//! encodings, and real ingest envelopes, encoded by this crate's codec so
//! that they follow the protocol as it is. `scripts/fuzz.sh` runs it.
//!
//! `cargo run -p chat-protocol --example fuzz_seeds -- fuzz/seeds`

use std::{fs, path::Path};

use chat_proto::{
    internal::{Envelope, EnvelopeBatch},
    v1::{
        client_frame::Kind, CancelScheduled, ClientFrame, Edit, Join, Leave, ListRooms, OpenDirect,
        Ping, React, Search, Send,
    },
};
use chat_protocol::codec::{Encoding, Payload};
use prost::Message as _;

fn frames() -> Vec<(&'static str, ClientFrame)> {
    let frame = |request_id: &str, kind| ClientFrame {
        request_id: request_id.into(),
        kind,
    };
    vec![
        (
            "join",
            frame(
                "1",
                Some(Kind::Join(Join {
                    room: "lobby".into(),
                    since_seq: None,
                })),
            ),
        ),
        (
            "join_since",
            frame(
                "2",
                Some(Kind::Join(Join {
                    room: "lobby".into(),
                    since_seq: Some(41),
                })),
            ),
        ),
        (
            "leave",
            frame(
                "3",
                Some(Kind::Leave(Leave {
                    room: "lobby".into(),
                })),
            ),
        ),
        (
            "send",
            frame(
                "4",
                Some(Kind::Send(Send {
                    room: "lobby".into(),
                    client_msg_id: "0193-a".into(),
                    body: "hi ✓ \"quoted\" \\ \u{1F600}".into(),
                    reply_to: Some(3),
                    deliver_at_ms: None,
                })),
            ),
        ),
        (
            "send_scheduled",
            frame(
                "40",
                Some(Kind::Send(Send {
                    room: "lobby".into(),
                    client_msg_id: "0193-b".into(),
                    body: "later".into(),
                    reply_to: None,
                    deliver_at_ms: Some(1_800_000_000_000),
                })),
            ),
        ),
        (
            "cancel_scheduled",
            frame(
                "41",
                Some(Kind::CancelScheduled(CancelScheduled {
                    room: "lobby".into(),
                    id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
                })),
            ),
        ),
        ("ping", frame("5", Some(Kind::Ping(Ping {})))),
        (
            "edit",
            frame(
                "10",
                Some(Kind::Edit(Edit {
                    room: "lobby".into(),
                    seq: 3,
                    body: "fixed".into(),
                    client_msg_id: "0193-b".into(),
                })),
            ),
        ),
        (
            "react",
            frame(
                "11",
                Some(Kind::React(React {
                    room: "lobby".into(),
                    seq: 3,
                    emoji: "\u{1F44D}".into(),
                    remove: false,
                    client_msg_id: "0193-c".into(),
                })),
            ),
        ),
        ("no_kind", frame("6", None)),
        (
            "open_direct",
            frame(
                "7",
                Some(Kind::OpenDirect(OpenDirect { user: "bob".into() })),
            ),
        ),
        (
            "list_rooms",
            frame(
                "8",
                Some(Kind::ListRooms(ListRooms {
                    cursor: "726f6f6d7331".into(),
                    limit: Some(50),
                })),
            ),
        ),
        (
            "search",
            frame(
                "9",
                Some(Kind::Search(Search {
                    query: "\"deploy now\" or ship -late".into(),
                    room: "lobby".into(),
                    cursor: String::new(),
                    limit: Some(20),
                })),
            ),
        ),
    ]
}

fn envelopes() -> Vec<(&'static str, Envelope)> {
    let envelope = Envelope {
        room: "lobby".into(),
        sender: "alice".into(),
        client_msg_id: "0193-a".into(),
        body: "hi".into(),
        received_ts_ms: 1_700_000_000_000,
        received_us: 1_700_000_000_000_000,
        reply_to: "chat.receipt.gw1".into(),
        ticket: 42,
        kind: String::new(),
        target_seq: 0,
        trace: [(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        )]
        .into(),
    };
    vec![
        ("send", envelope.clone()),
        (
            "long_body",
            Envelope {
                body: "x".repeat(300),
                ..envelope.clone()
            },
        ),
        (
            "bad_room",
            Envelope {
                room: "no spaces".into(),
                ..envelope
            },
        ),
    ]
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).expect("create the corpus folder");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    let out = Path::new(&out);
    for (name, frame) in frames() {
        for (target, encoding) in [
            ("client_frame_json", Encoding::Json),
            ("client_frame_proto", Encoding::Proto),
        ] {
            let bytes = match encoding.encode(&frame) {
                Payload::Text(text) => text.into_bytes(),
                Payload::Binary(bytes) => bytes.to_vec(),
            };
            write(out, target, name, &bytes);
        }
    }
    // An unknown kind, as a newer client might send it.
    write(
        out,
        "client_frame_json",
        "unknown_kind",
        br#"{"requestId":"7","dance":{}}"#,
    );
    for (name, envelope) in envelopes() {
        write(out, "envelope", name, &envelope.encode_to_vec());
    }
    // A gateway's batch of every seed envelope.
    let envelopes = envelopes().into_iter().map(|(_, e)| e).collect();
    write(
        out,
        "envelope",
        "batch",
        &EnvelopeBatch { envelopes }.encode_to_vec(),
    );
    println!("seeds written under {}", out.display());
}
