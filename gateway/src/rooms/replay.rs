//! Replay for a socket that joins with `sinceSeq`: what it missed, paged
//! from the store by a task of its own, so a slow or huge replay never
//! delays the room's live delivery to anyone else.
//!
//! Memory is bounded per socket: at most `replay_page` replayed messages sit
//! in the socket's queue at once (each holds a permit until written) plus
//! the page in hand. When the replay reaches what the room has delivered,
//! the room switches the socket to live delivery at that exact seq; if the
//! room moved on meanwhile, the replay continues to the room's new position.

use std::{sync::Arc, time::Duration};

use chat_protocol::{ErrorCode, RoomId, Seq};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    metrics,
    rooms::history::History,
    socket::outbox::{Delivery, Member, Outbound},
};

/// How long a replay waits for the socket to take its next message before
/// closing it as a slow consumer.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A replay's word to its room: the socket has everything up to `after`.
/// The room answers `None` (the socket is live now) or the seq the replay
/// must reach first.
pub struct CaughtUp {
    pub conn: u64,
    pub after: Seq,
    pub reply: oneshot::Sender<Option<Seq>>,
}

/// `C` is the room's command type, which wraps `CaughtUp`.
pub struct Replay<C> {
    pub member: Member,
    pub room: RoomId,
    /// The socket has everything up to here.
    pub after: Seq,
    /// The room had delivered everything up to here when the socket joined.
    pub target: Seq,
    pub history: History,
    pub page: usize,
    /// The room, to hand the socket over to live delivery.
    pub room_tx: mpsc::Sender<C>,
    /// Cancelled when the socket leaves the room.
    pub cancel: CancellationToken,
}

impl<C: From<CaughtUp> + Send> Replay<C> {
    pub async fn run(self) {
        let cancel = self.cancel.clone();
        let close = Arc::clone(&self.member.close);
        tokio::select! {
            () = self.replay() => {}
            () = cancel.cancelled() => {}
            () = close.closed() => {}
        }
    }

    async fn replay(mut self) {
        let window = Arc::new(Semaphore::new(self.page));
        loop {
            while self.after < self.target {
                if let Err(why) = self.send_page(&window).await {
                    self.member.close.close(why.0, why.1);
                    return;
                }
            }
            let (reply, answer) = oneshot::channel();
            let caught_up = CaughtUp {
                conn: self.member.conn,
                after: self.after,
                reply,
            };
            if self.room_tx.send(caught_up.into()).await.is_err() {
                return;
            }
            match answer.await {
                Ok(Some(target)) => self.target = target,
                // Live now, or the socket left the room.
                Ok(None) | Err(_) => return,
            }
        }
    }

    async fn send_page(
        &mut self,
        window: &Arc<Semaphore>,
    ) -> Result<(), (ErrorCode, &'static str)> {
        const UNAVAILABLE: (ErrorCode, &str) =
            (ErrorCode::Unavailable, "replay failed; resume again");
        const SLOW: (ErrorCode, &str) = (ErrorCode::SlowConsumer, "replay not read in time");
        let (page, source) = self
            .history
            .page(&self.room, self.after, self.target, self.page)
            .await
            .map_err(|e| {
                tracing::warn!(room = %self.room, error = %e, "replay read failed");
                UNAVAILABLE
            })?;
        if page.first().map(|m| Seq::new(m.seq)) != Some(self.after.next()) {
            tracing::error!(room = %self.room, after = %self.after, "store has a hole");
            return Err(UNAVAILABLE);
        }
        metrics::replayed(source, page.len());
        for message in page {
            let permit = tokio::time::timeout(SEND_TIMEOUT, Arc::clone(window).acquire_owned())
                .await
                .map_err(|_| SLOW)?
                .expect("never closed");
            self.after = Seq::new(message.seq);
            let item = Outbound::replayed(Delivery::new(message), permit);
            match tokio::time::timeout(SEND_TIMEOUT, self.member.out.send(item)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(UNAVAILABLE),
                Err(_) => return Err(SLOW),
            }
        }
        Ok(())
    }
}
