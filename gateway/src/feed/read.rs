//! Reading rooms for a feed: the fan-out subscriptions first (flushed, so
//! the server has them), then the rooms' state from Postgres, so that
//! every entry is either in what was read or arrives after it.

use std::collections::HashSet;

use async_nats::Subscriber;
use chat_proto::v1::RoomSummary;
use chat_protocol::{subjects, ErrorCode, RoomId, UserId};
use chat_store::Store;

use super::task::MAX_ROOMS;

/// Subscribes to the rooms not in `subscribed`, flushes (so the server has
/// the subscriptions before Postgres is read), then reads the rooms.
pub(super) async fn read(
    nats: &async_nats::Client,
    store: &Store,
    user: &UserId,
    rooms: Option<&[RoomId]>,
    subscribed: &HashSet<RoomId>,
) -> Result<(Vec<(RoomId, Subscriber)>, Vec<RoomSummary>), (ErrorCode, String)> {
    let unavailable = |e: &dyn std::fmt::Display| (ErrorCode::Unavailable, e.to_string());
    let ids: Vec<RoomId> = match rooms {
        Some(rooms) => rooms.to_vec(),
        None => store.user_rooms(user).await.map_err(|e| unavailable(&e))?,
    };
    if ids.len() > MAX_ROOMS {
        let why = format!("a feed holds at most {MAX_ROOMS} rooms; join rooms one by one instead");
        return Err((ErrorCode::LimitExceeded, why));
    }
    let mut subs = Vec::new();
    for room in ids.iter().filter(|r| !subscribed.contains(r)) {
        let sub = nats
            .subscribe(subjects::fanout(room))
            .await
            .map_err(|e| unavailable(&e))?;
        subs.push((room.clone(), sub));
    }
    nats.flush().await.map_err(|e| unavailable(&e))?;
    let only = rooms.is_some().then_some(ids.as_slice());
    let read = store
        .feed(user, only, MAX_ROOMS)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok((subs, read))
}
