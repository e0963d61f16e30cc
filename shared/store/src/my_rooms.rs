//! The rooms a user belongs to, newest activity first, a page per query.

use chat_proto::v1::{Message, RoomSummary};
use chat_protocol::UserId;
use tokio_postgres::Row;

use crate::error::StoreError;
use crate::pool::Store;
use crate::rows::{access_from_row, message_from_row};
use crate::sql;

/// Where a walk through a user's rooms stands: the snapshot it orders by
/// (µs since the epoch, fixed by its first page) and the last room it
/// returned, by activity (µs) and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomsPosition {
    pub snapshot: i64,
    pub activity: i64,
    pub room: String,
}

/// One page of a user's rooms; `next` is where the next page starts,
/// `None` on the last.
#[derive(Debug)]
pub struct RoomsPage {
    pub rooms: Vec<RoomSummary>,
    pub next: Option<RoomsPosition>,
}

/// The layout of `sql::MY_ROOMS` after the message's columns.
const ROOM: usize = sql::MESSAGE_COLUMNS;

impl Store {
    /// A page of at most `limit` of `user`'s rooms, after `after` (a
    /// walk's position) or from the newest: one statement.
    pub async fn my_rooms(
        &self,
        user: &UserId,
        after: Option<&RoomsPosition>,
        limit: usize,
    ) -> Result<RoomsPage, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MY_ROOMS).await?;
        // One row more than asked says whether another page follows.
        let rows = client
            .query(
                &stmt,
                &[
                    &user.as_str(),
                    &after.map(|p| p.snapshot),
                    &after.map(|p| p.activity),
                    &after.map(|p| p.room.as_str()),
                    &(limit as i64 + 1),
                ],
            )
            .await?;
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let next = match rows.last() {
            Some(row) if more => Some(RoomsPosition {
                snapshot: row.get(ROOM + 5),
                activity: row.get(ROOM + 4),
                room: row.get(ROOM),
            }),
            _ => None,
        };
        Ok(RoomsPage {
            rooms: rows.iter().map(summary_from_row).collect(),
            next,
        })
    }
}

fn summary_from_row(row: &Row) -> RoomSummary {
    RoomSummary {
        room: row.get(ROOM),
        head_seq: row.get::<_, i64>(ROOM + 1) as u64,
        access: access_from_row(row, ROOM + 2).map(|a| a.to_proto()),
        last_message: last_entry(row),
        read_seq: row.get::<_, Option<i64>>(ROOM + 6).unwrap_or(0) as u64,
        unread: row.get::<_, i64>(ROOM + 7) as u32,
    }
}

/// The row's message columns, NULL when the room has no entry.
pub(crate) fn last_entry(row: &Row) -> Option<Message> {
    row.get::<_, Option<i64>>(1)
        .is_some()
        .then(|| message_from_row(row))
}
