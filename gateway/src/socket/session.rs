//! One WebSocket: a reader that turns frames into requests and a writer that
//! drains the socket's bounded queue, joined so that either ending ends both.

use std::{collections::HashMap, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use ::metrics::{Counter, Histogram};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use chat_proto::internal::command::Change;
use chat_proto::v1::{
    client_frame, server_frame::Kind, Applied, ClientFrame, Left, Pong, ServerFrame,
};
use chat_protocol::{
    access::{Access, Permissions},
    codec::{Encoding, Payload},
    ClientMsgId, ErrorCode, RoomId, Seq, UserId,
};
use futures::{
    stream::{SplitSink, SplitStream},
    FutureExt, SinkExt, StreamExt,
};
use tokio::{
    sync::{mpsc, Semaphore},
    time::Instant,
};
use tokio_tungstenite::tungstenite;
use tracing::Instrument;

use crate::{
    config::Limits,
    error::GatewayError,
    metrics,
    send::commands,
    send::ingest::Submission,
    send::publisher::{self, Outgoing},
    socket::limits::SendBudget,
    socket::outbox::{frame_to_ws, CloseSignal, Delivery, Member, Outbound},
    state::AppState,
};

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
    let (out, queue) = mpsc::channel(state.config.limits.socket_queue.get());
    let close = Arc::new(CloseSignal::default());
    let writer = spawn_writer(sink, queue, Arc::clone(&close), info.encoding, &state);
    let mut session = Session {
        member: Member {
            conn: info.conn,
            user: info.user,
            out,
            close: Arc::clone(&close),
            changes: Arc::default(),
        },
        encoding: info.encoding,
        joined: HashMap::new(),
        inflight: Arc::new(Semaphore::new(state.config.limits.max_inflight_sends.get())),
        sends: state.limiter.send_budget(),
        publisher: None,
        state: state.clone(),
    };
    tracing::debug!(user = %session.member.user, "socket open");
    session.read_loop(&mut stream).await;
    for room in std::mem::take(&mut session.joined).into_keys() {
        state.hub.leave(&room, info.conn).await;
    }
    close.finish();
    drop(session);
    let reason = close.reason().map_or("normal", |(code, _)| code.as_str());
    tracing::debug!(reason, "socket closed");
    metrics::closed(reason);
    let write_timeout = state.config.limits.write_timeout;
    let _ = tokio::join!(writer, closing_handshake(&mut stream, write_timeout));
}

/// Reads (and drops) what the peer still sends until it answers our close
/// frame, its socket ends, or `timeout` passes. Dropping the socket with
/// the peer's pongs unread would make the kernel reset it, and a reset
/// throws away what the peer has yet to read: the frames before our close,
/// and the close itself.
async fn closing_handshake(stream: &mut SplitStream<WebSocket>, timeout: Duration) {
    let answered = async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, WsMessage::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, answered).await;
}

/// Starts the socket's writer. A writer that stopped (peer gone, write
/// timed out) ends the reader too.
fn spawn_writer(
    sink: SplitSink<WebSocket, WsMessage>,
    queue: mpsc::Receiver<Outbound>,
    close: Arc<CloseSignal>,
    encoding: Encoding,
    state: &AppState,
) -> tokio::task::JoinHandle<()> {
    let write_timeout = state.config.limits.write_timeout;
    let write = write_loop(sink, queue, Arc::clone(&close), encoding, write_timeout);
    tokio::spawn(
        async move {
            write.await;
            close.finish()
        }
        .in_current_span(),
    )
}

/// A socket heard nothing from for a whole ping interval is pinged; if
/// nothing (not even the pong) comes back within the pong timeout, it is
/// closed as dead.
struct Liveness {
    ping: tokio::time::Interval,
    pong_timeout: Duration,
    /// Something arrived since the last tick.
    heard: bool,
    /// When the outstanding ping must have been answered.
    pong_due: Option<Instant>,
}

impl Liveness {
    fn new(limits: &Limits) -> Self {
        let every = limits.ping_interval;
        Self {
            ping: tokio::time::interval_at(Instant::now() + every, every),
            pong_timeout: limits.pong_timeout,
            heard: false,
            pong_due: None,
        }
    }

    /// On a ping tick: whether to ping now.
    fn tick(&mut self) -> bool {
        let ping = !self.heard && self.pong_due.is_none();
        if ping {
            self.pong_due = Some(Instant::now() + self.pong_timeout);
        }
        self.heard = false;
        ping
    }

    fn heard(&mut self) {
        self.heard = true;
        self.pong_due = None;
    }
}

