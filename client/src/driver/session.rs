//! One socket's life: resume what is owed (rejoin rooms from their last
//! seq, write unanswered requests again), then write sends as the
//! window allows, take the application's requests, and dispatch each frame
//! to what was waiting for it, until the socket fails or the client closes.

use chat_proto::v1::{server_frame::Kind, Message, ServerFrame};
use chat_protocol::ErrorCode;
use tokio::time::{sleep_until, Instant};

use super::{
    conn::{retry, write_change, write_join, write_watch_feed, Conn, Disconnect, Request},
    server_errors::is_transient,
    Command, Driver,
};
use crate::{ClientError, Event, Reader, Signal, Writer};

impl Driver {
    /// Runs one socket until it is given up, and says why.
    pub(super) async fn run_connection(&mut self, writer: Writer, reader: Reader) -> Disconnect {
        let mut conn = Conn::new(writer, reader);
        self.sends.restart();
        if let Err(e) = self.resume(&mut conn).await {
            return e;
        }
        loop {
            if let Err(e) = self.sends.pump(&mut conn).await {
                return e;
            }
            let resend_at = self.sends.blocked_until();
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
                event = conn.reader.next() => self.on_event(event, &mut conn).await,
                command = self.commands.recv() => match command {
                    None | Some(Command::Close) => Err(Disconnect::Shutdown),
                    Some(command) => self.accept(command, Some(&mut conn)).await,
                },
                _ = sleep_until(resend_at.unwrap_or_else(Instant::now)), if resend_at.is_some() => Ok(()),
                _ = sleep_until(silent_at) => on_silence(&mut conn).await,
            };
            if let Err(e) = outcome {
                if matches!(e, Disconnect::Shutdown) {
                    conn.writer.close().await;
                }
                return e;
            }
        }
    }

    /// Writes on a new socket what the last one left owed: a join per
    /// followed room, every unanswered member command, and the watch of
    /// the feed (whose answer says it all again).
    async fn resume(&mut self, conn: &mut Conn) -> Result<(), Disconnect> {
        for (room, since) in self.rooms.resume_points() {
            write_join(conn, &room, since).await?;
        }
        for (id, frame) in self.changes.pending() {
            write_change(conn, id, frame).await?;
        }
        if self.feed {
            write_watch_feed(conn).await?;
        }
        Ok(())
    }

    async fn on_event(
        &mut self,
        event: Option<Result<Event, ClientError>>,
        conn: &mut Conn,
    ) -> Result<(), Disconnect> {
        conn.last_heard = Instant::now();
        match event {
            Some(Ok(Event::Frame(frame))) => self.on_frame(frame, conn).await,
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

    async fn on_frame(&mut self, frame: ServerFrame, conn: &mut Conn) -> Result<(), Disconnect> {
        if frame.request_id.is_empty() {
            match frame.kind {
                Some(Kind::Message(message)) => self.deliver(message),
                // Fell behind in the room: join it again from the last seq
                // handed on, and the gateway replays the rest. (From
                // before it, after a restore: see `resync_from`.)
                Some(Kind::Resync(resync)) => {
                    if let Some(since) = self.rooms.resync_from(&resync.room, resync.from_seq) {
                        write_join(conn, &resync.room, since).await?;
                    }
                }
                // Removed from the room: not rejoined on reconnect.
                Some(Kind::Left(left)) => self.rooms.unfollow(
                    &left.room,
                    ErrorCode::Forbidden.as_str(),
                    "removed from the room",
                ),
                // A pushed error precedes a close, which says what to do.
                Some(kind) => {
                    if let (Some(signal), Some(signals)) = (Signal::of(kind), &self.signals) {
                        let _ = signals.send(signal);
                    }
                }
                None => {}
            }
            return Ok(());
        }
        // An id we do not know is a server bug; ignoring it is the safe answer.
        let Some(request) = conn.requests.remove(&frame.request_id) else {
            return Ok(());
        };
        match (request, frame.kind) {
            (Request::Feed, Some(Kind::Feed(feed))) => {
                if feed.more {
                    conn.requests.insert(frame.request_id, Request::Feed);
                }
                if let Some(signals) = &self.signals {
                    let _ = signals.send(Signal::Feed { feed, whole: true });
                }
            }
            (Request::Join(room), Some(Kind::Joined(joined))) => {
                self.rooms.joined(&room, joined.head_seq)
            }
            (Request::Join(room), Some(Kind::Error(e))) => {
                if is_transient(&e.code) {
                    return Err(Disconnect::Retry(format!("join {room}: {}", e.code)));
                }
                // Refused for good (not a member any more...): stop following.
                self.rooms.unfollow(&room, &e.code, &e.message);
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
            ) => self.sends.on_reply(conn, &room, &client_msg_id, kind),
            (Request::Change(id), kind) => self.changes.answer(&id, kind),
            // A reply of the wrong kind: a server bug, not worth a panic.
            // A refused watch (too many rooms) is not retried.
            (Request::Join(_) | Request::Feed, _) => {}
        }
        Ok(())
    }

    /// Hands a message to the application unless it is a duplicate (a
    /// replay overlapping what was already seen) or of a room we left.
    fn deliver(&mut self, message: Message) {
        if !self.rooms.admit(&message) {
            return;
        }
        if let Some(messages) = &self.messages {
            // The application may have dropped its stream; sends go on.
            let _ = messages.send(message);
        }
    }
}

/// A quiet socket: probe it with a ping if nothing is outstanding, else
/// give it up as dead.
async fn on_silence(conn: &mut Conn) -> Result<(), Disconnect> {
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
