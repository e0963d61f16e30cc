//! Read markers: the last seq each member has read in a room, and how many
//! chat messages of others follow it (the unread count).

use chat_protocol::{RoomId, Seq, UserId};

use crate::error::StoreError;
use crate::pool::Store;
use crate::sql;

/// A member's mark: they have read `room` up to `seq`.
#[derive(Clone, Debug)]
pub struct Mark {
    pub room: RoomId,
    pub user: UserId,
    pub seq: Seq,
}

/// What became of one mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marked {
    /// The marker as it stands after the batch (never lower than before),
    /// whether this batch moved it, and the unread messages up to `head`.
    Marker {
        seq: Seq,
        moved: bool,
        unread: u32,
        head: Seq,
    },
    /// The user is not a member of the room (or there is no such room).
    NotMember,
    /// The mark is past the room's last seq.
    BeyondHead { head: Seq },
}

impl Store {
    /// Stores a batch of marks in one statement: each member's marker moves
    /// to the highest of their marks that is not past the room's head.
    /// One outcome per mark, in order.
    pub async fn mark_read(&self, marks: &[Mark]) -> Result<Vec<Marked>, StoreError> {
        let rooms: Vec<&str> = marks.iter().map(|m| m.room.as_str()).collect();
        let users: Vec<&str> = marks.iter().map(|m| m.user.as_str()).collect();
        let seqs: Vec<i64> = marks.iter().map(|m| m.seq.get() as i64).collect();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MARK_READ).await?;
        let rows = client.query(&stmt, &[&rooms, &users, &seqs]).await?;
        if rows.len() != marks.len() {
            return Err(StoreError::Inconsistent(format!(
                "{} marks, {} outcomes",
                marks.len(),
                rows.len()
            )));
        }
        Ok(marks
            .iter()
            .zip(&rows)
            .map(|(mark, row)| match row.get::<_, Option<i64>>(0) {
                None => Marked::NotMember,
                Some(head) if mark.seq.get() > head as u64 => Marked::BeyondHead {
                    head: Seq::new(head as u64),
                },
                Some(head) => Marked::Marker {
                    seq: Seq::new(row.get::<_, i64>(1) as u64),
                    moved: row.get(2),
                    unread: row.get::<_, i64>(3) as u32,
                    head: Seq::new(head as u64),
                },
            })
            .collect())
    }

    /// The user's read marker in the room and their unread messages up to
    /// `up_to`; `None` if not a member.
    pub async fn read_state(
        &self,
        room: &RoomId,
        user: &UserId,
        up_to: Seq,
    ) -> Result<Option<(Seq, u32)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::READ_STATE).await?;
        let row = client
            .query_opt(
                &stmt,
                &[&room.as_str(), &user.as_str(), &(up_to.get() as i64)],
            )
            .await?;
        Ok(row.map(|row| {
            (
                Seq::new(row.get::<_, i64>(0) as u64),
                row.get::<_, i64>(1) as u32,
            )
        }))
    }
}
