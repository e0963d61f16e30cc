//! Committed changes to rooms that every gateway applies to its own sockets
//! at once: a member removed on one gateway leaves the room on all of them,
//! instead of being served until its socket happens to close. Core NATS:
//! the change is in Postgres already, and the Redis membership entry is
//! gone, so a gateway that misses the event still refuses the user's next
//! join (only its already-joined sockets would miss the removal).

use chat_proto::internal::{control_event::Change, ControlEvent, MemberRemoved};
use chat_protocol::{subjects, RoomId, UserId};
use futures::StreamExt;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{error::GatewayError, hub::Hub};

/// Tells every gateway that `user` is no longer a member of `room`.
pub async fn member_removed(
    nats: &async_nats::Client,
    room: &RoomId,
    user: &UserId,
) -> Result<(), GatewayError> {
    let event = ControlEvent {
        room: room.to_string(),
        change: Some(Change::MemberRemoved(MemberRemoved {
            user: user.to_string(),
        })),
    };
    nats.publish(subjects::control(room), event.encode_to_vec().into())
        .await
        .map_err(GatewayError::nats)?;
    nats.flush().await.map_err(GatewayError::nats)
}

/// Subscribes to every room's control events and applies them until
/// shutdown; must run before the gateway serves sockets.
pub async fn listen(
    nats: &async_nats::Client,
    hub: Hub,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let mut sub = nats
        .subscribe(subjects::control_all())
        .await
        .map_err(GatewayError::nats)?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                msg = sub.next() => msg,
                () = shutdown.cancelled() => None,
            };
            let Some(msg) = msg else { break };
            match decode(&msg.payload) {
                Some((room, Change::MemberRemoved(removed))) => match UserId::parse(removed.user) {
                    Ok(user) => hub.remove_member(&room, user).await,
                    Err(e) => tracing::warn!(error = %e, "control event with a bad user id"),
                },
                None => tracing::warn!(subject = %msg.subject, "undecodable control event"),
            }
        }
    });
    Ok(())
}

fn decode(payload: &[u8]) -> Option<(RoomId, Change)> {
    let event = ControlEvent::decode(payload).ok()?;
    Some((RoomId::parse(event.room).ok()?, event.change?))
}
