//! Typing signals: ephemeral, never stored, carried gateway to gateway over
//! core NATS (`chat.typing.<room>`). The socket's gateway publishes; each
//! gateway listens on one wildcard and hands each signal to the room's
//! task, if the room has one here, which tells its sockets (`typing`).

use std::future::Future;

use chat_proto::internal::TypingSignal;
use chat_protocol::{subjects, RoomId, UserId};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{error::GatewayError, listen, rooms::hub::Hub};

/// Publishes that `user` is typing in `room`, for every gateway.
pub async fn publish(
    nats: &async_nats::Client,
    room: &RoomId,
    user: &UserId,
) -> Result<(), GatewayError> {
    let signal = TypingSignal {
        room: room.to_string(),
        user: user.to_string(),
    };
    nats.publish(subjects::typing(room), signal.encode_to_vec().into())
        .await
        .map_err(GatewayError::nats)
}

/// Subscribes to every room's typing signals; the future it returns hands
/// them to the rooms' tasks until shutdown.
pub async fn listen(
    nats: &async_nats::Client,
    hub: Hub,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = ()>, GatewayError> {
    listen::until_shutdown(nats, subjects::typing_all(), shutdown, move |msg| {
        match decode(&msg.payload) {
            Some((room, user)) => hub.typing(&room, user),
            None => tracing::debug!(subject = %msg.subject, "undecodable typing signal"),
        }
        std::future::ready(())
    })
    .await
}

fn decode(payload: &[u8]) -> Option<(RoomId, UserId)> {
    let signal = TypingSignal::decode(payload).ok()?;
    Some((
        RoomId::parse(signal.room).ok()?,
        UserId::parse(signal.user).ok()?,
    ))
}
