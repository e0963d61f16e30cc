//! Requests answered once and not answered yet: member commands (add or
//! remove a member, set access) and history reads. Each is written again
//! on every new socket until answered; a command's id makes the server
//! apply it once however often it arrives, and a read changes nothing.

use std::collections::HashMap;

use chat_proto::v1::{client_frame, server_frame::Kind, Applied, HistoryPage};
use tokio::sync::oneshot;

use super::server_errors::server_error;
use crate::ClientError;

/// Who waits for the answer, and what it should be.
pub(crate) enum Reply {
    Applied(oneshot::Sender<Result<Applied, ClientError>>),
    Page(oneshot::Sender<Result<HistoryPage, ClientError>>),
}

impl Reply {
    fn send(self, kind: Option<Kind>) {
        let unexpected = |other: Option<Kind>| {
            server_error(
                "protocol",
                &format!("unexpected reply to a request: {other:?}"),
            )
        };
        match (self, kind) {
            (Self::Applied(r), Some(Kind::Applied(a))) => drop(r.send(Ok(a))),
            (Self::Page(r), Some(Kind::HistoryPage(p))) => drop(r.send(Ok(p))),
            (Self::Applied(r), Some(Kind::Error(e))) => {
                drop(r.send(Err(server_error(&e.code, &e.message))))
            }
            (Self::Page(r), Some(Kind::Error(e))) => {
                drop(r.send(Err(server_error(&e.code, &e.message))))
            }
            (Self::Applied(r), other) => drop(r.send(Err(unexpected(other)))),
            (Self::Page(r), other) => drop(r.send(Err(unexpected(other)))),
        }
    }

    pub(crate) fn fail(self, e: ClientError) {
        match self {
            Self::Applied(r) => drop(r.send(Err(e))),
            Self::Page(r) => drop(r.send(Err(e))),
        }
    }
}

/// A request not answered yet.
struct PendingChange {
    frame: client_frame::Kind,
    reply: Reply,
}

/// Requests not answered yet, by command id (a fresh id for a read).
#[derive(Default)]
pub(super) struct Changes(HashMap<String, PendingChange>);

impl Changes {
    pub(super) fn insert(&mut self, id: String, frame: client_frame::Kind, reply: Reply) {
        self.0.insert(id, PendingChange { frame, reply });
    }

    /// Each command still owed, to write again on a new socket.
    pub(super) fn pending(&self) -> Vec<(String, client_frame::Kind)> {
        self.0
            .iter()
            .map(|(id, c)| (id.clone(), c.frame.clone()))
            .collect()
    }

    /// The reply to command `id` arrived: its caller gets it.
    pub(super) fn answer(&mut self, id: &str, kind: Option<Kind>) {
        let Some(change) = self.0.remove(id) else {
            return;
        };
        change.reply.send(kind);
    }

    /// The client gave up: every caller learns why.
    pub(super) fn stop(&mut self, reason: &str) {
        for (_, change) in self.0.drain() {
            change.reply.fail(ClientError::Stopped(reason.to_owned()));
        }
    }
}
