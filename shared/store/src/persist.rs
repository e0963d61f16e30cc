//! What workers write: a batch of sends, stored in one round trip.

use chat_proto::v1::Message;
use chat_protocol::RoomId;
use uuid::Uuid;

use crate::error::StoreError;
use crate::pool::Store;
use crate::sql;

/// A send to store, as the worker received it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub room: RoomId,
    pub sender: String,
    pub client_msg_id: String,
    pub body: String,
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
    /// The sender may not send in the room (any more): not a member, or
    /// `can_send_messages` revoked before the send came to be stored.
    Forbidden,
}

impl Store {
    /// Stores a batch in one statement (`persist_messages`, see migration
    /// V6), idempotently on (room, sender, client_msg_id). Each room's row is
    /// locked (rooms in id order, so two workers never deadlock) and its new
    /// messages from senders who may send get the next seqs, in batch order. Returns one outcome per
    /// input, in input order. An error means nothing is known: the caller
    /// must not acknowledge the batch. A batch is one statement, so one
    /// value Postgres refuses (see [`StoreError::is_retryable`]) fails all of
    /// it and stores nothing.
    pub async fn persist(&self, batch: &[NewMessage]) -> Result<Vec<Persisted>, StoreError> {
        let now = chat_protocol::now_ms();
        let rooms: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
        let senders: Vec<&str> = batch.iter().map(|m| m.sender.as_str()).collect();
        let cmids: Vec<&str> = batch.iter().map(|m| m.client_msg_id.as_str()).collect();
        let bodies: Vec<&str> = batch.iter().map(|m| m.body.as_str()).collect();
        let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let stamps: Vec<i64> = vec![now; batch.len()];
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::PERSIST).await?;
        let rows = client
            .query(&stmt, &[&rooms, &senders, &cmids, &bodies, &ids, &stamps])
            .await?;
        let mut out = vec![Persisted::RoomMissing; batch.len()];
        for row in rows {
            let i = (row.get::<_, i32>(0) - 1) as usize;
            let m = &batch[i];
            if !row.get::<_, bool>(6) {
                out[i] = Persisted::Forbidden;
                continue;
            }
            out[i] = Persisted::Stored {
                message: Message {
                    room: m.room.to_string(),
                    seq: row.get::<_, i64>(1) as u64,
                    id: row.get::<_, Uuid>(2).to_string(),
                    sender: m.sender.clone(),
                    body: row.get(3),
                    ts_ms: row.get(4),
                    client_msg_id: m.client_msg_id.clone(),
                    ..Message::default()
                },
                fresh: row.get(5),
            };
        }
        Ok(out)
    }
}
