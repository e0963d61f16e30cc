//! One dead letter: the message as the stream keeps it, what it decodes
//! to (a send, a command or a notification, and its room), and its
//! summary for `list`.

use async_nats::jetstream::message::StreamMessage;
use chat_proto::{
    internal::{Command, Envelope},
    v1::Message,
};
use chat_protocol::{subjects, RoomId};
use prost::Message as _;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use super::args::Filter;
use chat_streams::headers::{ATTEMPTS, DEAD_DETAIL, DEAD_REASON};

/// One message of the dead-letter stream, decoded if it can be.
pub(super) struct DeadLetter {
    pub(super) msg: StreamMessage,
    /// Why it cannot be decoded, if so.
    pub(super) decoded: Result<Decoded, String>,
}

/// What a dead letter holds, and its room.
pub(super) struct Decoded {
    pub(super) letter: Letter,
    pub(super) room: RoomId,
}

pub(super) enum Letter {
    Send(Envelope),
    Command(Command),
    /// A stored message whose offline notifications were given up on.
    Notification(Message),
}

impl Decoded {
    /// Where a replay goes.
    pub(super) fn subject(&self) -> String {
        match self.letter {
            Letter::Send(_) => subjects::bulk(&self.room),
            Letter::Command(_) => subjects::command(&self.room),
            Letter::Notification(_) => subjects::notify(&self.room),
        }
    }

    /// Who sent it, and its id (client_msg_id or command id).
    fn sender_and_id(&self) -> (&str, &str) {
        match &self.letter {
            Letter::Send(e) => (&e.sender, &e.client_msg_id),
            Letter::Command(c) => (&c.actor, &c.command_id),
            Letter::Notification(m) => (&m.sender, &m.client_msg_id),
        }
    }
}

impl DeadLetter {
    pub(super) fn new(msg: StreamMessage) -> Self {
        let decoded = if subjects::is_dead_notification(&msg.subject) {
            Message::decode(&msg.payload[..])
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    let room = RoomId::parse(m.room.clone()).map_err(|e| e.to_string())?;
                    Ok(Decoded {
                        letter: Letter::Notification(m),
                        room,
                    })
                })
        } else if subjects::is_dead_command(&msg.subject) {
            Command::decode(&msg.payload[..])
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    let room = RoomId::parse(c.room.clone()).map_err(|e| e.to_string())?;
                    Ok(Decoded {
                        letter: Letter::Command(c),
                        room,
                    })
                })
        } else {
            chat_protocol::envelope::decode(&msg.payload)
                .map(|send| Decoded {
                    letter: Letter::Send(send.envelope),
                    room: send.room,
                })
                .map_err(|e| e.to_string())
        };
        Self { msg, decoded }
    }

    fn header(&self, name: &str) -> &str {
        self.msg.headers.get(name).map_or("", |v| v.as_str())
    }

    pub(super) fn reason(&self) -> &str {
        self.header(DEAD_REASON)
    }

    pub(super) fn matches(&self, filter: &Filter) -> bool {
        let room_ok = filter
            .room
            .as_ref()
            .is_none_or(|want| self.decoded.as_ref().is_ok_and(|d| d.room == *want));
        room_ok && filter.reason.as_deref().is_none_or(|r| r == self.reason())
    }

    /// What `list` prints of it, and the start of what `show` prints.
    pub(super) fn summary(&self) -> Summary {
        let decoded = self.decoded.as_ref().ok();
        let ids = decoded.map(Decoded::sender_and_id);
        Summary {
            seq: self.msg.sequence,
            time: self.msg.time.format(&Rfc3339).unwrap_or_default(),
            subject: self.msg.subject.to_string(),
            holds: if subjects::is_dead_notification(&self.msg.subject) {
                "notification"
            } else if subjects::is_dead_command(&self.msg.subject) {
                "command"
            } else {
                "send"
            },
            room: decoded.map(|d| d.room.to_string()),
            sender: ids.map(|(sender, _)| sender.to_owned()),
            client_msg_id: ids.map(|(_, id)| id.to_owned()),
            reason: self.reason().to_owned(),
            attempts: self.header(ATTEMPTS).parse().ok(),
            detail: self.header(DEAD_DETAIL).to_owned(),
        }
    }
}

#[derive(Serialize)]
pub(super) struct Summary {
    pub(super) seq: u64,
    pub(super) time: String,
    pub(super) subject: String,
    /// `send`, `command` or `notification`.
    holds: &'static str,
    pub(super) room: Option<String>,
    /// The sender (a command's actor).
    pub(super) sender: Option<String>,
    /// The client_msg_id (a command's id).
    pub(super) client_msg_id: Option<String>,
    pub(super) reason: String,
    pub(super) attempts: Option<u32>,
    pub(super) detail: String,
}
