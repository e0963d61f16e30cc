//! The unacked sends, in submission order: written as the window allows,
//! held back after `rate_limited` or `unavailable`, and written again on
//! every new socket until acked (same `clientMsgId`, so stored once).

use std::{collections::VecDeque, time::Duration};

use chat_proto::v1::{client_frame, server_frame::Kind, Ack};
use chat_protocol::ErrorCode;
use tokio::{sync::oneshot, time::Instant};

use super::{
    conn::{retry, Conn, Disconnect, Request},
    server_errors::{is_transient, server_error},
};
use crate::{options::ClientOptions, Backoff, ClientError};

/// A send not acked yet.
struct Outgoing {
    room: String,
    client_msg_id: String,
    /// The frame, written as it is on every socket until acked.
    frame: client_frame::Kind,
    reply: oneshot::Sender<Result<Ack, ClientError>>,
    /// Written on the current socket and not answered yet.
    written: bool,
    /// Not to be written again before this (after `rate_limited`).
    not_before: Option<Instant>,
    /// Times refused with `rate_limited` so far.
    rate_limited: u32,
}

pub(super) struct Sends {
    /// Every unacked send, in the order submitted: resent in this order.
    queue: VecDeque<Outgoing>,
    /// Delays before resending a send refused with `rate_limited` or `unavailable`.
    backoff: Backoff,
    /// Current cap on sends in flight: the configured one, halved on
    /// `rate_limited` (the gateway's limit is lower than we were told)
    /// until the next connection.
    window: usize,
    /// The configured cap, restored on each new connection.
    max_window: usize,
    /// `rate_limited` refusals of one send before it fails.
    rate_limited_attempts: u32,
}

impl Sends {
    pub(super) fn new(options: &ClientOptions) -> Self {
        let max_window = options.max_inflight_sends.max(1);
        Self {
            queue: VecDeque::new(),
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            window: max_window,
            max_window,
            rate_limited_attempts: options.rate_limited_attempts,
        }
    }

    pub(super) fn push(
        &mut self,
        room: String,
        client_msg_id: String,
        frame: client_frame::Kind,
        reply: oneshot::Sender<Result<Ack, ClientError>>,
    ) {
        self.queue.push_back(Outgoing {
            room,
            client_msg_id,
            frame,
            reply,
            written: false,
            not_before: None,
            rate_limited: 0,
        });
    }

    /// A new socket: nothing is written on it yet, and the window is the
    /// configured one again.
    pub(super) fn restart(&mut self) {
        self.window = self.max_window;
        for send in &mut self.queue {
            send.written = false;
        }
    }

    /// Writes unwritten sends in submission order while the window allows.
    /// Stops at a send that must wait (`rate_limited`): writing later ones
    /// first would store them first.
    pub(super) async fn pump(&mut self, conn: &mut Conn) -> Result<(), Disconnect> {
        let now = Instant::now();
        for send in self.queue.iter_mut() {
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
                .request(send.frame.clone())
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
    pub(super) fn blocked_until(&self) -> Option<Instant> {
        self.queue
            .iter()
            .find(|s| !s.written)
            .and_then(|s| s.not_before)
    }

    /// The reply to a send arrived: ack it, fail it, or hold it for a resend.
    pub(super) fn on_reply(
        &mut self,
        conn: &mut Conn,
        room: &str,
        client_msg_id: &str,
        kind: Option<Kind>,
    ) {
        conn.in_flight = conn.in_flight.saturating_sub(1);
        let Some(at) = self
            .queue
            .iter()
            .position(|s| s.client_msg_id == client_msg_id && s.room == room)
        else {
            return;
        };
        match kind {
            Some(Kind::Ack(ack)) => {
                self.backoff.reset();
                self.finish(at, Ok(ack));
            }
            Some(Kind::Error(e)) if e.code == ErrorCode::Timeout.as_str() => {
                // Published, commit not confirmed yet: resend the same id
                // at once; it is acked with the first seq when it commits.
                self.queue[at].written = false;
            }
            Some(Kind::Error(e)) if is_transient(&e.code) => {
                if e.code == ErrorCode::RateLimited.as_str() {
                    self.window = (self.window / 2).max(1);
                    self.queue[at].rate_limited += 1;
                    if self.queue[at].rate_limited >= self.rate_limited_attempts {
                        self.finish(at, Err(ClientError::RateLimited(e.message)));
                        return;
                    }
                }
                let send = &mut self.queue[at];
                send.written = false;
                send.not_before = Some(Instant::now() + self.backoff.next_delay());
            }
            Some(Kind::Error(e)) => self.finish(at, Err(server_error(&e.code, &e.message))),
            other => self.finish(
                at,
                Err(server_error(
                    "protocol",
                    &format!("unexpected reply to a send: {other:?}"),
                )),
            ),
        }
    }

    /// Takes the send at `at` off the queue and answers its caller.
    fn finish(&mut self, at: usize, answer: Result<Ack, ClientError>) {
        if let Some(send) = self.queue.remove(at) {
            let _ = send.reply.send(answer);
        }
    }

    /// The client gave up: every caller learns why.
    pub(super) fn stop(&mut self, reason: &str) {
        for send in self.queue.drain(..) {
            let _ = send
                .reply
                .send(Err(ClientError::Stopped(reason.to_owned())));
        }
    }
}