fn is_too_large(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// Drains the socket's queue into the socket. A write that blocks longer
/// than `write_timeout` (the peer stopped reading at the TCP level) ends
/// the socket.
async fn write_loop(
    sink: SplitSink<WebSocket, WsMessage>,
    mut queue: mpsc::Receiver<Outbound>,
    close: Arc<CloseSignal>,
    encoding: Encoding,
    write_timeout: Duration,
) {
    let mut sink = TimedSink {
        sink,
        timeout: write_timeout,
    };
    let counted = OutCounters::new(encoding);
    let to_ws = |item: Outbound| match item {
        Outbound::Frame(frame) => {
            counted.reply(&frame);
            frame_to_ws(encoding, &frame)
        }
        Outbound::Message(delivery) => {
            counted.message(&delivery);
            delivery.to_ws(encoding)
        }
        // Not in the delivery-latency histogram: replays are old by design.
        Outbound::Replay(replayed) => {
            counted.message.increment(1);
            replayed.0.to_ws(encoding)
        }
        Outbound::Ping => WsMessage::Ping(Default::default()),
    };
    loop {
        tokio::select! {
            biased;
            item = queue.recv() => {
                let Some(item) = item else { break };
                if sink.feed(to_ws(item)).await.is_err() {
                    return;
                }
                // Batch whatever else is queued into one flush.
                while let Ok(item) = queue.try_recv() {
                    if sink.feed(to_ws(item)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            () = close.closed() => break,
        }
    }
    // Flush replies queued before the close (an error frame, say), then close.
    while let Ok(item) = queue.try_recv() {
        if sink.feed(to_ws(item)).await.is_err() {
            return;
        }
    }
    let frame = match close.reason() {
        Some((code, reason)) => CloseFrame {
            code: code.close_code(),
            reason: reason.as_str().into(),
        },
        None => CloseFrame {
            code: 1000,
            reason: "".into(),
        },
    };
    // A peer that cannot take the close frame gets no second wait.
    if sink.send(WsMessage::Close(Some(frame))).await.is_ok() {
        let _ = sink.close().await;
    }
}

/// The socket's sink with a deadline on every operation.
struct TimedSink {
    sink: SplitSink<WebSocket, WsMessage>,
    timeout: Duration,
}

impl TimedSink {
    async fn feed(&mut self, msg: WsMessage) -> Result<(), ()> {
        timed(self.timeout, self.sink.feed(msg)).await
    }

    async fn flush(&mut self) -> Result<(), ()> {
        timed(self.timeout, self.sink.flush()).await
    }

    async fn send(&mut self, msg: WsMessage) -> Result<(), ()> {
        timed(self.timeout, self.sink.send(msg)).await
    }

    async fn close(&mut self) -> Result<(), ()> {
        timed(self.timeout, self.sink.close()).await
    }
}

async fn timed(
    timeout: Duration,
    op: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), ()> {
    match tokio::time::timeout(timeout, op).await {
        Ok(result) => result.map_err(drop),
        Err(_) => {
            metrics::write_timeout();
            Err(())
        }
    }
}

/// A socket's outgoing-frame counters, fetched once so the hot path only
/// increments.
struct OutCounters {
    message: Counter,
    reply: Counter,
    error: Counter,
    delivery: Histogram,
}

impl OutCounters {
    fn new(encoding: Encoding) -> Self {
        Self {
            message: metrics::frames_out("message", encoding),
            reply: metrics::frames_out("reply", encoding),
            error: metrics::frames_out("error", encoding),
            delivery: metrics::delivery_latency(),
        }
    }

    fn message(&self, delivery: &Delivery) {
        self.message.increment(1);
        metrics::record_delivery(&self.delivery, delivery.message.ts_ms);
    }

    fn reply(&self, frame: &ServerFrame) {
        match frame.kind {
            Some(Kind::Error(_)) => self.error.increment(1),
            _ => self.reply.increment(1),
        }
    }
}

struct Session {
    /// The socket as rooms see it; also who its user is.
    member: Member,
    encoding: Encoding,
    /// Rooms this socket joined, with the user's role and flags there
    /// (kept true by the room tasks); left when the socket ends.
    joined: HashMap<RoomId, Access>,
    /// Caps sends awaiting commit, so one client cannot queue unbounded work.
    inflight: Arc<Semaphore>,
    /// How fast this socket may send, alone and with its user's other sockets.
    sends: SendBudget,
    /// Publishes this socket's sends in order; started on its first send so
    /// that sockets that only read cost no task.
    publisher: Option<mpsc::UnboundedSender<Outgoing>>,
    state: AppState,
}

impl Session {
    /// Reads frames until the socket ends, dies, or the gateway shuts down.
    async fn read_loop(&mut self, stream: &mut SplitStream<WebSocket>) {
        let close = Arc::clone(&self.member.close);
        let mut live = Liveness::new(&self.state.config.limits);
        // Once the gateway drains: this socket's moment to close.
        let mut close_at: Option<Instant> = None;
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
                    close.close(ErrorCode::Timeout, "no pong in time");
                    return;
                }
                () = close.closed() => return,
                () = self.state.drain.closing(), if close_at.is_none() => {
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
            // A frame that closed the socket (a flood) is the last one read.
            if close.is_closed() {
                return;
            }
        }
    }

    /// At the socket's moment in the drain: read nothing more, but answer
    /// the sends already accepted before asking the client to go elsewhere.
    async fn drain(&self) {
        let all = self.state.config.limits.max_inflight_sends.get() as u32;
        let drain = self.state.config.drain_timeout;
        let _ = tokio::time::timeout(drain, self.inflight.acquire_many(all)).await;
        self.member
            .close
            .close(ErrorCode::Unavailable, "gateway shutting down; reconnect");
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
        let received = Instant::now();
        let frame: ClientFrame = match self.encoding.decode(&payload) {
            Ok(frame) => frame,
            Err(e) => {
                metrics::frame_in("malformed", self.encoding);
                return self.reply_error(String::new(), GatewayError::from(e)).await;
            }
        };
        let kind = match &frame.kind {
            None => "unknown",
            Some(client_frame::Kind::Ping(_)) => "ping",
            Some(client_frame::Kind::Join(_)) => "join",
            Some(client_frame::Kind::Leave(_)) => "leave",
            Some(client_frame::Kind::Send(_)) => "send",
            Some(
                client_frame::Kind::AddMember(_)
                | client_frame::Kind::RemoveMember(_)
                | client_frame::Kind::SetAccess(_),
            ) => "command",
        };
        metrics::frame_in(kind, self.encoding);
        let request_id = frame.request_id;
        let result = match frame.kind {
            None => Err(GatewayError::Unsupported),
            Some(client_frame::Kind::Ping(_)) => {
                self.reply(request_id.clone(), Kind::Pong(Pong {})).await;
                Ok(())
            }
            Some(client_frame::Kind::Join(join)) => self.join(request_id.clone(), join).await,
            Some(client_frame::Kind::Leave(leave)) => self.leave(request_id.clone(), leave).await,
            Some(client_frame::Kind::Send(send)) => {
                self.send(request_id.clone(), send, received).await
            }
            Some(client_frame::Kind::AddMember(add)) => {
                let change = commands::add_member(add.user);
                self.command(&request_id, add.room, &add.command_id, change)
            }
            Some(client_frame::Kind::RemoveMember(remove)) => {
                let change = commands::remove_member(remove.user);
                self.command(&request_id, remove.room, &remove.command_id, change)
            }
            Some(client_frame::Kind::SetAccess(set)) => {
                let change = commands::set_access(set.user, &set.role, &set.grant, &set.revoke);
                self.command(&request_id, set.room, &set.command_id, change)
            }
        };
        if let Err(e) = result {
            let flooding = matches!(e, GatewayError::SendRate(_))
                && self.sends.is_flooding(&self.state.limiter);
            self.reply_error(request_id, e).await;
            // After the refusal is queued, so the client reads why.
            if flooding {
                self.member.close.close(
                    ErrorCode::RateLimited,
                    "rate_limited: kept sending over the send rate",
                );
            }
        }
    }

    async fn join(
        &mut self,
        request_id: String,
        join: chat_proto::v1::Join,
    ) -> Result<(), GatewayError> {
        let room = RoomId::parse(join.room)?;
        let limit = self.state.config.limits.max_rooms_per_connection.get();
        if !self.joined.contains_key(&room) && self.joined.len() >= limit {
            return Err(GatewayError::LimitExceeded(format!(
                "a socket may join at most {limit} rooms; leave one first"
            )));
        }
        let access = self.access(&room).await?;
        self.joined.insert(room.clone(), access);
        self.state
            .hub
            .join(
                room,
                self.member.clone(),
                request_id,
                join.since_seq.map(Seq::new),
            )
            .await;
        Ok(())
    }

    async fn leave(
        &mut self,
        request_id: String,
        leave: chat_proto::v1::Leave,
    ) -> Result<(), GatewayError> {
        let room = RoomId::parse(leave.room)?;
        if self.joined.remove(&room).is_some() {
            self.state.hub.leave(&room, self.member.conn).await;
        }
        self.reply(
            request_id,
            Kind::Left(Left {
                room: room.to_string(),
            }),
        )
        .await;
        Ok(())
    }

    async fn send(
        &mut self,
        request_id: String,
        send: chat_proto::v1::Send,
        received: Instant,
    ) -> Result<(), GatewayError> {
        // Every send frame counts, valid or not: refusing is what is cheap.
        self.sends.spend(&self.state.limiter, &self.member.user)?;
        let room = RoomId::parse(send.room)?;
        let client_msg_id = ClientMsgId::parse(send.client_msg_id)?;
        let limit = self.state.config.limits.max_body_bytes.get();
        if send.body.len() > limit {
            return Err(GatewayError::InvalidArgument(format!(
                "body is {} bytes; the limit is {limit}",
                send.body.len()
            )));
        }
        // Postgres text cannot hold NUL; refused here, it never reaches a batch.
        if send.body.contains('\0') {
            return Err(GatewayError::InvalidArgument(
                "body must not contain NUL characters".into(),
            ));
        }
        let permit = Arc::clone(&self.inflight)
            .try_acquire_owned()
            .map_err(|_| GatewayError::RateLimited)?;
        if !self.may_send(&room).await? {
            return Err(GatewayError::Forbidden(
                "you may not send messages in this room",
            ));
        }
        let span = tracing::info_span!("send", room = %room, request_id = %request_id);
        let outgoing = Outgoing {
            request_id,
            submission: Submission {
                room,
                sender: self.member.user.clone(),
                client_msg_id,
                body: send.body,
            },
            received,
            permit,
            span,
        };
        let state = &self.state;
        let member = &self.member;
        let publisher = self
            .publisher
            .get_or_insert_with(|| publisher::start(state.clone(), member.clone()));
        // Fails only once the publisher has closed the socket.
        let _ = publisher.send(outgoing);
        Ok(())
    }

    /// Whether the user may send in the room. A refusal by the access held
    /// for a joined room is checked with the membership cache first: the
    /// worker writes a committed grant there before it answers the command,
    /// while the announcement may reach this gateway a moment after the
    /// answer reached the granter. (A revoke needs no such care: the store
    /// refuses a send its sender may no longer make.)
    async fn may_send(&mut self, room: &RoomId) -> Result<bool, GatewayError> {
        if self.access(room).await?.can(Permissions::SEND_MESSAGES) {
            return Ok(true);
        }
        let Some(held) = self.joined.get_mut(room) else {
            return Ok(false);
        };
        let current = self
            .state
            .membership
            .access(room, &self.member.user)
            .await?;
        match current {
            Some(access) => {
                *held = access;
                Ok(access.can(Permissions::SEND_MESSAGES))
            }
            // Removed: the room task is about to tell the socket.
            None => Ok(false),
        }
    }

    /// The user's access in the room: as held for a joined room (kept
    /// true by its room task), else as the membership cache says.
    async fn access(&self, room: &RoomId) -> Result<Access, GatewayError> {
        if let Some(access) = self.joined.get(room) {
            return Ok(*access);
        }
        self.state
            .membership
            .access(room, &self.member.user)
            .await?
            .ok_or(GatewayError::Forbidden("not a member of this room"))
    }

    /// Runs a member command through the workers, as this user, and
    /// answers `applied` once it is committed. Counted like a send, and
    /// awaited on a task of its own so the socket reads on meanwhile.
    fn command(
        &mut self,
        request_id: &str,
        room: String,
        command_id: &str,
        change: Result<Change, GatewayError>,
    ) -> Result<(), GatewayError> {
        self.sends.spend(&self.state.limiter, &self.member.user)?;
        let (room, change) = (RoomId::parse(room)?, change?);
        let command_id = commands::command_id(Some(command_id))?;
        let permit = Arc::clone(&self.inflight)
            .try_acquire_owned()
            .map_err(|_| GatewayError::RateLimited)?;
        let (nats, member) = (self.state.nats.clone(), self.member.clone());
        let timeout = self.state.config.limits.ack_timeout;
        let request_id = request_id.to_owned();
        tokio::spawn(
            async move {
                let user = member.user.as_str();
                let ran = commands::run(&nats, command_id, user, &room, change, timeout).await;
                let kind = match ran {
                    Ok(reply) => Kind::Applied(Applied {
                        room: room.to_string(),
                        command_id: reply.command_id,
                        event: reply.event,
                    }),
                    Err(e) => e.to_kind(),
                };
                let frame = ServerFrame {
                    request_id,
                    kind: Some(kind),
                };
                let _ = member.out.send(Outbound::frame(frame)).await;
                drop(permit);
            }
            .in_current_span(),
        );
        Ok(())
    }

    async fn reply(&self, request_id: String, kind: Kind) {
        let frame = ServerFrame {
            request_id,
            kind: Some(kind),
        };
        let _ = self.member.out.send(Outbound::frame(frame)).await;
    }

    async fn reply_error(&self, request_id: String, e: GatewayError) {
        self.reply(request_id, e.to_kind()).await;
    }
}
