//! Scheduled messages: kept at once, sent at their time by whichever worker
//! takes them (one transaction stores the message and marks the row sent,
//! so a worker's crash leaves either both or neither), cancelled by their
//! sender until then. See `migrations/V12__scheduled_messages.sql`.

use chat_proto::v1::ScheduledMessage;
use chat_protocol::{access::Permissions, kind::EntryKind, ErrorCode, RoomId, Seq, UserId};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::StoreError;
use crate::persist::{persist_on, NewMessage, Persisted};
use crate::pool::Store;
use crate::sql;

/// Pending scheduled messages a member may hold in one room.
pub const MAX_PENDING: i64 = 100;

/// A message to send at `deliver_at_ms`.
#[derive(Clone, Debug)]
pub struct ToSchedule {
    pub id: Uuid,
    pub room: RoomId,
    pub sender: UserId,
    pub client_msg_id: String,
    pub body: String,
    pub reply_to: Option<Seq>,
    pub deliver_at_ms: i64,
}

/// A scheduled message's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduled {
    pub id: Uuid,
    pub room: String,
    pub sender: String,
    pub client_msg_id: String,
    pub body: String,
    pub reply_to: Option<i64>,
    pub deliver_at_ms: i64,
    pub state: String,
    pub seq: Option<i64>,
}

impl Scheduled {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            room: row.get(1),
            sender: row.get(2),
            client_msg_id: row.get(3),
            body: row.get(4),
            reply_to: row.get(5),
            deliver_at_ms: row.get(6),
            state: row.get(7),
            seq: row.get(8),
        }
    }

    pub fn to_proto(&self) -> ScheduledMessage {
        ScheduledMessage {
            room: self.room.clone(),
            id: self.id.to_string(),
            client_msg_id: self.client_msg_id.clone(),
            body: self.body.clone(),
            deliver_at_ms: self.deliver_at_ms,
            reply_to: self.reply_to.map_or(0, |s| s as u64),
            state: self.state.clone(),
            seq: self.seq.map_or(0, |s| s as u64),
        }
    }

    /// The message it becomes at its time.
    fn to_send(&self) -> Result<NewMessage, StoreError> {
        let room = RoomId::parse(self.room.clone()).map_err(|e| {
            StoreError::Inconsistent(format!("scheduled in room {:?}: {e}", self.room))
        })?;
        Ok(NewMessage {
            room,
            sender: self.sender.clone(),
            client_msg_id: self.client_msg_id.clone(),
            body: self.body.clone(),
            kind: EntryKind::Message,
            target: self.reply_to.map(|s| Seq::new(s as u64)),
            id: Some(self.id),
        })
    }
}

/// Why scheduling or cancelling changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleRefused {
    #[error("deliverAtMs is not in the future")]
    InThePast,
    #[error("you may not send messages in this room")]
    CannotSend,
    #[error("at most 100 scheduled messages may wait per member and room")]
    TooMany,
    #[error("no such scheduled message in this room")]
    NotFound,
    #[error("only its sender may cancel a scheduled message")]
    NotSender,
    #[error("the scheduled message was already sent")]
    AlreadySent,
}

impl ScheduleRefused {
    pub fn code(self) -> ErrorCode {
        match self {
            Self::InThePast => ErrorCode::InvalidArgument,
            Self::CannotSend | Self::NotSender => ErrorCode::Forbidden,
            Self::TooMany => ErrorCode::LimitExceeded,
            Self::NotFound => ErrorCode::NotFound,
            Self::AlreadySent => ErrorCode::Conflict,
        }
    }
}

/// A due message one worker's turn took, and what storing it did.
#[derive(Debug)]
pub struct SentDue {
    pub room: RoomId,
    pub row: Scheduled,
    pub outcome: Persisted,
}

