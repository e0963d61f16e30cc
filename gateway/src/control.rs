//! Committed changes to rooms that every gateway applies to its own sockets
//! at once, as a worker announces them: a member removed leaves the room
//! on every gateway, instead of being served until its socket happens to
//! close. Core NATS, and a second path: the removal is also an event in
//! the room's sequence (`member_left`), which each room task applies when
//! it delivers it, so a gateway that missed the announcement still removes
//! the member, at that exact point of the room.

use chat_proto::internal::{control_event::Change, ControlEvent};
use chat_protocol::{subjects, RoomId, UserId};
use futures::StreamExt;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{error::GatewayError, hub::Hub};

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
