//! The frames that add entries to a room (a reply, an edit, a delete, a
//! reaction), with signed seqs so that tests can send bad ones too, and
//! the wait for their answer.

use chat_proto::v1::{
    client_frame::Kind as Ask, Ack, Delete, Edit, Error as ErrorFrame, React, Send,
};

use crate::{frames::Frames, session::Session};

pub fn reply(room: &str, id: &str, body: &str, to: i64) -> Ask {
    Ask::Send(Send {
        room: room.into(),
        client_msg_id: id.into(),
        body: body.into(),
        reply_to: Some(to),
        deliver_at_ms: None,
    })
}

/// A chat message to send at `at` (Unix ms; any value, so that tests can
/// send bad ones too).
pub fn scheduled(room: &str, id: &str, body: &str, at: i64) -> Ask {
    Ask::Send(Send {
        room: room.into(),
        client_msg_id: id.into(),
        body: body.into(),
        reply_to: None,
        deliver_at_ms: Some(at),
    })
}

pub fn edit(room: &str, id: &str, seq: i64, body: &str) -> Ask {
    Ask::Edit(Edit {
        room: room.into(),
        seq,
        body: body.into(),
        client_msg_id: id.into(),
    })
}

pub fn delete(room: &str, id: &str, seq: i64) -> Ask {
    Ask::Delete(Delete {
        room: room.into(),
        seq,
        client_msg_id: id.into(),
    })
}

pub fn react(room: &str, id: &str, seq: i64, emoji: &str, remove: bool) -> Ask {
    Ask::React(React {
        room: room.into(),
        seq,
        emoji: emoji.into(),
        remove,
        client_msg_id: id.into(),
    })
}

impl Session {
    /// Writes an entry frame and waits for its ack or error (skipping
    /// pushed frames).
    pub async fn entry(&mut self, frame: Ask) -> Result<Ack, ErrorFrame> {
        let request_id = self.writer.request(frame).await.unwrap();
        self.reply_to(&request_id).await
    }
}
