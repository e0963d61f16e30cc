//! Properties of the codec over generated input: no input makes a decoder
//! panic, and every valid frame of every kind survives both encodings.
//! (`scripts/fuzz.sh` runs the same decoders under libFuzzer for longer.)

use bytes::Bytes;
use chat_proto::{
    internal::Envelope,
    v1::{
        client_frame, server_frame, Ack, CancelScheduled, ClientFrame, Delete, DirectRoom, Edit,
        Error, Join, Joined, Leave, Left, ListRooms, ListScheduled, MarkRead, MemberAccess,
        Message, OpenDirect, Ping, Pong, Presence, PresenceNow, React, Reaction, ReadBy,
        ReadMarker, Reads, ScheduledList, ScheduledMessage, Search, Send, ServerFrame, Typing,
        TypingNow, UserPresence,
    },
};
use chat_protocol::{
    codec::{DecodeError, Encoding, Payload},
    envelope::{self, EnvelopeError},
};
use proptest::prelude::*;
use prost::Message as _;

/// Any text, control characters and non-ASCII included.
fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    let kind = prop_oneof![
        (text(), any::<Option<u64>>())
            .prop_map(|(room, since_seq)| { client_frame::Kind::Join(Join { room, since_seq }) }),
        text().prop_map(|room| client_frame::Kind::Leave(Leave { room })),
        (
            text(),
            text(),
            text(),
            any::<Option<i64>>(),
            any::<Option<i64>>()
        )
            .prop_map(|(room, client_msg_id, body, reply_to, deliver_at_ms)| {
                client_frame::Kind::Send(Send {
                    room,
                    client_msg_id,
                    body,
                    reply_to,
                    deliver_at_ms,
                })
            }),
        (text(), text()).prop_map(|(room, id)| {
            client_frame::Kind::CancelScheduled(CancelScheduled { room, id })
        }),
        text().prop_map(|room| client_frame::Kind::ListScheduled(ListScheduled { room })),
        (text(), any::<i64>(), text(), text()).prop_map(|(room, seq, body, client_msg_id)| {
            client_frame::Kind::Edit(Edit {
                room,
                seq,
                body,
                client_msg_id,
            })
        }),
        (text(), any::<i64>(), text()).prop_map(|(room, seq, client_msg_id)| {
            client_frame::Kind::Delete(Delete {
                room,
                seq,
                client_msg_id,
            })
        }),
        (text(), any::<i64>(), text(), any::<bool>(), text()).prop_map(
            |(room, seq, emoji, remove, client_msg_id)| {
                client_frame::Kind::React(React {
                    room,
                    seq,
                    emoji,
                    remove,
                    client_msg_id,
                })
            }
        ),
        Just(client_frame::Kind::Ping(Ping {})),
        text().prop_map(|room| client_frame::Kind::Typing(Typing { room })),
        text().prop_map(|user| client_frame::Kind::OpenDirect(OpenDirect { user })),
        (text(), any::<i64>())
            .prop_map(|(room, seq)| client_frame::Kind::MarkRead(MarkRead { room, seq })),
        proptest::collection::vec(text(), 0..4)
            .prop_map(|users| client_frame::Kind::Presence(Presence { users })),
        (text(), any::<Option<u32>>())
            .prop_map(|(cursor, limit)| client_frame::Kind::ListRooms(ListRooms { cursor, limit })),
        (text(), text(), text(), any::<Option<u32>>()).prop_map(|(query, room, cursor, limit)| {
            client_frame::Kind::Search(Search {
                query,
                room,
                cursor,
                limit,
            })
        }),
    ];
    (text(), proptest::option::of(kind))
        .prop_map(|(request_id, kind)| ClientFrame { request_id, kind })
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let kind = prop_oneof![
        (text(), text(), text(), any::<u64>(), any::<i64>()).prop_map(
            |(room, client_msg_id, message_id, seq, server_ts_ms)| {
                server_frame::Kind::Ack(Ack {
                    room,
                    client_msg_id,
                    message_id,
                    seq,
                    server_ts_ms,
                })
            }
        ),
        (
            (text(), any::<u64>(), text(), text()),
            (text(), any::<i64>(), text()),
            (
                text(),
                text(),
                proptest::option::of((text(), proptest::collection::vec(text(), 0..4)))
            ),
            (
                (
                    any::<i64>(),
                    any::<bool>(),
                    any::<u64>(),
                    text(),
                    any::<u32>()
                ),
                proptest::collection::vec((text(), any::<u32>(), any::<bool>()), 0..3),
                (any::<u64>(), any::<u64>(), text(), text()),
            ),
        )
            .prop_map(
                |(
                    (room, seq, id, sender),
                    (body, ts_ms, client_msg_id),
                    (kind, member, access),
                    (
                        (edited_ts_ms, deleted, reply_to, reply_to_id, reply_count),
                        reactions,
                        (changed_seq, target_seq, target_id, emoji),
                    ),
                )| {
                    server_frame::Kind::Message(Message {
                        room,
                        seq,
                        id,
                        sender,
                        body,
                        ts_ms,
                        client_msg_id,
                        kind,
                        member,
                        access: access
                            .map(|(role, permissions)| MemberAccess { role, permissions }),
                        edited_ts_ms,
                        deleted,
                        reply_to,
                        reply_to_id,
                        reply_count,
                        reactions: reactions
                            .into_iter()
                            .map(|(emoji, count, mine)| Reaction { emoji, count, mine })
                            .collect(),
                        changed_seq,
                        target_seq,
                        target_id,
                        emoji,
                    })
                }
            ),
        (text(), text())
            .prop_map(|(code, message)| server_frame::Kind::Error(Error { code, message })),
        Just(server_frame::Kind::Pong(Pong {})),
        (text(), any::<u64>())
            .prop_map(|(room, head_seq)| server_frame::Kind::Joined(Joined { room, head_seq })),
        (text(), text()).prop_map(|(room, reason)| server_frame::Kind::Left(Left { room, reason })),
        (text(), proptest::collection::vec(text(), 0..4))
            .prop_map(|(room, users)| server_frame::Kind::TypingNow(TypingNow { room, users })),
        (text(), any::<bool>()).prop_map(|(room, created)| server_frame::Kind::DirectRoom(
            DirectRoom { room, created }
        )),
        (text(), any::<u64>(), any::<u32>(), any::<u64>()).prop_map(
            |(room, seq, unread, head_seq)| server_frame::Kind::ReadMarker(ReadMarker {
                room,
                seq,
                unread,
                head_seq
            })
        ),
        (
            text(),
            proptest::collection::vec((text(), any::<u64>()), 0..4)
        )
            .prop_map(|(room, reads)| server_frame::Kind::Reads(Reads {
                room,
                reads: reads
                    .into_iter()
                    .map(|(user, seq)| ReadBy { user, seq })
                    .collect(),
            })),
        (
            text(),
            proptest::collection::vec((text(), any::<bool>()), 0..4)
        )
            .prop_map(
                |(room, users)| server_frame::Kind::PresenceNow(PresenceNow {
                    room,
                    users: users
                        .into_iter()
                        .map(|(user, online)| UserPresence { user, online })
                        .collect(),
                })
            ),
        (
            text(),
            text(),
            any::<i64>(),
            any::<u64>(),
            text(),
            any::<u64>()
        )
            .prop_map(|(room, body, deliver_at_ms, reply_to, state, seq)| {
                let message = ScheduledMessage {
                    room: room.clone(),
                    id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
                    client_msg_id: "m1".into(),
                    body,
                    deliver_at_ms,
                    reply_to,
                    state,
                    seq,
                };
                server_frame::Kind::ScheduledList(ScheduledList {
                    room,
                    messages: vec![message.clone(), message],
                })
            }),
    ];
    (text(), proptest::option::of(kind))
        .prop_map(|(request_id, kind)| ServerFrame { request_id, kind })
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        ("[a-z0-9_-]{1,20}", text(), text(), text()),
        (any::<i64>(), text(), any::<u64>()),
        (0usize..5, any::<u64>()),
    )
        .prop_map(
            |(
                (room, sender, client_msg_id, body),
                (received_ts_ms, reply_to, ticket),
                (kind, target),
            )| {
                // A chat message, with or without a reply target, or an event with one.
                let kinds = [
                    "",
                    "message_edited",
                    "message_deleted",
                    "reaction_added",
                    "reaction_removed",
                ];
                Envelope {
                    room,
                    sender,
                    client_msg_id,
                    body,
                    received_ts_ms,
                    received_us: received_ts_ms.wrapping_mul(1000),
                    reply_to,
                    ticket,
                    trace: Default::default(),
                    kind: kinds[kind].into(),
                    target_seq: if kind == 0 { target } else { target.max(1) },
                }
            },
        )
}

