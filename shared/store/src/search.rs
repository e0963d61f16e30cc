//! Full-text search of the chat messages of a user's rooms, a page per
//! query (migration V9's `search_terms` and its GIN index).

use chat_proto::v1::SearchHit;
use chat_protocol::{RoomId, UserId};

use crate::error::StoreError;
use crate::my_rooms::last_entry;
use crate::pool::Store;
use crate::sql;

/// The last hit a page returned, where the next starts: rank (compared
/// exactly, as Postgres computed it), time (µs), room and seq.
#[derive(Clone, Debug, PartialEq)]
pub struct HitPosition {
    pub rank: f32,
    pub at: i64,
    pub room: String,
    pub seq: i64,
}

/// One page of hits; `next` is `None` on the last.
#[derive(Debug)]
pub struct HitsPage {
    pub hits: Vec<SearchHit>,
    pub next: Option<HitPosition>,
}

/// What a search found.
#[derive(Debug)]
pub enum Searched {
    Page(HitsPage),
    /// The user is not in the room searched (or, across rooms, in none).
    NotMember,
}

/// The layout of `sql::SEARCH` after the message's columns.
const RANK: usize = sql::MESSAGE_COLUMNS;

impl Store {
    /// A page of at most `limit` messages matching `query` in `user`'s
    /// rooms (in `room` alone when given), after `after`: one statement.
    pub async fn search(
        &self,
        user: &UserId,
        query: &str,
        room: Option<&RoomId>,
        after: Option<&HitPosition>,
        limit: usize,
    ) -> Result<Searched, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::SEARCH).await?;
        let rows = client
            .query(
                &stmt,
                &[
                    &user.as_str(),
                    &query,
                    &room.map(RoomId::as_str),
                    &after.map(|p| p.rank),
                    &after.map(|p| p.at),
                    &after.map(|p| p.room.as_str()),
                    &after.map(|p| p.seq),
                    &(limit as i64 + 1),
                ],
            )
            .await?;
        if !rows.first().is_some_and(|row| row.get::<_, bool>(RANK + 2)) {
            return Ok(Searched::NotMember);
        }
        let found: Vec<_> = rows
            .iter()
            .filter_map(|row| Some((last_entry(row)?, row.get::<_, f32>(RANK), row.get(RANK + 1))))
            .collect();
        let more = found.len() > limit;
        let found = &found[..found.len().min(limit)];
        let next = match found.last() {
            Some((message, rank, at)) if more => Some(HitPosition {
                rank: *rank,
                at: *at,
                room: message.room.clone(),
                seq: message.seq as i64,
            }),
            _ => None,
        };
        Ok(Searched::Page(HitsPage {
            hits: found
                .iter()
                .map(|(message, rank, _)| SearchHit {
                    message: Some(message.clone()),
                    rank: *rank,
                })
                .collect(),
            next,
        }))
    }
}
