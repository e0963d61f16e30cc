//! Full-text search of the chat messages of a user's rooms
//! (`Store::search`), best match first, then newest, paged by an opaque
//! cursor over the position (rank, time, room, seq).

use chat_proto::v1::SearchResults;
use chat_protocol::{RoomId, UserId};
use chat_store::{HitPosition, Searched, Store};

use crate::{
    error::GatewayError,
    lookup::{cursor, page_limit},
};

/// The longest query, in bytes: a few words or phrases, which is what
/// full-text search answers well; longer text costs Postgres more to
/// parse and match and finds nothing better.
pub const MAX_QUERY_BYTES: usize = 256;

const CURSOR: &str = "search1";

/// A search, checked.
#[derive(Debug)]
pub struct Search {
    query: String,
    room: Option<RoomId>,
    after: Option<HitPosition>,
    limit: usize,
}

impl Search {
    /// `room` empty searches all of one's rooms; `cursor` empty is the
    /// first page; `limit` absent is the default.
    pub fn parse(
        query: String,
        room: &str,
        cursor: &str,
        limit: Option<u32>,
    ) -> Result<Self, GatewayError> {
        if query.trim().is_empty() {
            return Err(GatewayError::InvalidArgument("the query is empty".into()));
        }
        if query.len() > MAX_QUERY_BYTES {
            return Err(GatewayError::InvalidArgument(format!(
                "the query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                query.len()
            )));
        }
        // Postgres text cannot hold NUL.
        if query.contains('\0') {
            return Err(GatewayError::InvalidArgument(
                "the query must not contain NUL characters".into(),
            ));
        }
        let room = (!room.is_empty())
            .then(|| RoomId::parse(room))
            .transpose()?;
        Ok(Self {
            query,
            room,
            after: position(cursor)?,
            limit: page_limit(limit)?,
        })
    }

    /// The page, read by one statement; `forbidden` when the room
    /// searched is not one of the user's.
    pub async fn run(self, store: &Store, user: &UserId) -> Result<SearchResults, GatewayError> {
        let searched = store
            .search(
                user,
                &self.query,
                self.room.as_ref(),
                self.after.as_ref(),
                self.limit,
            )
            .await?;
        let page = match searched {
            Searched::Page(page) => page,
            Searched::NotMember if self.room.is_some() => {
                return Err(GatewayError::Forbidden("not a member of this room"))
            }
            // In no room at all: nothing to find.
            Searched::NotMember => return Ok(SearchResults::default()),
        };
        Ok(SearchResults {
            hits: page.hits,
            next_cursor: page
                .next
                .map(|p| {
                    let fields = [
                        p.rank.to_bits().to_string(),
                        p.at.to_string(),
                        p.room,
                        p.seq.to_string(),
                    ];
                    cursor::encode(CURSOR, &fields)
                })
                .unwrap_or_default(),
        })
    }
}

fn position(text: &str) -> Result<Option<HitPosition>, GatewayError> {
    if text.is_empty() {
        return Ok(None);
    }
    let [rank, at, room, seq] = cursor::decode(CURSOR, text)?;
    Ok(Some(HitPosition {
        rank: f32::from_bits(cursor::number(&rank)?),
        at: cursor::number(&at)?,
        room,
        seq: cursor::number(&seq)?,
    }))
}
