//! Requests answered once and not answered yet: member commands (add or
//! remove a member, set access), direct-room opens, read marks, scheduled
//! messages (kept once per client_msg_id, cancelled once), history pages
//! and lookups (my rooms, search). Each is written again on every new
//! socket until answered; a command's id makes the server apply it once
//! however often it arrives, opening a direct room or marking read again is
//! harmless, and a read changes nothing.

use std::collections::HashMap;

use chat_proto::v1::{
    client_frame, server_frame::Kind, Applied, DirectRoom, HistoryPage, PresenceNow, ReadMarker,
    RoomList, ScheduledList, ScheduledMessage, SearchResults,
};
use tokio::sync::oneshot;

use super::server_errors::server_error;
use crate::ClientError;

/// Who waits for the answer, and which answer it takes.
pub(crate) enum Reply {
    Applied(oneshot::Sender<Result<Applied, ClientError>>),
    Direct(oneshot::Sender<Result<DirectRoom, ClientError>>),
    Page(oneshot::Sender<Result<HistoryPage, ClientError>>),
    Rooms(oneshot::Sender<Result<RoomList, ClientError>>),
    Search(oneshot::Sender<Result<SearchResults, ClientError>>),
    Marker(oneshot::Sender<Result<ReadMarker, ClientError>>),
    Presence(oneshot::Sender<Result<PresenceNow, ClientError>>),
    Scheduled(oneshot::Sender<Result<ScheduledMessage, ClientError>>),
    ScheduledList(oneshot::Sender<Result<ScheduledList, ClientError>>),
}

impl Reply {
    /// Hands the waiter its answer, or an error if `kind` is not one it takes.
    fn answer(self, kind: Option<Kind>) {
        match (self, kind) {
            (Self::Applied(reply), Some(Kind::Applied(applied))) => drop(reply.send(Ok(applied))),
            (Self::Direct(reply), Some(Kind::DirectRoom(room))) => drop(reply.send(Ok(room))),
            (Self::Page(reply), Some(Kind::HistoryPage(page))) => drop(reply.send(Ok(page))),
            (Self::Rooms(reply), Some(Kind::RoomList(list))) => drop(reply.send(Ok(list))),
            (Self::Search(reply), Some(Kind::SearchResults(hits))) => drop(reply.send(Ok(hits))),
            (Self::Marker(reply), Some(Kind::ReadMarker(marker))) => drop(reply.send(Ok(marker))),
            (Self::Presence(reply), Some(Kind::PresenceNow(now))) => drop(reply.send(Ok(now))),
            (Self::Scheduled(reply), Some(Kind::Scheduled(s))) => drop(reply.send(Ok(s))),
            (Self::ScheduledList(reply), Some(Kind::ScheduledList(l))) => drop(reply.send(Ok(l))),
            (reply, Some(Kind::Error(e))) => reply.fail(server_error(&e.code, &e.message)),
            (reply, other) => {
                let what = format!("unexpected reply to a request: {other:?}");
                reply.fail(server_error("protocol", &what));
            }
        }
    }

    pub(crate) fn fail(self, error: ClientError) {
        match self {
            Self::Applied(reply) => drop(reply.send(Err(error))),
            Self::Direct(reply) => drop(reply.send(Err(error))),
            Self::Page(reply) => drop(reply.send(Err(error))),
            Self::Rooms(reply) => drop(reply.send(Err(error))),
            Self::Search(reply) => drop(reply.send(Err(error))),
            Self::Marker(reply) => drop(reply.send(Err(error))),
            Self::Presence(reply) => drop(reply.send(Err(error))),
            Self::Scheduled(reply) => drop(reply.send(Err(error))),
            Self::ScheduledList(reply) => drop(reply.send(Err(error))),
        }
    }
}

/// A request not answered yet.
struct PendingChange {
    frame: client_frame::Kind,
    reply: Reply,
}

/// Requests not answered yet, by command id (a fresh id for the others).
#[derive(Default)]
pub(super) struct Changes(HashMap<String, PendingChange>);

impl Changes {
    pub(super) fn insert(&mut self, id: String, frame: client_frame::Kind, reply: Reply) {
        self.0.insert(id, PendingChange { frame, reply });
    }

    /// Each request still owed, to write again on a new socket.
    pub(super) fn pending(&self) -> Vec<(String, client_frame::Kind)> {
        self.0
            .iter()
            .map(|(id, c)| (id.clone(), c.frame.clone()))
            .collect()
    }

    /// The reply to request `id` arrived: its caller gets it.
    pub(super) fn answer(&mut self, id: &str, kind: Option<Kind>) {
        if let Some(change) = self.0.remove(id) {
            change.reply.answer(kind);
        }
    }

    /// The client gave up: every caller learns why.
    pub(super) fn stop(&mut self, reason: &str) {
        for (_, change) in self.0.drain() {
            change.reply.fail(ClientError::Stopped(reason.to_owned()));
        }
    }
}
