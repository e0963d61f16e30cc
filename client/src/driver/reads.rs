//! Lookups (a page of one's rooms, a search) not answered yet. Each is
//! written again on every new socket until answered: reading twice is
//! harmless, so a reconnect costs the caller nothing but time.

use std::collections::HashMap;

use chat_proto::v1::{client_frame, server_frame::Kind};
use tokio::sync::oneshot;

use super::server_errors::server_error;
use crate::ClientError;

/// A lookup not answered yet.
struct PendingRead {
    frame: client_frame::Kind,
    reply: oneshot::Sender<Result<Kind, ClientError>>,
}

/// Lookups not answered yet, by a number of the driver's own.
#[derive(Default)]
pub(super) struct Reads {
    next: u64,
    pending: HashMap<u64, PendingRead>,
}

impl Reads {
    /// Records a lookup; returns its number.
    pub(super) fn insert(
        &mut self,
        frame: client_frame::Kind,
        reply: oneshot::Sender<Result<Kind, ClientError>>,
    ) -> u64 {
        self.next += 1;
        self.pending.insert(self.next, PendingRead { frame, reply });
        self.next
    }

    /// Each lookup still owed, to write again on a new socket.
    pub(super) fn pending(&self) -> Vec<(u64, client_frame::Kind)> {
        self.pending
            .iter()
            .map(|(id, r)| (*id, r.frame.clone()))
            .collect()
    }

    /// The reply to lookup `id` arrived: its caller gets it, an `error`
    /// frame as [`ClientError::Server`].
    pub(super) fn answer(&mut self, id: u64, kind: Option<Kind>) {
        let Some(read) = self.pending.remove(&id) else {
            return;
        };
        let answer = match kind {
            Some(Kind::Error(e)) => Err(server_error(&e.code, &e.message)),
            Some(kind) => Ok(kind),
            None => Err(server_error("protocol", "an empty reply to a lookup")),
        };
        let _ = read.reply.send(answer);
    }

    /// The client gave up: every caller learns why.
    pub(super) fn stop(&mut self, reason: &str) {
        for (_, read) in self.pending.drain() {
            let _ = read
                .reply
                .send(Err(ClientError::Stopped(reason.to_owned())));
        }
    }
}
