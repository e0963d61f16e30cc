//! What workers write: a batch of sends (chat messages and the events that
//! change them), stored in one round trip.

use chat_proto::v1::Message;
use chat_protocol::{kind::EntryKind, ErrorCode, RoomId, Seq};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::error::StoreError;
use crate::pool::Store;
use crate::rows::{message_from_row, place_entry};
use crate::sql;

/// From this many chat messages (and nothing else) a batch is stored by one
/// INSERT (`sql::PERSIST_MESSAGES_AT_ONCE`); below it, a statement a row
/// costs Postgres less (bench/RESULTS.md §19).
pub const AT_ONCE_FROM: usize = 32;

/// A send to store, as the worker received it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub room: RoomId,
    pub sender: String,
    pub client_msg_id: String,
    /// A chat message's text, an edit's new text, a reaction's emoji.
    pub body: String,
    /// A chat message, or an event changing the message at `target`.
    pub kind: EntryKind,
    /// The message an event changes, or the one a chat message replies to.
    pub target: Option<Seq>,
    /// The id it was given when scheduled; `None`: a new one.
    pub id: Option<Uuid>,
}

/// What became of one `NewMessage` of a batch.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "`Stored` is the usual outcome: boxing its message would add an allocation per message"
)]
pub enum Persisted {
    /// Stored by this call (`fresh`) or found stored by an earlier one.
    Stored { message: Message, fresh: bool },
    /// The room does not exist; retrying cannot help.
    RoomMissing,
    /// The store refused it for good, and why.
    Refused(Refusal),
    /// A reaction that was already there (or, removed, was not): nothing
    /// to store, and no seq taken.
    Unchanged,
}

/// Why the store refused a send; checked under the room's lock, so the
/// state it judged by is the state the send would have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a member (any more), or `can_send_messages` revoked.
    CannotSend,
    /// An event by someone who is not a member (any more).
    NotMember,
    /// No entry at the target seq.
    NoSuchMessage,
    /// The target seq is an event, not a chat message.
    NotAMessage,
    /// The target was deleted.
    Deleted,
    /// An edit of another's message.
    NotAuthor,
    /// A delete of another's message without `can_delete_other_messages`.
    CannotDeleteOthers,
}

impl Refusal {
    /// `None` for a name this build does not know, and for `unchanged`.
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "cannot_send" => Self::CannotSend,
            "not_member" => Self::NotMember,
            "no_such_message" => Self::NoSuchMessage,
            "not_a_message" => Self::NotAMessage,
            "deleted" => Self::Deleted,
            "not_author" => Self::NotAuthor,
            "cannot_delete_others" => Self::CannotDeleteOthers,
            _ => return None,
        })
    }

    /// The error code its sender gets.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::CannotSend | Self::NotMember | Self::NotAuthor | Self::CannotDeleteOthers => {
                ErrorCode::Forbidden
            }
            Self::NoSuchMessage | Self::Deleted => ErrorCode::NotFound,
            Self::NotAMessage => ErrorCode::InvalidArgument,
        }
    }

    /// Why, in words, for its sender.
    pub fn reason(self) -> &'static str {
        match self {
            Self::CannotSend => "you may not send in this room",
            Self::NotMember => "not a member of this room",
            Self::NoSuchMessage => "no message at that seq in this room",
            Self::NotAMessage => "that seq is an event, not a chat message",
            Self::Deleted => "that message was deleted",
            Self::NotAuthor => "only its sender may edit a message",
            Self::CannotDeleteOthers => {
                "deleting another's message needs can_delete_other_messages"
            }
        }
    }
}

impl Store {
    /// Stores a batch in one statement (`persist_entries`, migration V10;
    /// for [`AT_ONCE_FROM`] chat messages or more, `persist_messages_at_once`,
    /// V17), idempotently on (room, sender, client_msg_id). Each
    /// room's row is locked (rooms in id order, so two workers never
    /// deadlock) and its new entries that pass the checks get the next
    /// seqs, in batch order;
    /// an event changes its message in the same transaction. Returns one
    /// outcome per input, in input order. An error means nothing is known:
    /// the caller must not acknowledge the batch. A batch is one statement,
    /// so one value Postgres refuses (see [`StoreError::is_retryable`])
    /// fails all of it and stores nothing.
    pub async fn persist(&self, batch: &[NewMessage]) -> Result<Vec<Persisted>, StoreError> {
        let client = self.pool.get().await?;
        persist_on(&client, batch).await
    }

