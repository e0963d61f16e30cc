//! One WebSocket: a reader that turns frames into requests and a writer that
//! drains the socket's bounded queue, joined so that either ending ends both.

use std::{collections::HashMap, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use axum::extract::ws::{Message as WsMessage, WebSocket};
use chat_proto::v1::{server_frame::Kind, ClientFrame, ServerFrame};
use chat_protocol::{
    access::Access,
    codec::{Encoding, Payload},
    ErrorCode, RoomId, UserId,
};
use futures::{stream::SplitStream, FutureExt, StreamExt};
use tokio::{
    sync::{mpsc, Semaphore},
    time::Instant,
};
use tokio_tungstenite::tungstenite;
use tracing::Instrument;

use crate::{
    error::GatewayError,
    metrics,
    send::publisher::Outgoing,
    socket::{
        limits::SendBudget,
        liveness::Liveness,
        outbox::{CloseSignal, Member, Outbound, QueueState, RESERVED},
        request::ParsedFrame,
        writer::spawn_writer,
    },
    state::AppState,
};

/// How long a closed socket waits for the peer to answer our close frame.
/// A client answers within a round trip; this only has to outlast a busy
/// moment, and it bounds the tail of a drain (see `app::drain`).
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Who is on the socket and how it speaks; settled before the upgrade.
pub struct SessionInfo {
    pub conn: u64,
    pub user: UserId,
    pub encoding: Encoding,
}

/// Serves a socket until the client leaves, misbehaves beyond repair, reads
/// too slowly, or the gateway shuts down. Every log line of the socket
/// carries its connection id.
pub async fn serve(socket: WebSocket, info: SessionInfo, state: AppState) {
    let span = tracing::info_span!("session", conn = info.conn);
    metrics::opened();
    serve_socket(socket, info, state).instrument(span).await;
}

/// Runs the socket, counting it closed (with why) once its session ends,
/// before the closing handshake.
async fn serve_socket(socket: WebSocket, info: SessionInfo, state: AppState) {
    let (sink, mut stream) = socket.split();
    let limits = &state.config.limits;
    let (out, queue) = mpsc::channel(limits.socket_queue.get() + RESERVED);
    let queued = Arc::new(QueueState::new(limits.socket_queue_bytes.get()));
    let close = Arc::new(CloseSignal::new(state.config.drain_timeout));
    let write_timeout = limits.write_timeout;
    let writer = spawn_writer(
        sink,
        (queue, Arc::clone(&queued)),
        Arc::clone(&close),
        info.encoding,
        write_timeout,
    );
    let mut session = Session {
        member: Member {
            conn: info.conn,
            user: info.user,
            encoding: info.encoding,
            out,
            queue: queued,
            close: Arc::clone(&close),
            changes: Arc::default(),
        },
        encoding: info.encoding,
        joined: HashMap::new(),
        inflight: Arc::new(Semaphore::new(state.config.limits.max_inflight_sends.get())),
        sends: state.limiter.send_budget(),
        publisher: None,
        closing: None,
        typed: HashMap::new(),
        watching: false,
        state: state.clone(),
    };
    tracing::debug!(user = %session.member.user, "socket open");
    state.presence.connected(&session.member.user);
    session.read_loop(&mut stream).await;
    state.presence.disconnected(&session.member.user);
    for room in std::mem::take(&mut session.joined).into_keys() {
        state.hub.leave(&room, info.conn).await;
    }
    if session.watching {
        state.feeds.unwatch(info.conn).await;
    }
    close.finish();
    drop(session);
    let reason = close.reason().map_or("normal", |(code, _)| code.as_str());
    tracing::debug!(reason, "socket closed");
    metrics::closed(reason);
    closing_handshake(writer, &mut stream, write_timeout).await;
}

/// Reads (and drops) what the peer still sends until it answers our close
/// frame or its socket ends. The wait starts once the writer has sent the
/// close (each of its writes is bounded by `write_timeout`), since a peer
/// reading a backlog meets the close only after it; it ends after
/// [`CLOSE_GRACE`] of silence, or `patience` after the close for a peer
/// that keeps talking (its pongs and sends say it is reading). Dropping
/// the socket with the peer's frames unread would make the kernel reset
/// it, and a reset throws away what the peer has yet to read: the frames
/// before our close, and the close itself.
async fn closing_handshake(
    writer: tokio::task::JoinHandle<()>,
    stream: &mut SplitStream<WebSocket>,
    patience: Duration,
) {
    tokio::pin!(writer);
    // Set once the writer is done: the latest the wait may last.
    let mut deadline: Option<Instant> = None;
    loop {
        let quiet = deadline.map(|d| (Instant::now() + CLOSE_GRACE).min(d));
        let next = tokio::select! {
            next = stream.next() => next,
            _ = &mut writer, if deadline.is_none() => {
                deadline = Some(Instant::now() + patience);
                continue;
            }
            () = tokio::time::sleep_until(quiet.unwrap_or_else(Instant::now)), if quiet.is_some() => return,
        };
        match next {
            Some(Ok(WsMessage::Close(_)) | Err(_)) | None => break,
            Some(Ok(_)) => {}
        }
    }
    if deadline.is_none() {
        let _ = writer.await;
    }
}

fn is_too_large(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

pub(super) struct Session {
    /// The socket as rooms see it; also who its user is.
    pub(super) member: Member,
    pub(super) encoding: Encoding,
    /// Rooms this socket joined, with the user's role and flags there
    /// (kept true by the room tasks); left when the socket ends.
    pub(super) joined: HashMap<RoomId, Access>,
    /// Caps sends awaiting commit, so one client cannot queue unbounded work.
    pub(super) inflight: Arc<Semaphore>,
    /// How fast this socket may send, alone and with its user's other sockets.
    pub(super) sends: SendBudget,
    /// Publishes this socket's sends in order; started on its first send so
    /// that sockets that only read cost no task.
    pub(super) publisher: Option<mpsc::UnboundedSender<Outgoing>>,
    pub(super) state: AppState,
    /// Set by a frame after which the gateway closes the socket (a flood).
    pub(super) closing: Option<(ErrorCode, &'static str)>,
    /// When this socket last said it was typing, by room.
    pub(super) typed: HashMap<RoomId, Instant>,
    /// Whether the socket watches its user's feed.
    pub(super) watching: bool,
}

impl Session {
    /// Reads frames until the socket ends, dies, or the gateway shuts down.
    async fn read_loop(&mut self, stream: &mut SplitStream<WebSocket>) {
        let close = Arc::clone(&self.member.close);
        let state = self.state.clone();
        let mut live = Liveness::new(&self.state.config.limits);
        // Once the gateway drains: this socket's moment to close.
        let mut close_at: Option<Instant> = None;
        // Made once, not per frame: each registers a waiter under a lock.
        let closed = close.closed();
        let asked = close.asked();
        let draining = state.drain.closing();
        tokio::pin!(closed, asked, draining);
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = live.ping.tick() => {
                    if live.tick() {
                        self.member.offer(Outbound::Ping);
                    }
                    continue;
                }
                () = tokio::time::sleep_until(live.pong_due.unwrap_or_else(Instant::now)), if live.pong_due.is_some() => {
                    return self.answer_then_close(ErrorCode::Timeout, "no pong in time").await;
                }
                () = &mut closed => return,
                (code, why) = &mut asked => return self.answer_then_close(code, &why).await,
                () = &mut draining, if close_at.is_none() => {
                    close_at = Some(self.state.drain.moment());
                    continue;
                }
                () = tokio::time::sleep_until(close_at.unwrap_or_else(Instant::now)), if close_at.is_some() => {
                    return self.drain().await;
                }
            };
            live.heard();
            let payload = match next {
                Some(Ok(WsMessage::Text(t))) => Payload::Text(t.to_string()),
                Some(Ok(WsMessage::Binary(b))) => Payload::Binary(b),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | None => return,
                Some(Err(e)) => {
                    if is_too_large(e) {
                        close.close(ErrorCode::TooLarge, "frame exceeds the size limit");
                    }
                    return;
                }
            };
            // Boxed: the request path's futures (Redis, Postgres, NATS)
            // would otherwise sit inline in every idle socket's task.
            let handled = AssertUnwindSafe(Box::pin(self.on_payload(payload)));
            if handled.catch_unwind().await.is_err() {
                self.on_panic("session").await;
            }
            // A frame that closes the socket (a flood) is the last one read.
            if let Some((code, why)) = self.closing.take() {
                return self.answer_then_close(code, why).await;
            }
            if close.is_closed() {
                return;
            }
        }
    }

    /// At the socket's moment in the drain: read nothing more, but answer
    /// the sends already accepted before asking the client to go elsewhere.
    async fn drain(&self) {
        self.answer_then_close(ErrorCode::Unavailable, "gateway shutting down; reconnect")
            .await
    }

    /// Closes the socket by the gateway's choice (a drain, a flood, a
    /// client gone silent, a slow consumer): nothing more is read, and the sends already
    /// accepted are answered first (at most `drain_timeout_ms`), so that
    /// the client knows which of them are stored.
    async fn answer_then_close(&self, code: ErrorCode, why: &str) {
        let all = self.state.config.limits.max_inflight_sends.get() as u32;
        let drain = self.state.config.drain_timeout;
        let _ = tokio::time::timeout(drain, self.inflight.acquire_many(all)).await;
        self.member.close.close(code, why);
    }

    /// A bug met while serving a frame: the client hears `unavailable`
    /// instead of silence, the socket and everyone else carry on. (The
    /// frame's request id went down with the panic.)
    async fn on_panic(&self, task: &'static str) {
        metrics::panicked(task);
        self.reply_error(String::new(), GatewayError::Panicked)
            .await;
    }

    async fn on_payload(&mut self, payload: Payload) {
        fail::fail_point!("session-frame");
        self.take_access_changes();
        let received = Instant::now();
        let frame: ClientFrame = match self.encoding.decode(&payload) {
            Ok(frame) => frame,
            Err(e) => {
                metrics::frame_in("malformed", self.encoding);
                return self.reply_error(String::new(), GatewayError::from(e)).await;
            }
        };
        let frame = ParsedFrame::parse(frame, &self.state.config.limits);
        metrics::frame_in(frame.kind.as_str(), self.encoding);
        let request_id = frame.request_id.clone();
        if let Err(e) = self.dispatch(frame, received).await {
            let flooding = matches!(e, GatewayError::SendRate(_))
                && self.sends.is_flooding(&self.state.limiter);
            self.reply_error(request_id, e).await;
            // After the refusal is queued, so the client reads why.
            if flooding {
                let why = "rate_limited: kept sending over the send rate";
                self.closing = Some((ErrorCode::RateLimited, why));
            }
        }
    }

    /// The role and flags the room tasks changed since the last frame.
    fn take_access_changes(&mut self) {
        for (room, access) in self.member.changes.take() {
            match access {
                Some(access) => {
                    if let Some(held) = self.joined.get_mut(&room) {
                        *held = access;
                    }
                }
                None => {
                    self.joined.remove(&room);
                }
            }
        }
    }

    pub(super) async fn reply(&self, request_id: String, kind: Kind) {
        let frame = ServerFrame {
            request_id,
            kind: Some(kind),
        };
        let _ = self.member.out.send(Outbound::frame(frame)).await;
    }

    pub(super) async fn reply_error(&self, request_id: String, e: GatewayError) {
        self.reply(request_id, e.to_kind()).await;
    }
}
