//! A joining socket's way in, by a task of its own, so that a slow store or
//! a huge replay never delays the room's live delivery to anyone else:
//! first the user's read marker (`readMarker`, the unread messages counted
//! up to the head it joined at), then, when it joined with `sinceSeq`,
//! what it missed, paged from the store.
//!
//! Memory is bounded per socket: at most `replay_page` replayed messages sit
//! in the socket's queue at once (each holds a permit until written) plus
//! the page in hand. When the replay reaches what the room has delivered,
//! the room switches the socket to live delivery at that exact seq; if the
//! room moved on meanwhile, the replay continues to the room's new position.

use std::{sync::Arc, time::Duration};

use chat_proto::v1::{server_frame::Kind, ReadMarker, Resync, ServerFrame};
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
/// How long the read marker may take to read before the socket goes on
/// without it.
const MARKER_TIMEOUT: Duration = Duration::from_secs(2);

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
        self.tell_read_marker().await;
        if self.after > self.target {
            self.resync_if_rolled_back().await;
        }
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

    /// The socket resumes past what the room has delivered here: the room
    /// may lag behind the store, or the store was restored from a backup
    /// taken before the socket's seqs were stored. In the second case the
    /// seqs past the store's head will be new messages: the socket hears
    /// `resync` from the head's next seq (at or below what it holds, which
    /// is how it knows to drop its copy) and gets the room from there.
    async fn resync_if_rolled_back(&mut self) {
        let head = match self.history.store.room_head(&self.room).await {
            Ok(Some(head)) if head < self.after => head,
            Ok(_) => return,
            Err(e) => return tracing::warn!(room = %self.room, error = %e, "room head not read"),
        };
        tracing::warn!(room = %self.room, since = %self.after, %head, "a socket resumes past the stored head: told to resync");
        self.tell_resync(head.next()).await;
        self.after = head;
    }

    /// Tells the socket that the room goes on from `from`: what it holds
    /// or lacks before that is not coming.
    async fn tell_resync(&self, from: Seq) {
        let frame = ServerFrame {
            request_id: String::new(),
            kind: Some(Kind::Resync(Resync {
                room: self.room.to_string(),
                from_seq: from.get(),
            })),
        };
        let _ =
            tokio::time::timeout(SEND_TIMEOUT, self.member.out.send(Outbound::frame(frame))).await;
    }

    /// The next seq is missing: a restore skipped it or retention deleted
    /// it (the socket hears `resync` from the seq after those skipped, and
    /// the replay goes on from there), or the store has a hole (`None`).
    async fn step_over_gap(&mut self) -> Option<()> {
        let skipped = self.history.store.skipped_at(&self.room, self.after.next());
        match skipped.await {
            Ok(Some(through)) => {
                self.tell_resync(through.next()).await;
                self.after = through;
                Some(())
            }
            Ok(None) => {
                tracing::error!(room = %self.room, after = %self.after, "store has a hole");
                None
            }
            Err(e) => {
                tracing::warn!(room = %self.room, error = %e, "skipped seqs not read");
                None
            }
        }
    }

    /// The user's read marker and unread messages up to the head the
    /// socket joined at; left out if the store does not answer in time.
    async fn tell_read_marker(&self) {
        let user = &self.member.user;
        let read = self.history.store.read_state(&self.room, user, self.target);
        let (seq, unread) = match tokio::time::timeout(MARKER_TIMEOUT, read).await {
            Ok(Ok(Some(state))) => state,
            // Not a member any more: the room tells the socket.
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                return tracing::warn!(room = %self.room, error = %e, "read marker not read")
            }
            Err(_) => return tracing::warn!(room = %self.room, "read marker not read in time"),
        };
        let frame = ServerFrame {
            request_id: String::new(),
            kind: Some(Kind::ReadMarker(ReadMarker {
                room: self.room.to_string(),
                seq: seq.get(),
                unread,
                head_seq: self.target.get(),
            })),
        };
        let _ =
            tokio::time::timeout(SEND_TIMEOUT, self.member.out.send(Outbound::frame(frame))).await;
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
            return self.step_over_gap().await.ok_or(UNAVAILABLE);
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