impl Store {
    /// Schedules a message once per (room, sender, client_msg_id): a resend
    /// is answered with the row as it stands (pending, sent or cancelled),
    /// even past its time; a new one must be due in the future.
    pub async fn schedule(
        &self,
        new: &ToSchedule,
    ) -> Result<Result<Scheduled, ScheduleRefused>, StoreError> {
        let client = self.pool.get().await?;
        let (room, sender) = (new.room.as_str(), new.sender.as_str());
        let key = client.prepare_cached(sql::SCHEDULED_BY_KEY).await?;
        if let Some(row) = client
            .query_opt(&key, &[&room, &sender, &new.client_msg_id])
            .await?
        {
            return Ok(Ok(Scheduled::from_row(&row)));
        }
        // Checked here, not before: a resend after its time is answered
        // above with the message as it stands.
        if new.deliver_at_ms <= chat_protocol::now_ms() {
            return Ok(Err(ScheduleRefused::InThePast));
        }
        let stmt = client.prepare_cached(sql::SCHEDULE).await?;
        let reply_to = new.reply_to.map(|s| s.get() as i64);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &new.id,
            &room,
            &sender,
            &new.client_msg_id,
            &new.body,
            &reply_to,
            &new.deliver_at_ms,
            &MAX_PENDING,
        ];
        if let Some(row) = client.query_opt(&stmt, &params).await? {
            return Ok(Ok(Scheduled::from_row(&row)));
        }
        // Taken meanwhile by the same key, or refused: which one?
        if let Some(row) = client
            .query_opt(&key, &[&room, &sender, &new.client_msg_id])
            .await?
        {
            return Ok(Ok(Scheduled::from_row(&row)));
        }
        drop(client);
        let may_send = self
            .access(&new.room, &new.sender)
            .await?
            .is_some_and(|access| access.can(Permissions::SEND_MESSAGES));
        Ok(Err(if may_send {
            ScheduleRefused::TooMany
        } else {
            ScheduleRefused::CannotSend
        }))
    }

    /// Cancels `sender`'s pending message `id` in `room`; cancelling again
    /// answers the cancelled row.
    pub async fn cancel_scheduled(
        &self,
        room: &RoomId,
        sender: &UserId,
        id: Uuid,
    ) -> Result<Result<Scheduled, ScheduleRefused>, StoreError> {
        let client = self.pool.get().await?;
        let cancel = client.prepare_cached(sql::CANCEL_SCHEDULED).await?;
        let (room, sender) = (room.as_str(), sender.as_str());
        if let Some(row) = client.query_opt(&cancel, &[&room, &id, &sender]).await? {
            return Ok(Ok(Scheduled::from_row(&row)));
        }
        let by_id = client.prepare_cached(sql::SCHEDULED_BY_ID).await?;
        let Some(row) = client.query_opt(&by_id, &[&room, &id]).await? else {
            return Ok(Err(ScheduleRefused::NotFound));
        };
        let found = Scheduled::from_row(&row);
        Ok(match found.state.as_str() {
            _ if found.sender != sender => Err(ScheduleRefused::NotSender),
            "cancelled" => Ok(found),
            _ => Err(ScheduleRefused::AlreadySent),
        })
    }

    /// `sender`'s pending messages in `room`, soonest first.
    pub async fn pending_scheduled(
        &self,
        room: &RoomId,
        sender: &UserId,
    ) -> Result<Vec<Scheduled>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::PENDING_SCHEDULED).await?;
        let rows = client
            .query(&stmt, &[&room.as_str(), &sender.as_str()])
            .await?;
        Ok(rows.iter().map(Scheduled::from_row).collect())
    }

    /// Sends up to `limit` due messages in one transaction: each is stored
    /// like a send (`persist_entries`, with its scheduled id) and its row
    /// marked sent, or refused when the store refused it. Rows another
    /// worker holds are left to it.
    pub async fn send_due(&self, limit: i64) -> Result<Vec<SentDue>, StoreError> {
        let mut client = self.pool.get().await?;
        let any = client.prepare_cached(sql::ANY_DUE).await?;
        if !client.query_one(&any, &[]).await?.get::<_, bool>(0) {
            return Ok(Vec::new());
        }
        let tx = client.transaction().await?;
        let take = tx.prepare_cached(sql::TAKE_DUE).await?;
        let due: Vec<Scheduled> = tx
            .query(&take, &[&limit])
            .await?
            .iter()
            .map(Scheduled::from_row)
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let batch = due
            .iter()
            .map(Scheduled::to_send)
            .collect::<Result<Vec<_>, _>>()?;
        let outcomes = persist_on(&tx, &batch).await?;
        let ids: Vec<Uuid> = due.iter().map(|s| s.id).collect();
        let (states, seqs): (Vec<&str>, Vec<Option<i64>>) = outcomes
            .iter()
            .map(|outcome| match outcome {
                Persisted::Stored { message, .. } => ("sent", Some(message.seq as i64)),
                _ => ("refused", None),
            })
            .unzip();
        let done = tx.prepare_cached(sql::SCHEDULED_DONE).await?;
        tx.execute(&done, &[&ids, &states, &seqs]).await?;
        tx.commit().await?;
        Ok(due
            .into_iter()
            .zip(batch)
            .zip(outcomes)
            .zip(states.iter().zip(&seqs))
            .map(|(((mut row, sent), outcome), (state, seq))| {
                row.state = (*state).to_owned();
                row.seq = *seq;
                SentDue {
                    room: sent.room,
                    row,
                    outcome,
                }
            })
            .collect())
    }
}
