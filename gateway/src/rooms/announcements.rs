//! Committed changes to rooms that every gateway applies to its own sockets
//! at once, as a worker announces them: a member removed leaves the room
//! on every gateway, instead of being served until its socket happens to
//! close; a member whose role or flags changed obeys the new ones from
//! their next frame. Core NATS, and a second path: each change is also an
//! event in the room's sequence (`member_left`, `role_changed`), which each
//! room task applies when it delivers it, so a gateway that missed the
//! announcement still applies it, at that exact point of the room. Members
//! added and removed go to the feeds as well.

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
            match decode(&msg.payload) {
                Some((room, user, Announced::Added)) => feeds.member(&room, &user, true).await,
                Some((room, user, Announced::Removed)) => {
                    feeds.member(&room, &user, false).await;
                    hub.change_access(&room, user, None).await
                }
                Some((room, user, Announced::Access(access))) => {
                    hub.change_access(&room, user, Some(access)).await
                }
                None => tracing::warn!(subject = %msg.subject, "undecodable announcement"),
            }
        }
    })
    .await
}

/// What became of a member.
enum Announced {
    /// A new member: only feeds care (the user has no socket in the room).
    Added,
    Removed,
    Access(Access),
}

fn decode(payload: &[u8]) -> Option<(RoomId, UserId, Announced)> {
    let event = Announcement::decode(payload).ok()?;
    let room = RoomId::parse(event.room).ok()?;
    let (user, announced) = match event.change? {
        Change::MemberAdded(added) => (added.user, Announced::Added),
        Change::MemberRemoved(removed) => (removed.user, Announced::Removed),
        Change::AccessChanged(changed) => (
            changed.user,
            Announced::Access(Access::from_proto(&changed.access?)?),
        ),
    };
    Some((room, UserId::parse(user).ok()?, announced))
}
