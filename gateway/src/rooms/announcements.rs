//! Committed changes to rooms that every gateway applies to its own sockets
//! at once, as a worker announces them: a member removed leaves the room
//! on every gateway, instead of being served until its socket happens to
//! close; a member whose role or flags changed obeys the new ones from
//! their next frame. Core NATS, and a second path: each change is also an
//! event in the room's sequence (`member_left`, `role_changed`), which each
//! room task applies when it delivers it, so a gateway that missed the
//! announcement still applies it, at that exact point of the room. Members
//! added and removed go to the feeds as well. A room deleted makes every
//! socket in it leave (its second path is the tail prober, which finds the
//! room gone).

use std::future::Future;

use chat_proto::internal::{announcement::Change, Announcement};
use chat_protocol::{access::Access, subjects, RoomId, UserId};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{error::GatewayError, feed::Feeds, listen, rooms::hub::Hub};

/// Subscribes to every room's announcements; the future it returns
/// applies them until shutdown. Must subscribe before the gateway serves
/// sockets.
pub async fn listen(
    nats: &async_nats::Client,
    hub: Hub,
    feeds: Feeds,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = ()>, GatewayError> {
    listen::until_shutdown(nats, subjects::announcement_all(), shutdown, move |msg| {
        let (hub, feeds) = (hub.clone(), feeds.clone());
        async move {
            let Some((room, announced)) = decode(&msg.payload) else {
                return tracing::warn!(subject = %msg.subject, "undecodable announcement");
            };
            match announced {
                Announced::Added(user) => feeds.member(&room, &user, true).await,
                Announced::Removed(user) => {
                    feeds.member(&room, &user, false).await;
                    hub.change_access(&room, user, None).await
                }
                Announced::Access(user, access) => {
                    hub.change_access(&room, user, Some(access)).await
                }
                Announced::Deleted(members) => {
                    for user in &members {
                        feeds.member(&room, user, false).await;
                    }
                    hub.room_deleted(&room).await
                }
            }
        }
    })
    .await
}

/// What became of a member, or of the room.
enum Announced {
    /// A new member: only feeds care (the user has no socket in the room).
    Added(UserId),
    Removed(UserId),
    Access(UserId, Access),
    /// The room is gone, with these members (some of them, for a large room).
    Deleted(Vec<UserId>),
}

fn decode(payload: &[u8]) -> Option<(RoomId, Announced)> {
    let event = Announcement::decode(payload).ok()?;
    let room = RoomId::parse(event.room).ok()?;
    let user = |u: String| UserId::parse(u).ok();
    let announced = match event.change? {
        Change::MemberAdded(added) => Announced::Added(user(added.user)?),
        Change::MemberRemoved(removed) => Announced::Removed(user(removed.user)?),
        Change::AccessChanged(changed) => {
            Announced::Access(user(changed.user)?, Access::from_proto(&changed.access?)?)
        }
        Change::RoomDeleted(deleted) => {
            Announced::Deleted(deleted.members.into_iter().filter_map(user).collect())
        }
    };
    Some((room, announced))
}
