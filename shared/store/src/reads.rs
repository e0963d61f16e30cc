//! What gateways read: membership, room heads, history pages, and whose
//! rooms are whose (presence).

use chat_proto::v1::Message;
use chat_protocol::access::Access;
use chat_protocol::{RoomId, Seq, UserId};

use crate::error::StoreError;
use crate::pool::Store;
use crate::rows::{access_from_row, message_from_row};
use crate::sql;

impl Store {
    /// The user's role and flags in the room; `None` if not a member.
    pub async fn access(&self, room: &RoomId, user: &UserId) -> Result<Option<Access>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MEMBER_ACCESS).await?;
        Ok(client
            .query_opt(&stmt, &[&room.as_str(), &user.as_str()])
            .await?
            .as_ref()
            .and_then(|row| access_from_row(row, 0)))
    }

    /// The room's members with their access, by user id; `None` if the
    /// room does not exist.
    pub async fn members(
        &self,
        room: &RoomId,
    ) -> Result<Option<Vec<(UserId, Access)>>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MEMBERS).await?;
        let rows = client.query(&stmt, &[&room.as_str()]).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            rows.iter()
                .filter_map(|row| {
                    let user = UserId::parse(row.get::<_, Option<String>>(0)?).ok()?;
                    Some((user, access_from_row(row, 1)?))
                })
                .collect(),
        ))
    }

    /// The rooms the user belongs to.
    pub async fn user_rooms(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::USER_ROOMS).await?;
        let rows = client.query(&stmt, &[&user.as_str()]).await?;
        Ok(rows
            .iter()
            .filter_map(|row| RoomId::parse(row.get::<_, String>(0)).ok())
            .collect())
    }

    /// Which of `users` share a room with `user`.
    pub async fn sharing_a_room(
        &self,
        user: &UserId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::SHARING_A_ROOM).await?;
        let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
        let rows = client.query(&stmt, &[&user.as_str(), &ids]).await?;
        Ok(rows
            .iter()
            .filter_map(|row| UserId::parse(row.get::<_, String>(0)).ok())
            .collect())
    }

    /// The room's highest stored seq, or `None` if the room does not exist.
    pub async fn room_head(&self, room: &RoomId) -> Result<Option<Seq>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::ROOM_HEAD).await?;
        Ok(client
            .query_opt(&stmt, &[&room.as_str()])
            .await?
            .map(|row| Seq::new(row.get::<_, i64>(0) as u64)))
    }

    /// If `seq` has no entry because a restore skipped it or retention
    /// deleted it, the last seq skipped with it.
    pub async fn skipped_at(&self, room: &RoomId, seq: Seq) -> Result<Option<Seq>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::SKIPPED_AT).await?;
        let seq = seq.get() as i64;
        Ok(client
            .query_opt(&stmt, &[&room.as_str(), &seq])
            .await?
            .map(|row| Seq::new(row.get::<_, i64>(0) as u64)))
    }

    /// The highest stored seq of each of `rooms` that exists, in one query.
    pub async fn room_heads(&self, rooms: &[RoomId]) -> Result<Vec<(RoomId, Seq)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::ROOM_HEADS).await?;
        let ids: Vec<&str> = rooms.iter().map(RoomId::as_str).collect();
        Ok(client
            .query(&stmt, &[&ids])
            .await?
            .iter()
            .filter_map(|row| {
                let id = RoomId::parse(row.get::<_, String>(0)).ok()?;
                Some((id, Seq::new(row.get::<_, i64>(1) as u64)))
            })
            .collect())
    }

    /// Stored messages with `after < seq <= up_to`, in seq order, at most `limit`.
    pub async fn messages_between(
        &self,
        room: &RoomId,
        after: Seq,
        up_to: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MESSAGES_BETWEEN).await?;
        let rows = client
            .query(
                &stmt,
                &[
                    &room.as_str(),
                    &(after.get() as i64),
                    &(up_to.get() as i64),
                    &(limit as i64),
                ],
            )
            .await?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    /// A history page: at most `limit` messages from seq `from` on, in seq order.
    pub async fn history_page(
        &self,
        room: &RoomId,
        from: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::HISTORY_PAGE).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&room.as_str(), &(from.get() as i64), &(limit as i64)];
        let rows = client.query(&stmt, &params).await?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    /// The message `sender` stored in `room` under `client_msg_id`, if any.
    pub async fn find_sent(
        &self,
        room: &RoomId,
        sender: &UserId,
        client_msg_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::FIND_SENT).await?;
        Ok(client
            .query_opt(&stmt, &[&room.as_str(), &sender.as_str(), &client_msg_id])
            .await?
            .as_ref()
            .map(message_from_row))
    }

    /// The emojis `user` reacted with to the messages `lo..=hi` of `room`,
    /// as (seq, emoji).
    pub async fn my_reactions(
        &self,
        room: &RoomId,
        user: &UserId,
        lo: Seq,
        hi: Seq,
    ) -> Result<Vec<(Seq, String)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MY_REACTIONS).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
            &room.as_str(),
            &user.as_str(),
            &(lo.get() as i64),
            &(hi.get() as i64),
        ];
        let rows = client.query(&stmt, &params).await?;
        Ok(rows
            .iter()
            .map(|row| (Seq::new(row.get::<_, i64>(0) as u64), row.get(1)))
            .collect())
    }
}
