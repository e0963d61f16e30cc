//! Every gateway's and worker's signals, as this gateway receives them:
//! each handed to its room's task here, if the room has one (read markers
//! moved to the feeds too).

use std::future::Future;

use chat_proto::internal::{room_signal::Kind, RoomSignal, RoomSignals};
use chat_protocol::{subjects, RoomId, Seq, UserId};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{
    error::GatewayError,
    feed::Feeds,
    listen,
    rooms::{ephemeral::Signal, hub::Hub},
};

/// Subscribes to the signals; the future it returns hands them on until
/// shutdown.
pub async fn listen(
    nats: &async_nats::Client,
    hub: Hub,
    feeds: Feeds,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = ()>, GatewayError> {
    listen::until_shutdown(nats, subjects::signals(), shutdown, move |msg| {
        match RoomSignals::decode(msg.payload) {
            Ok(batch) => {
                let signals: Vec<_> = batch.signals.into_iter().filter_map(decode).collect();
                for (room, signal) in &signals {
                    if let Signal::Read(user, seq) = signal {
                        feeds.read(room, user, *seq);
                    }
                }
                hub.signals(signals.into_iter());
            }
            Err(e) => tracing::debug!(error = %e, "undecodable room signals"),
        }
        std::future::ready(())
    })
    .await
}

fn decode(signal: RoomSignal) -> Option<(RoomId, Signal)> {
    let user = UserId::parse(signal.user).ok()?;
    let kind = match signal.kind? {
        Kind::Typing(_) => Signal::Typing(user),
        Kind::ReadSeq(seq) => Signal::Read(user, Seq::new(seq)),
        Kind::Online(online) => Signal::Online(user, online),
    };
    Some((RoomId::parse(signal.room).ok()?, kind))
}
