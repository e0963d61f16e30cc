//! Ephemeral signals about a room's members, never stored and not in the
//! room's sequence, carried over core NATS (`chat.signal.<room>`): a user
//! typing (published by their socket's gateway), a read marker that moved
//! (published by the worker that stored it), a user online or offline
//! (published by the gateway that saw it, `presence`). Each gateway listens on
//! one wildcard and hands each signal to the room's task, if the room has
//! one here, which tells its sockets (`typingNow`, `reads`, `presenceNow`).

use std::future::Future;

use chat_proto::internal::{room_signal::Kind, RoomSignal};
use chat_protocol::{subjects, RoomId, Seq, UserId};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{
    error::GatewayError,
    feed::Feeds,
    listen,
    rooms::{ephemeral::Signal, hub::Hub},
};

/// Publishes that `user` is typing in `room`, for every gateway.
pub async fn publish_typing(
    nats: &async_nats::Client,
    room: &RoomId,
    user: &UserId,
) -> Result<(), GatewayError> {
    let signal = RoomSignal {
        room: room.to_string(),
        user: user.to_string(),
        kind: Some(Kind::Typing(true)),
    };
    nats.publish(subjects::signal(room), signal.encode_to_vec().into())
        .await
        .map_err(GatewayError::nats)
}

/// Subscribes to every room's signals; the future it returns hands them
/// to the rooms' tasks (read markers moved to the feeds too) until shutdown.
pub async fn listen(
    nats: &async_nats::Client,
    hub: Hub,
    feeds: Feeds,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = ()>, GatewayError> {
    listen::until_shutdown(nats, subjects::signal_all(), shutdown, move |msg| {
        match decode(&msg.payload) {
            Some((room, signal)) => {
                if let Signal::Read(user, seq) = &signal {
                    feeds.read(&room, user, *seq);
                }
                hub.signal(&room, signal)
            }
            None => tracing::debug!(subject = %msg.subject, "undecodable room signal"),
        }
        std::future::ready(())
    })
    .await
}

fn decode(payload: &[u8]) -> Option<(RoomId, Signal)> {
    let signal = RoomSignal::decode(payload).ok()?;
    let user = UserId::parse(signal.user).ok()?;
    let kind = match signal.kind? {
        Kind::Typing(_) => Signal::Typing(user),
        Kind::ReadSeq(seq) => Signal::Read(user, Seq::new(seq)),
        Kind::Online(online) => Signal::Online(user, online),
    };
    Some((RoomId::parse(signal.room).ok()?, kind))
}
