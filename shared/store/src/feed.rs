//! A user's rooms as their feed shows them: each room's head, last entry,
//! the user's read marker and unread count, all rooms (or some) at once.

use chat_proto::v1::RoomSummary;
use chat_protocol::{RoomId, UserId};

use crate::error::StoreError;
use crate::my_rooms::last_entry;
use crate::pool::Store;
use crate::rows::access_from_row;
use crate::sql;

/// The layout of `sql::FEED_ROOMS` after the message's columns.
const ROOM: usize = sql::MESSAGE_COLUMNS;

impl Store {
    /// `user`'s rooms (only `rooms` when given), by room id, at most
    /// `limit`: one statement.
    pub async fn feed(
        &self,
        user: &UserId,
        rooms: Option<&[RoomId]>,
        limit: usize,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::FEED_ROOMS).await?;
        let only: Option<Vec<&str>> = rooms.map(|r| r.iter().map(RoomId::as_str).collect());
        let rows = client
            .query(&stmt, &[&user.as_str(), &only, &(limit as i64)])
            .await?;
        Ok(rows
            .iter()
            .map(|row| RoomSummary {
                room: row.get(ROOM),
                head_seq: row.get::<_, i64>(ROOM + 1) as u64,
                access: access_from_row(row, ROOM + 2).map(|a| a.to_proto()),
                last_message: last_entry(row),
                read_seq: row.get::<_, Option<i64>>(ROOM + 4).unwrap_or(0) as u64,
                unread: row.get::<_, i64>(ROOM + 5) as u32,
            })
            .collect())
    }
}
