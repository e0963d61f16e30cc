//! A user's data: everything stored for them, exported as records, and the
//! erasure of what they wrote (their entries become tombstones, their seqs
//! kept). Their memberships (and read markers with them) end through the
//! command path, by the gateway, so that every socket hears of it.

use chat_protocol::{RoomId, UserId};
use serde::Serialize;

use crate::{error::StoreError, pool::Store, rows::access_from_row, sql};

/// One exported record (a JSON line, tagged by `type`).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Exported {
    Membership {
        room: String,
        role: String,
        permissions: Vec<String>,
    },
    ReadMarker {
        room: String,
        seq: i64,
    },
    /// A chat message (`kind` empty) or an event the user made.
    Entry {
        room: String,
        seq: i64,
        id: String,
        kind: String,
        body: String,
        ts_ms: i64,
        deleted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        target_seq: Option<i64>,
    },
    Reaction {
        room: String,
        seq: i64,
        emoji: String,
    },
}

/// Where a page of entries ends: the next page starts after it.
pub type EntryCursor = (String, i64);

impl Store {
    /// The user's memberships, read markers and reactions.
    pub async fn export_standing(&self, user: &UserId) -> Result<Vec<Exported>, StoreError> {
        let client = self.pool.get().await?;
        let user = user.as_str();
        let mut out = Vec::new();
        for row in client.query(sql::EXPORT_MEMBERSHIPS, &[&user]).await? {
            let Some(access) = access_from_row(&row, 1) else {
                continue;
            };
            out.push(Exported::Membership {
                room: row.get(0),
                role: access.role.as_str().to_owned(),
                permissions: access.permissions.names(),
            });
        }
        for row in client.query(sql::EXPORT_MARKERS, &[&user]).await? {
            out.push(Exported::ReadMarker {
                room: row.get(0),
                seq: row.get(1),
            });
        }
        for row in client.query(sql::EXPORT_REACTIONS, &[&user]).await? {
            out.push(Exported::Reaction {
                room: row.get(0),
                seq: row.get(1),
                emoji: row.get(2),
            });
        }
        Ok(out)
    }

    /// Up to `limit` of the user's entries after `after`, by room and seq.
    pub async fn export_entries(
        &self,
        user: &UserId,
        after: Option<&EntryCursor>,
        limit: i64,
    ) -> Result<Vec<Exported>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::EXPORT_ENTRIES).await?;
        let (room, seq) = after.map_or(("", 0), |(r, s)| (r.as_str(), *s));
        let rows = client
            .query(&stmt, &[&user.as_str(), &room, &seq, &limit])
            .await?;
        Ok(rows
            .iter()
            .map(|row| Exported::Entry {
                room: row.get(0),
                seq: row.get(1),
                id: row.get::<_, uuid::Uuid>(2).to_string(),
                kind: row.get(3),
                body: row.get(4),
                ts_ms: row.get(5),
                deleted: row.get(6),
                target_seq: row.get(7),
            })
            .collect())
    }

    /// Erases up to `limit` of the user's entries not erased yet; how many
    /// it erased.
    pub async fn erase_entries(&self, user: &UserId, limit: i64) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(sql::ERASE_ENTRIES, &[&user.as_str(), &limit])
            .await?)
    }

    /// The rooms holding any entry of the user (left ones too).
    pub async fn rooms_with_entries(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(sql::ROOMS_WITH_ENTRIES, &[&user.as_str()])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| RoomId::parse(row.get::<_, String>(0)).ok())
            .collect())
    }

    /// The user's scheduled messages, sent or not, are deleted (a pending
    /// one would be refused anyway, its sender no longer a member).
    pub async fn erase_scheduled(&self, user: &UserId) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client
            .execute(sql::ERASE_SCHEDULED, &[&user.as_str()])
            .await?)
    }

    /// Who is handed room `room` if its last owner `user` is erased.
    pub async fn longest_other_member(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<UserId>, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(sql::LONGEST_OTHER_MEMBER, &[&room.as_str(), &user.as_str()])
            .await?;
        Ok(row.and_then(|r| UserId::parse(r.get::<_, String>(0)).ok()))
    }
}