    /// The messages at `seqs` of their rooms as they stand now (for the
    /// caches, after events changed them), in no particular order.
    pub async fn messages_at(&self, seqs: &[(RoomId, Seq)]) -> Result<Vec<Message>, StoreError> {
        let rooms: Vec<&str> = seqs.iter().map(|(r, _)| r.as_str()).collect();
        let at: Vec<i64> = seqs.iter().map(|(_, s)| s.get() as i64).collect();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MESSAGES_AT).await?;
        let rows = client.query(&stmt, &[&rooms, &at]).await?;
        Ok(rows.iter().map(message_from_row).collect())
    }
}

/// [`Store::persist`] on `client`, which may be a transaction's.
pub(crate) async fn persist_on(
    client: &impl GenericClient,
    batch: &[NewMessage],
) -> Result<Vec<Persisted>, StoreError> {
    let now = chat_protocol::now_ms();
    let rooms: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
    let senders: Vec<&str> = batch.iter().map(|m| m.sender.as_str()).collect();
    let cmids: Vec<&str> = batch.iter().map(|m| m.client_msg_id.as_str()).collect();
    let bodies: Vec<&str> = batch.iter().map(|m| m.body.as_str()).collect();
    let ids: Vec<Uuid> = batch
        .iter()
        .map(|m| m.id.unwrap_or_else(Uuid::now_v7))
        .collect();
    let stamps: Vec<i64> = vec![now; batch.len()];
    let at_once = batch.len() >= AT_ONCE_FROM
        && batch
            .iter()
            .all(|m| m.kind == EntryKind::Message && m.target.is_none());
    let rows = if at_once {
        let stmt = client.prepare_cached(sql::PERSIST_MESSAGES_AT_ONCE).await?;
        let params: [&(dyn ToSql + Sync); 6] = [&rooms, &senders, &cmids, &bodies, &ids, &stamps];
        client.query(&stmt, &params).await?
    } else {
        let kinds: Vec<&str> = batch.iter().map(|m| m.kind.as_str()).collect();
        let targets: Vec<Option<i64>> = batch
            .iter()
            .map(|m| m.target.map(|s| s.get() as i64))
            .collect();
        let stmt = client.prepare_cached(sql::PERSIST).await?;
        let params: [&(dyn ToSql + Sync); 8] = [
            &rooms, &senders, &cmids, &bodies, &ids, &stamps, &kinds, &targets,
        ];
        client.query(&stmt, &params).await?
    };
    let mut out = vec![Persisted::RoomMissing; batch.len()];
    for row in rows {
        let i = (row.get::<_, i32>(0) - 1) as usize;
        out[i] = match row.get::<_, Option<&str>>(6) {
            None => Persisted::Stored {
                message: stored(&batch[i], &row),
                fresh: row.get(5),
            },
            Some("unchanged") => Persisted::Unchanged,
            Some(name) => Persisted::Refused(Refusal::parse(name).ok_or_else(|| {
                StoreError::Inconsistent(format!("persist_entries refused as {name:?}"))
            })?),
        };
    }
    Ok(out)
}

/// The entry `persist_entries` stored (or found stored) for `m`, as it is
/// fanned out: an event names its message; a chat message is as sent.
fn stored(m: &NewMessage, row: &tokio_postgres::Row) -> Message {
    let target_seq = m.target.map_or(0, Seq::get);
    let target_id = row
        .get::<_, Option<Uuid>>(7)
        .map_or_else(String::new, |id| id.to_string());
    let seq = row.get::<_, i64>(1) as u64;
    let mut message = Message {
        room: m.room.to_string(),
        seq,
        id: row.get::<_, Uuid>(2).to_string(),
        sender: m.sender.clone(),
        ts_ms: row.get(4),
        client_msg_id: m.client_msg_id.clone(),
        ..Message::default()
    };
    place_entry(
        &mut message,
        Some(m.kind),
        row.get(3),
        target_seq,
        target_id,
    );
    if m.kind == EntryKind::Message {
        message.changed_seq = seq;
    } else {
        message.kind = m.kind.as_str().to_owned();
    }
    message
}