fn both_encodings() -> impl Strategy<Value = Encoding> {
    prop_oneof![Just(Encoding::Json), Just(Encoding::Proto)]
}

/// A decode error of the kind the payload calls for.
fn typed_error(encoding: Encoding, payload: &Payload, e: &DecodeError) -> bool {
    match (encoding, payload, e) {
        (Encoding::Json, Payload::Text(_), DecodeError::Json(_))
        | (Encoding::Proto, Payload::Binary(_), DecodeError::Proto(_)) => true,
        (_, _, DecodeError::WrongFrameType(..)) => {
            matches!(
                (encoding, payload),
                (Encoding::Json, Payload::Binary(_)) | (Encoding::Proto, Payload::Text(_))
            )
        }
        _ => false,
    }
}

/// Arbitrary bytes, also as (lossy) text: what a socket may deliver.
fn payload() -> impl Strategy<Value = Payload> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..256);
    prop_oneof![
        bytes.clone().prop_map(|b| Payload::Binary(Bytes::from(b))),
        bytes.prop_map(|b| Payload::Text(String::from_utf8_lossy(&b).into_owned())),
        // Near-JSON: braces, quotes and field names make deeper paths likely.
        r#"[{}\[\]":,0-9a-zA-Z \\-]{0,80}"#.prop_map(Payload::Text),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn client_frames_round_trip_in_both_encodings(frame in client_frame(), enc in both_encodings()) {
        let back: ClientFrame = enc.decode(&enc.encode(&frame)).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn server_frames_round_trip_in_both_encodings(frame in server_frame(), enc in both_encodings()) {
        let back: ServerFrame = enc.decode(&enc.encode(&frame)).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn envelopes_round_trip(env in envelope()) {
        let back = envelope::decode(&env.encode_to_vec()).unwrap();
        prop_assert_eq!(back.room.as_str(), env.room.as_str());
        prop_assert_eq!(back.envelope, env);
    }

    #[test]
    fn any_payload_decodes_to_a_frame_or_a_typed_error(payload in payload(), enc in both_encodings()) {
        match enc.decode::<ClientFrame>(&payload) {
            // What decodes must encode and decode to itself.
            Ok(frame) => {
                let again: ClientFrame = enc.decode(&enc.encode(&frame)).unwrap();
                prop_assert_eq!(again, frame);
            }
            Err(e) => prop_assert!(typed_error(enc, &payload, &e), "{:?} for {:?}", e, payload),
        }
        if let Err(e) = enc.decode::<ServerFrame>(&payload) {
            prop_assert!(typed_error(enc, &payload, &e), "{:?} for {:?}", e, payload);
        }
    }

    #[test]
    fn any_bytes_decode_to_an_envelope_with_a_valid_room_or_a_typed_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        match envelope::decode(&bytes) {
            Ok(send) => prop_assert_eq!(send.room.as_str(), send.envelope.room.as_str()),
            Err(EnvelopeError::Decode(_) | EnvelopeError::Room(_) | EnvelopeError::Entry { .. }) => {}
            Err(e @ EnvelopeError::Empty) => prop_assert!(false, "{e} for a lone envelope"),
        }
    }

    #[test]
    fn any_bytes_decode_to_a_batch_of_valid_rooms_or_a_typed_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        match envelope::decode_batch(&bytes) {
            Ok(sends) => {
                prop_assert!(!sends.is_empty());
                for send in sends {
                    prop_assert_eq!(send.room.as_str(), send.envelope.room.as_str());
                }
            }
            Err(
                EnvelopeError::Decode(_)
                | EnvelopeError::Room(_)
                | EnvelopeError::Empty
                | EnvelopeError::Entry { .. },
            ) => {}
        }
    }
}
