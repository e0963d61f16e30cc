//! This gateway's outgoing signals: queued without waiting by sockets
//! (typing) and presence (online, offline), published every [`LINGER`] as
//! one `RoomSignals` message.

use std::{future::Future, time::Duration};

use chat_proto::internal::{room_signal::Kind, RoomSignal, RoomSignals};
use chat_protocol::{subjects, RoomId, UserId};
use prost::Message as _;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::LINGER;
use crate::metrics;

/// Signals waiting for the publisher: past this, new ones are dropped
/// (they are ephemeral; the next refresh says it again).
const QUEUED: usize = 65_536;
/// Most signals in one message: well under NATS's `max_payload` (1 MiB by
/// default) with ids at their longest (a signal is at most ~200 bytes).
const PER_MESSAGE: usize = 4096;
/// After shutdown, the publisher goes on while signals still come (the
/// presence goodbye's offline signals), until they stop for this long…
const QUIET: Duration = Duration::from_millis(250);
/// …or for this long at most.
const GOODBYE: Duration = Duration::from_secs(3);

/// The handle that queues signals for this gateway's publisher; cheap to
/// clone.
#[derive(Clone)]
pub struct Signals {
    queue: mpsc::Sender<RoomSignal>,
}

impl Signals {
    /// The handle, and the publisher to run until shutdown.
    /// Each publish may take `limit` (`stream.publish_timeout_ms`).
    pub fn start(
        nats: async_nats::Client,
        limit: Duration,
        shutdown: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send) {
        let (queue, queued) = mpsc::channel(QUEUED);
        let nats = Publisher { nats, limit };
        (Self { queue }, run(nats, queued, shutdown))
    }

    /// `user` is typing in `room`.
    pub fn typing(&self, room: &RoomId, user: &UserId) {
        self.queue(room, user, Kind::Typing(true));
    }

    /// `user` came online (`true`) or went offline, said to one of their rooms.
    pub fn online(&self, room: &RoomId, user: &UserId, online: bool) {
        self.queue(room, user, Kind::Online(online));
    }

    fn queue(&self, room: &RoomId, user: &UserId, kind: Kind) {
        let signal = RoomSignal {
            room: room.to_string(),
            user: user.to_string(),
            kind: Some(kind),
        };
        let queued = self.queue.try_send(signal).is_ok();
        metrics::signal_out(queued);
    }
}

/// Publishes what queued every [`LINGER`], once something has; after
/// shutdown, what still comes until it has been [`QUIET`].
async fn run(nats: Publisher, mut queued: mpsc::Receiver<RoomSignal>, shutdown: CancellationToken) {
    loop {
        let first = tokio::select! {
            first = queued.recv() => first,
            () = shutdown.cancelled() => break,
        };
        let Some(first) = first else { return };
        tokio::select! {
            () = tokio::time::sleep(LINGER) => {}
            () = shutdown.cancelled() => {}
        }
        publish(&nats, first, &mut queued).await;
    }
    let until = Instant::now() + GOODBYE;
    while let Ok(Some(first)) =
        tokio::time::timeout_at(until.min(Instant::now() + QUIET), queued.recv()).await
    {
        publish(&nats, first, &mut queued).await;
    }
    if let Err(e) = chat_streams::within(nats.limit, nats.nats.flush()).await {
        tracing::debug!(error = %e, "last signals not flushed");
    }
}

/// Publishes `first` and whatever else has queued, [`PER_MESSAGE`] to a
/// message.
/// The client, and how long a publish may wait.
struct Publisher {
    nats: async_nats::Client,
    limit: Duration,
}

async fn publish(nats: &Publisher, first: RoomSignal, queued: &mut mpsc::Receiver<RoomSignal>) {
    let mut signals = vec![first];
    loop {
        while signals.len() < PER_MESSAGE {
            let Ok(signal) = queued.try_recv() else { break };
            signals.push(signal);
        }
        let more = signals.len() == PER_MESSAGE;
        let batch = RoomSignals {
            signals: std::mem::take(&mut signals),
        };
        let payload = batch.encode_to_vec().into();
        let published = nats.nats.publish(subjects::signals(), payload);
        if let Err(e) = chat_streams::within(nats.limit, published).await {
            tracing::debug!(error = %e, "signals not published");
        }
        if !more {
            return;
        }
        let Ok(signal) = queued.try_recv() else {
            return;
        };
        signals.push(signal);
    }
}
