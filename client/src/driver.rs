//! The task behind a [`crate::Client`]: owns the socket, reconnects, rejoins
//! rooms with `sinceSeq`, and resends unacknowledged sends in the order they
//! were first submitted (and member commands until answered, with their
//! command id, so each is applied once).
//!
//! Why one task: correlation (request id → waiter), the per-room last seq
//! and the queue of unacked sends change on every frame and every
//! reconnect; owned by one task they need no lock, and a reconnect sees a
//! consistent picture of what is still owed.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    time::Duration,
};

use chat_proto::v1::{
    client_frame, server_frame::Kind, Ack, Applied, Joined, Message, ServerFrame,
};
use chat_protocol::ErrorCode;
use tokio::{
    sync::{mpsc, oneshot},
    time::{sleep_until, Instant},
};

use crate::{
    connect, options::ClientOptions, Backoff, ClientError, ConnectOptions, Event, Reader, Writer,
};

/// A request to the driver. Replies come back on the oneshot.
pub(crate) enum Command {
    Join {
        room: String,
        since: Option<u64>,
        reply: oneshot::Sender<Result<Joined, ClientError>>,
    },
    Leave {
        room: String,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    Send {
        room: String,
        client_msg_id: String,
        body: String,
        reply: oneshot::Sender<Result<Ack, ClientError>>,
    },
    /// A member command frame, its command id set.
    Change {
        id: String,
        frame: client_frame::Kind,
        reply: oneshot::Sender<Result<Applied, ClientError>>,
    },
    Close,
}

/// A member command not answered yet; written again on every new socket
/// until answered (same command id: applied once).
struct PendingChange {
    frame: client_frame::Kind,
    reply: oneshot::Sender<Result<Applied, ClientError>>,
}

/// A room the application joined.
struct Room {
    /// The last seq handed to the application: a rejoin asks for what
    /// follows it, and anything at or below it is a duplicate. `None` until
    /// the first `joined`, whose head seq then takes its place.
    last_seq: Option<u64>,
    /// `join` calls waiting for the room's `joined`.
    waiters: Vec<oneshot::Sender<Result<Joined, ClientError>>>,
}

/// A send not acked yet. Kept in submission order in `Driver::sends`.
struct Outgoing {
    room: String,
    client_msg_id: String,
    body: String,
    reply: oneshot::Sender<Result<Ack, ClientError>>,
    /// Written on the current socket and not answered yet.
    written: bool,
    /// Not to be written again before this (after `rate_limited`).
    not_before: Option<Instant>,
    /// Times refused with `rate_limited` so far.
    rate_limited: u32,
}

/// What a request id on the current socket was for.
enum Request {
    Join(String),
    Leave(oneshot::Sender<Result<(), ClientError>>),
    Send {
        room: String,
        client_msg_id: String,
    },
    /// Our own liveness probe on a quiet socket.
    Ping,
    /// A member command, by command id.
    Change(String),
}

/// One open socket and what is outstanding on it.
struct Conn {
    writer: Writer,
    reader: Reader,
    requests: HashMap<String, Request>,
    /// Sends written and not yet answered on this socket.
    in_flight: usize,
    last_heard: Instant,
}

/// Why a socket is given up.
enum Disconnect {
    /// Reconnect (to the next gateway) and resume.
    Retry(String),
    /// Stop for good: credentials refused.
    Fatal(String),
    /// The application closed the client.
    Shutdown,
}

pub(crate) struct Driver {
    options: ClientOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    /// `None` once the client stopped, which ends the application's stream.
    messages: Option<mpsc::UnboundedSender<Message>>,
    rooms: HashMap<String, Room>,
    /// Every unacked send, in the order submitted: resent in this order.
    sends: VecDeque<Outgoing>,
    /// Member commands not answered yet, by command id.
    changes: HashMap<String, PendingChange>,
    /// Reconnect delays; reset after a connection that lasted.
    backoff: Backoff,
    /// Delays before resending a send refused with `rate_limited` or `unavailable`.
    send_backoff: Backoff,
    /// Current cap on sends in flight: the configured one, halved on
    /// `rate_limited` (the gateway's limit is lower than we were told)
    /// until the next connection.
    window: usize,
    /// Index into `options.urls` of the gateway to try next.
    next_url: usize,
}

impl Driver {
    pub(crate) fn new(
        options: ClientOptions,
        commands: mpsc::UnboundedReceiver<Command>,
        messages: mpsc::UnboundedSender<Message>,
    ) -> Self {
        Self {
            backoff: Backoff::new(options.backoff_base, options.backoff_max),
            send_backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            window: options.max_inflight_sends.max(1),
            options,
            commands,
            messages: Some(messages),
            rooms: HashMap::new(),
            sends: VecDeque::new(),
            changes: HashMap::new(),
            next_url: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        if self.options.urls.is_empty() {
            return self.stop("no gateway url given".into()).await;
        }
        let reason = loop {
            let url = self.options.urls[self.next_url % self.options.urls.len()].clone();
            self.next_url = self.next_url.wrapping_add(1);
            let options = ConnectOptions {
                credentials: self.options.credentials.clone(),
                ..ConnectOptions::new(url, "", self.options.encoding)
            };
            let timeout = self.options.connect_timeout;
            let attempt = tokio::time::timeout(timeout, async { connect(&options).await });
            let failure = match self.while_offline(attempt).await {
                None => return,
                Some(Err(_)) => "handshake timed out".to_string(),
                Some(Ok(Err(ClientError::Refused(status @ (401 | 403))))) => {
                    break format!("{} refused the credentials (HTTP {status})", options.url)
                }
                Some(Ok(Err(e))) => e.to_string(),
                Some(Ok(Ok((writer, reader)))) => {
                    let started = Instant::now();
                    match self.run_connection(writer, reader).await {
                        Disconnect::Shutdown => return,
                        Disconnect::Fatal(reason) => break reason,
                        Disconnect::Retry(reason) => {
                            // A connection that served a while was a success:
                            // the next attempt waits little again.
                            if started.elapsed() > Duration::from_secs(2) {
                                self.backoff.reset();
                            }
                            reason
                        }
                    }
                }
            };
            if let Some(max) = self.options.max_reconnect_attempts {
                if self.backoff.attempts() >= max {
                    break format!("gave up after {max} attempts: {failure}");
                }
            }
            let delay = self.backoff.next_delay();
            if self
                .while_offline(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return;
            }
        };
        self.stop(reason).await;
    }

    /// Runs `fut` while taking the application's requests (queued for the
    /// next socket). `None` if the application closed the client meanwhile.
    async fn while_offline<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                command = self.commands.recv() => match command {
                    None | Some(Command::Close) => return None,
                    Some(command) => self.accept(command, None).await.ok()?,
                },
            }
        }
    }

    /// One socket's life: rejoin the rooms, write sends as the window
    /// allows, dispatch replies, until it fails or the client closes.
    async fn run_connection(&mut self, writer: Writer, reader: Reader) -> Disconnect {
        let mut conn = Conn {
            writer,
            reader,
            requests: HashMap::new(),
            in_flight: 0,
            last_heard: Instant::now(),
        };
        self.window = self.options.max_inflight_sends.max(1);
        for send in &mut self.sends {
            send.written = false;
        }
        let rooms: Vec<(String, Option<u64>)> = self
            .rooms
            .iter()
            .map(|(room, state)| (room.clone(), state.last_seq))
            .collect();
        for (room, since) in rooms {
            if let Err(e) = write_join(&mut conn, &room, since).await {
                return e;
            }
        }
        let changes: Vec<(String, client_frame::Kind)> = self
            .changes
            .iter()
            .map(|(id, c)| (id.clone(), c.frame.clone()))
            .collect();
        for (id, frame) in changes {
            if let Err(e) = write_change(&mut conn, id, frame).await {
                return e;
            }
        }
        loop {
            if let Err(e) = self.pump(&mut conn).await {
                return e;
            }
            let resend_at = self.blocked_until();
            // With requests out, silence means a dead socket. Without, we
            // ask (a ping) so that a reader-only client also notices a
            // gateway that hangs or a half-open connection.
            let silent_at = conn.last_heard
                + if conn.requests.is_empty() {
                    self.options.silence_timeout / 2
                } else {
                    self.options.silence_timeout
                };
            let outcome = tokio::select! {
                event = conn.reader.next() => self.on_event(event, &mut conn),
                command = self.commands.recv() => match command {
                    None | Some(Command::Close) => Err(Disconnect::Shutdown),
                    Some(command) => self.accept(command, Some(&mut conn)).await,
                },
                _ = sleep_until(resend_at.unwrap_or_else(Instant::now)), if resend_at.is_some() => Ok(()),
                _ = sleep_until(silent_at) => {
                    if conn.requests.is_empty() {
                        match conn.writer.ping().await {
                            Ok(id) => {
                                conn.requests.insert(id, Request::Ping);
                                Ok(())
                            }
                            Err(e) => Err(retry(e)),
                        }
                    } else {
                        Err(Disconnect::Retry("the socket went silent".into()))
                    }
                }
            };
            if let Err(e) = outcome {
                if matches!(e, Disconnect::Shutdown) {
                    conn.writer.close().await;
                }
                return e;
            }
        }
    }

    /// Takes one request from the application; writes it if online.
    async fn accept(
        &mut self,
        command: Command,
        conn: Option<&mut Conn>,
    ) -> Result<(), Disconnect> {
        match command {
            Command::Join { room, since, reply } => {
                if let Some(state) = self.rooms.get_mut(&room) {
                    // Already followed: answer from what we know rather
                    // than join twice on one socket.
                    match state.last_seq {
                        Some(head_seq) if state.waiters.is_empty() => {
                            let _ = reply.send(Ok(Joined { room, head_seq }));
                        }
                        _ => state.waiters.push(reply),
                    }
                    return Ok(());
                }
                self.rooms.insert(
                    room.clone(),
                    Room {
                        last_seq: since,
                        waiters: vec![reply],
                    },
                );
                if let Some(conn) = conn {
                    write_join(conn, &room, since).await?;
                }
            }
            Command::Leave { room, reply } => {
                // Forgotten at once: nothing of the room is delivered from
                // here on, and a reconnect does not rejoin it.
                self.rooms.remove(&room);
                match conn {
                    Some(conn) => {
                        let id = conn.writer.leave(&room).await.map_err(retry)?;
                        conn.requests.insert(id, Request::Leave(reply));
                    }
                    None => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Command::Send {
                room,
                client_msg_id,
                body,
                reply,
            } => self.sends.push_back(Outgoing {
                room,
                client_msg_id,
                body,
                reply,
                written: false,
                not_before: None,
                rate_limited: 0,
            }),
            Command::Change { id, frame, reply } => {
                if let Some(conn) = conn {
                    write_change(conn, id.clone(), frame.clone()).await?;
                }
                self.changes.insert(id, PendingChange { frame, reply });
            }
            // Callers end the connection themselves before getting here.
            Command::Close => {}
        }
        Ok(())
    }

    /// Writes unwritten sends in submission order while the window allows.
    /// Stops at a send that must wait (`rate_limited`): writing later ones
    /// first would store them first.
    async fn pump(&mut self, conn: &mut Conn) -> Result<(), Disconnect> {
        let now = Instant::now();
        for send in self.sends.iter_mut() {
            if conn.in_flight >= self.window {
                break;
            }
            if send.written {
                continue;
            }
            if send.not_before.is_some_and(|t| t > now) {
                break;
            }
            let id = conn
                .writer
                .send(&send.room, &send.client_msg_id, &send.body)
                .await
                .map_err(retry)?;
            conn.requests.insert(
                id,
                Request::Send {
                    room: send.room.clone(),
                    client_msg_id: send.client_msg_id.clone(),
                },
            );
            send.written = true;
            send.not_before = None;
            conn.in_flight += 1;
        }
        Ok(())
    }

    /// When the first unwritten send may be written, if it has to wait.
    fn blocked_until(&self) -> Option<Instant> {
        self.sends
            .iter()
            .find(|s| !s.written)
            .and_then(|s| s.not_before)
    }

    fn on_event(
        &mut self,
        event: Option<Result<Event, ClientError>>,
        conn: &mut Conn,
    ) -> Result<(), Disconnect> {
        conn.last_heard = Instant::now();
        match event {
            Some(Ok(Event::Frame(frame))) => self.on_frame(frame, conn),
            Some(Ok(Event::Closed(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                // 4001: credentials no longer good; retrying cannot help.
                // 1012 (go elsewhere), 4008 (slow consumer), 4000 and the
                // rest: reconnect to the next gateway and resume.
                if code == ErrorCode::Unauthorized.close_code() {
                    Err(Disconnect::Fatal(format!("closed {code}: {reason}")))
                } else {
                    Err(Disconnect::Retry(format!("closed {code}: {reason}")))
                }
            }
            Some(Err(e)) => Err(Disconnect::Retry(e.to_string())),
            None => Err(Disconnect::Retry("the socket ended".into())),
        }
    }

    fn on_frame(&mut self, frame: ServerFrame, conn: &mut Conn) -> Result<(), Disconnect> {
        if frame.request_id.is_empty() {
            match frame.kind {
                Some(Kind::Message(message)) => self.deliver(message),
                // Removed from the room: not rejoined on reconnect.
                Some(Kind::Left(left)) => {
                    if let Some(room) = self.rooms.remove(&left.room) {
                        for waiter in room.waiters {
                            let _ = waiter.send(Err(server_error(
                                ErrorCode::Forbidden.as_str(),
                                "removed from the room",
                            )));
                        }
                    }
                }
                // A pushed error precedes a close, which says what to do.
                _ => {}
            }
            return Ok(());
        }
        // An id we do not know is a server bug; ignoring it is the safe answer.
        let Some(request) = conn.requests.remove(&frame.request_id) else {
            return Ok(());
        };
        match (request, frame.kind) {
            (Request::Join(room), Some(Kind::Joined(joined))) => {
                if let Some(state) = self.rooms.get_mut(&room) {
                    // On a resume the replay after `last_seq` follows, so
                    // only a first join takes the head.
                    let last = *state.last_seq.get_or_insert(joined.head_seq);
                    for waiter in state.waiters.drain(..) {
                        let _ = waiter.send(Ok(Joined {
                            room: room.clone(),
                            head_seq: joined.head_seq.max(last),
                        }));
                    }
                }
            }
            (Request::Join(room), Some(Kind::Error(e))) => {
                if is_transient(&e.code) {
                    return Err(Disconnect::Retry(format!("join {room}: {}", e.code)));
                }
                // Refused for good (not a member any more...): stop following.
                if let Some(state) = self.rooms.remove(&room) {
                    for waiter in state.waiters {
                        let _ = waiter.send(Err(server_error(&e.code, &e.message)));
                    }
                }
            }
            (Request::Ping, _) => {}
            (Request::Leave(reply), _) => {
                let _ = reply.send(Ok(()));
            }
            (
                Request::Send {
                    room,
                    client_msg_id,
                },
                kind,
            ) => self.on_send_reply(conn, &room, &client_msg_id, kind),
            (Request::Change(id), kind) => {
                let Some(change) = self.changes.remove(&id) else {
                    return Ok(());
                };
                let answer = match kind {
                    Some(Kind::Applied(applied)) => Ok(applied),
                    Some(Kind::Error(e)) => Err(server_error(&e.code, &e.message)),
                    other => Err(server_error(
                        "protocol",
                        &format!("unexpected reply to a command: {other:?}"),
                    )),
                };
                let _ = change.reply.send(answer);
            }
            // A reply of the wrong kind: a server bug, not worth a panic.
            (Request::Join(_), _) => {}
        }
        Ok(())
    }

    fn on_send_reply(
        &mut self,
        conn: &mut Conn,
        room: &str,
        client_msg_id: &str,
        kind: Option<Kind>,
    ) {
        conn.in_flight = conn.in_flight.saturating_sub(1);
        let Some(at) = self
            .sends
            .iter()
            .position(|s| s.client_msg_id == client_msg_id && s.room == room)
        else {
            return;
        };
        match kind {
            Some(Kind::Ack(ack)) => {
                self.send_backoff.reset();
                if let Some(send) = self.sends.remove(at) {
                    let _ = send.reply.send(Ok(ack));
                }
            }
            Some(Kind::Error(e)) if e.code == ErrorCode::Timeout.as_str() => {
                // Published, commit not confirmed yet: resend the same id
                // at once; it is acked with the first seq when it commits.
                self.sends[at].written = false;
            }
            Some(Kind::Error(e)) if is_transient(&e.code) => {
                if e.code == ErrorCode::RateLimited.as_str() {
                    self.window = (self.window / 2).max(1);
                    self.sends[at].rate_limited += 1;
                    if self.sends[at].rate_limited >= self.options.rate_limited_attempts {
                        if let Some(send) = self.sends.remove(at) {
                            let _ = send.reply.send(Err(ClientError::RateLimited(e.message)));
                        }
                        return;
                    }
                }
                let send = &mut self.sends[at];
                send.written = false;
                send.not_before = Some(Instant::now() + self.send_backoff.next_delay());
            }
            Some(Kind::Error(e)) => {
                if let Some(send) = self.sends.remove(at) {
                    let _ = send.reply.send(Err(server_error(&e.code, &e.message)));
                }
            }
            other => {
                if let Some(send) = self.sends.remove(at) {
                    let _ = send.reply.send(Err(ClientError::Server {
                        code: "protocol".into(),
                        message: format!("unexpected reply to a send: {other:?}"),
                    }));
                }
            }
        }
    }

    /// Hands a message to the application unless it is a duplicate (a
    /// replay overlapping what was already seen) or of a room we left.
    fn deliver(&mut self, message: Message) {
        let Some(state) = self.rooms.get_mut(&message.room) else {
            return;
        };
        if state.last_seq.is_some_and(|last| message.seq <= last) {
            return;
        }
        state.last_seq = Some(message.seq);
        if let Some(messages) = &self.messages {
            // The application may have dropped its stream; sends go on.
            let _ = messages.send(message);
        }
    }

    /// Gives up: every waiter learns why, the message stream ends, and
    /// later requests are answered with the same reason until the client
    /// is dropped.
    async fn stop(mut self, reason: String) {
        self.messages = None;
        for (_, room) in self.rooms.drain() {
            for waiter in room.waiters {
                let _ = waiter.send(Err(ClientError::Stopped(reason.clone())));
            }
        }
        for send in self.sends.drain(..) {
            let _ = send.reply.send(Err(ClientError::Stopped(reason.clone())));
        }
        for (_, change) in self.changes.drain() {
            let _ = change.reply.send(Err(ClientError::Stopped(reason.clone())));
        }
        let stopped = || ClientError::Stopped(reason.clone());
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::Join { reply, .. } => drop(reply.send(Err(stopped()))),
                Command::Leave { reply, .. } => drop(reply.send(Err(stopped()))),
                Command::Send { reply, .. } => drop(reply.send(Err(stopped()))),
                Command::Change { reply, .. } => drop(reply.send(Err(stopped()))),
                Command::Close => return,
            }
        }
    }
}

async fn write_change(
    conn: &mut Conn,
    id: String,
    frame: client_frame::Kind,
) -> Result<(), Disconnect> {
    let request = conn.writer.request(frame).await.map_err(retry)?;
    conn.requests.insert(request, Request::Change(id));
    Ok(())
}

async fn write_join(conn: &mut Conn, room: &str, since: Option<u64>) -> Result<(), Disconnect> {
    let id = conn.writer.join(room, since).await.map_err(retry)?;
    conn.requests.insert(id, Request::Join(room.to_owned()));
    Ok(())
}

fn retry(e: ClientError) -> Disconnect {
    Disconnect::Retry(e.to_string())
}

/// Codes that mean "try again" (docs/protocol.md, error codes).
fn is_transient(code: &str) -> bool {
    [
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
    ]
    .iter()
    .any(|c| c.as_str() == code)
}

fn server_error(code: &str, message: &str) -> ClientError {
    ClientError::Server {
        code: code.into(),
        message: message.into(),
    }
}
