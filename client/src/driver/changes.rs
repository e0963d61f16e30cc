//! Member commands (add/remove a member, set access) not answered yet. Each
//! is written again on every new socket until answered; its command id makes
//! the server apply it once however often it arrives.

use std::collections::HashMap;

use chat_proto::v1::{client_frame, server_frame::Kind, Applied};
use tokio::sync::oneshot;

use super::server_errors::server_error;
use crate::ClientError;

/// A member command not answered yet.
struct PendingChange {
    frame: client_frame::Kind,
    reply: oneshot::Sender<Result<Applied, ClientError>>,
}

/// Member commands not answered yet, by command id.
#[derive(Default)]
pub(super) struct Changes(HashMap<String, PendingChange>);

impl Changes {
    pub(super) fn insert(
        &mut self,
        id: String,
        frame: client_frame::Kind,
        reply: oneshot::Sender<Result<Applied, ClientError>>,
    ) {
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

    /// The client gave up: every caller learns why.
    pub(super) fn stop(&mut self, reason: &str) {
        for (_, change) in self.0.drain() {
            let _ = change
                .reply
                .send(Err(ClientError::Stopped(reason.to_owned())));
        }
    }
}
