//! The rooms a user belongs to, newest activity first
//! (`Store::my_rooms`), paged by an opaque cursor over the position
//! (snapshot, activity, room).

use chat_proto::v1::RoomList;
use chat_protocol::UserId;
use chat_store::{RoomsPosition, Store};

use crate::{
    error::GatewayError,
    lookup::{cursor, page_limit},
};

const CURSOR: &str = "rooms1";

/// A request for a page of one's rooms, checked.
#[derive(Debug)]
pub struct ListRooms {
    after: Option<RoomsPosition>,
    limit: usize,
}

impl ListRooms {
    /// `cursor` empty is the first page; `limit` absent is the default.
    pub fn parse(cursor: &str, limit: Option<u32>) -> Result<Self, GatewayError> {
        let after = if cursor.is_empty() {
            None
        } else {
            let [snapshot, activity, room] = cursor::decode(CURSOR, cursor)?;
            Some(RoomsPosition {
                snapshot: cursor::number(&snapshot)?,
                activity: cursor::number(&activity)?,
                room,
            })
        };
        Ok(Self {
            after,
            limit: page_limit(limit)?,
        })
    }

    /// The page, read by one statement.
    pub async fn run(self, store: &Store, user: &UserId) -> Result<RoomList, GatewayError> {
        let page = store
            .my_rooms(user, self.after.as_ref(), self.limit)
            .await?;
        Ok(RoomList {
            rooms: page.rooms,
            next_cursor: page
                .next
                .map(|p| {
                    let fields = [p.snapshot.to_string(), p.activity.to_string(), p.room];
                    cursor::encode(CURSOR, &fields)
                })
                .unwrap_or_default(),
        })
    }
}
