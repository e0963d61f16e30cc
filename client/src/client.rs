//! The resilient client: a cheap-to-clone handle in front of one driver
//! task (see `driver/`) that owns the socket, so requests from many tasks
//! are correlated and ordered in one place.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use chat_proto::v1::{
    client_frame, Ack, AddMember, Applied, DirectRoom, History, HistoryPage, Joined, ListRooms,
    MarkRead, Message, OpenDirect, Presence, PresenceNow, ReadMarker, RemoveMember, RoomList,
    Search, SearchResults, SetAccess, Typing,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    driver::{changes::Reply, Command, Driver},
    entry::{wire_seq, NewEntry},
    options::ClientOptions,
    ClientError, Signals,
};

/// A handle on the connection; clone it freely. The connection closes when
/// the last handle is dropped or [`Client::close`] is called.
#[derive(Clone, Debug)]
pub struct Client {
    /// Unbounded so that `submit` needs no await: the order of calls is the
    /// order of sends. The window in the driver bounds what goes on the wire.
    commands: mpsc::UnboundedSender<Command>,
}

/// The messages of joined rooms, per room in seq order, each once; ends
/// when the client is closed or gives up.
///
/// Unbounded on purpose: an application that awaits a send before reading
/// its messages must not deadlock the driver, which also reads the acks.
/// Read it steadily.
#[derive(Debug)]
pub struct Messages(pub(crate) mpsc::UnboundedReceiver<Message>);

impl Messages {
    pub async fn recv(&mut self) -> Option<Message> {
        self.0.recv().await
    }
}

impl futures::Stream for Messages {
    type Item = Message;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.0.poll_recv(cx)
    }
}

/// Where a history page starts (see [`Client::history`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryCursor {
    Newest,
    Before(u64),
    After(u64),
    Around(u64),
}

/// The ack of a submitted send, once the gateway has stored it.
#[derive(Debug)]
pub struct PendingAck(oneshot::Receiver<Result<Ack, ClientError>>);

impl Future for PendingAck {
    type Output = Result<Ack, ClientError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

impl Client {
    /// Starts connecting (in a task of its own, on the current Tokio
    /// runtime) and returns at once; requests wait for the connection.
    pub fn connect(options: ClientOptions) -> (Client, Messages) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (message_tx, messages) = mpsc::unbounded_channel();
        tokio::spawn(Driver::new(options, command_rx, message_tx, None).run());
        (Client { commands }, Messages(messages))
    }

    /// As [`Client::connect`], with the joined rooms' signals too: typing,
    /// presence, read markers.
    pub fn connect_with_signals(options: ClientOptions) -> (Client, Messages, Signals) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (message_tx, messages) = mpsc::unbounded_channel();
        let (signal_tx, signals) = mpsc::unbounded_channel();
        tokio::spawn(Driver::new(options, command_rx, message_tx, Some(signal_tx)).run());
        (Client { commands }, Messages(messages), Signals(signals))
    }

    /// Says this user is typing in `room` (send it again every few seconds
    /// while they type). Dropped while disconnected: it is ephemeral.
    pub fn typing(&self, room: &str) -> Result<(), ClientError> {
        let frame = client_frame::Kind::Typing(Typing { room: room.into() });
        self.command(Command::Ephemeral(frame))
    }

    /// Which of `users` (at most 100) are online, as this user may see
    /// them. Asked again after a reconnect until answered.
    pub async fn presence(&self, users: &[&str]) -> Result<PresenceNow, ClientError> {
        let users = users.iter().map(|u| u.to_string()).collect();
        let frame = client_frame::Kind::Presence(Presence { users });
        self.ask(fresh_id(), frame, Reply::Presence).await
    }

    /// Joins a room. With `since`, every stored message after it comes
    /// first. The client then follows the room across reconnects.
    pub async fn join(&self, room: &str, since: Option<u64>) -> Result<Joined, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Join {
            room: room.into(),
            since,
            reply,
        })?;
        answer.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Leaves a room: none of its messages follow.
    pub async fn leave(&self, room: &str) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Leave {
            room: room.into(),
            reply,
        })?;
        answer.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Sends with a fresh UUIDv7 `clientMsgId` and waits for the ack.
    pub async fn send(&self, room: &str, body: &str) -> Result<Ack, ClientError> {
        let id = uuid::Uuid::now_v7().to_string();
        self.submit(room, &id, body).await
    }

    /// Sends with the caller's `clientMsgId` (resending one that was stored
    /// is acked with the first seq) and waits for the ack.
    pub async fn send_with_id(
        &self,
        room: &str,
        client_msg_id: &str,
        body: &str,
    ) -> Result<Ack, ClientError> {
        self.submit(room, client_msg_id, body).await
    }

    /// Queues a send without waiting: sends are written in the order
    /// submitted, resent until acked, and the returned future resolves with
    /// the ack. For pipelining many sends.
    pub fn submit(&self, room: &str, client_msg_id: &str, body: &str) -> PendingAck {
        let body = body.to_owned();
        let entry = NewEntry::Message {
            body,
            reply_to: None,
        };
        self.submit_entry(room, client_msg_id, entry)
    }

    /// Queues any entry (a message, a reply, an edit, a delete, a reaction)
    /// with the sends, under the caller's `clientMsgId`: written in the
    /// order submitted, resent until acked, applied once.
    pub fn submit_entry(&self, room: &str, client_msg_id: &str, entry: NewEntry) -> PendingAck {
        let (reply, answer) = oneshot::channel();
        // If the driver is gone, `reply` is dropped with the command and
        // the future resolves to `Closed`.
        let _ = self.command(Command::Send {
            room: room.into(),
            client_msg_id: client_msg_id.into(),
            frame: entry.frame(room, client_msg_id),
            reply,
        });
        PendingAck(answer)
    }

    /// Sends a message answering the room's message at `to` (its seq) and
    /// waits for the ack.
    pub async fn reply(&self, room: &str, to: u64, body: &str) -> Result<Ack, ClientError> {
        let body = body.to_owned();
        let entry = NewEntry::Message {
            body,
            reply_to: Some(to),
        };
        self.submit_entry(room, &fresh_id(), entry).await
    }

    /// Replaces the body of one's own message at `seq`. Acked with the
    /// edit's own seq (it is an entry of the room, as delete and react are).
    pub async fn edit(&self, room: &str, seq: u64, body: &str) -> Result<Ack, ClientError> {
        let body = body.to_owned();
        let entry = NewEntry::Edit { seq, body };
        self.submit_entry(room, &fresh_id(), entry).await
    }

    /// Deletes one's own message at `seq` (another's needs
    /// `can_delete_other_messages`).
    pub async fn delete(&self, room: &str, seq: u64) -> Result<Ack, ClientError> {
        let entry = NewEntry::Delete { seq };
        self.submit_entry(room, &fresh_id(), entry).await
    }

    /// Adds this user's `emoji` reaction to the message at `seq` (with
    /// `remove`, takes it back). One that changes nothing is acked with seq 0.
    pub async fn react(
        &self,
        room: &str,
        seq: u64,
        emoji: &str,
        remove: bool,
    ) -> Result<Ack, ClientError> {
        let emoji = emoji.to_owned();
        let entry = NewEntry::React { seq, emoji, remove };
        self.submit_entry(room, &fresh_id(), entry).await
    }

    /// Adds `user` to the room (as a plain member); needs the admin or owner
    /// role. `applied.event` is the room's `member_joined`, if it changed
    /// anything.
    pub async fn add_member(&self, room: &str, user: &str) -> Result<Applied, ClientError> {
        let command_id = uuid::Uuid::now_v7().to_string();
        let frame = client_frame::Kind::AddMember(AddMember {
            room: room.into(),
            user: user.into(),
            command_id: command_id.clone(),
        });
        self.change(command_id, frame).await
    }

    /// Removes `user` from the room (oneself: leaves it for good).
    pub async fn remove_member(&self, room: &str, user: &str) -> Result<Applied, ClientError> {
        let command_id = uuid::Uuid::now_v7().to_string();
        let frame = client_frame::Kind::RemoveMember(RemoveMember {
            room: room.into(),
            user: user.into(),
            command_id: command_id.clone(),
        });
        self.change(command_id, frame).await
    }

    /// Changes a member's role (`None` keeps it; a new one brings its
    /// default flags) and then grants and revokes flags by name.
    pub async fn set_access(
        &self,
        room: &str,
        user: &str,
        role: Option<&str>,
        grant: &[&str],
        revoke: &[&str],
    ) -> Result<Applied, ClientError> {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect();
        let command_id = uuid::Uuid::now_v7().to_string();
        let frame = client_frame::Kind::SetAccess(SetAccess {
            room: room.into(),
            user: user.into(),
            role: role.unwrap_or_default().into(),
            grant: names(grant),
            revoke: names(revoke),
            command_id: command_id.clone(),
        });
        self.change(command_id, frame).await
    }

    /// Sends a member command and waits until it is committed; written
    /// again after a reconnect until answered (its command id makes that
    /// safe).
    async fn change(&self, id: String, frame: client_frame::Kind) -> Result<Applied, ClientError> {
        self.ask(id, frame, Reply::Applied).await
    }

    /// Sends a request answered once and waits for its answer; the driver
    /// writes it again after a reconnect until answered. `reply` says
    /// which answer it takes; `id` is a command's id, or a fresh one.
    pub(crate) async fn ask<T>(
        &self,
        id: String,
        frame: client_frame::Kind,
        reply: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Reply,
    ) -> Result<T, ClientError> {
        let (sender, answer) = oneshot::channel();
        let reply = reply(sender);
        self.command(Command::Change { id, frame, reply })?;
        answer.await.unwrap_or(Err(ClientError::Closed))
    }

    /// The direct room of this user and `user`: made on first use (by
    /// either) with both as members, then the same room for both. Join it
    /// to read and send. Asked again after a reconnect until answered
    /// (harmless: `created` then says whether that last ask made it).
    pub async fn open_direct(&self, user: &str) -> Result<DirectRoom, ClientError> {
        let frame = client_frame::Kind::OpenDirect(OpenDirect { user: user.into() });
        self.ask(fresh_id(), frame, Reply::Direct).await
    }

    /// A page of a room's history (the room need not be joined, but the
    /// user must be a member): the newest `limit` messages for
    /// [`HistoryCursor::Newest`], else those before, after or around a
    /// seq. Page back with `HistoryCursor::Before(page.before)` while
    /// `page.has_before`. Asked again after a reconnect until answered.
    pub async fn history(
        &self,
        room: &str,
        cursor: HistoryCursor,
        limit: Option<u32>,
    ) -> Result<HistoryPage, ClientError> {
        let seq = |s: u64| Some(wire_seq(s));
        let (before, after, around) = match cursor {
            HistoryCursor::Newest => (None, None, None),
            HistoryCursor::Before(s) => (seq(s), None, None),
            HistoryCursor::After(s) => (None, seq(s), None),
            HistoryCursor::Around(s) => (None, None, seq(s)),
        };
        let frame = client_frame::Kind::History(History {
            room: room.into(),
            before,
            after,
            around,
            limit: limit.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        });
        self.ask(fresh_id(), frame, Reply::Page).await
    }

    /// A page of the rooms this user belongs to, newest activity first:
    /// `cursor` is the `next_cursor` of the page before (`None`: the
    /// first), `limit` 1..=200 (`None`: 50). Asked again after a reconnect
    /// until answered.
    pub async fn rooms(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<RoomList, ClientError> {
        let frame = client_frame::Kind::ListRooms(ListRooms {
            cursor: cursor.unwrap_or_default().into(),
            limit,
        });
        self.ask(fresh_id(), frame, Reply::Rooms).await
    }

    /// Marks `room` read up to `seq`: the marker as stored (it never moves
    /// back) and the unread messages after it. Asked again after a
    /// reconnect until answered.
    pub async fn mark_read(&self, room: &str, seq: u64) -> Result<ReadMarker, ClientError> {
        let frame = client_frame::Kind::MarkRead(MarkRead {
            room: room.into(),
            seq: wire_seq(seq),
        });
        self.ask(fresh_id(), frame, Reply::Marker).await
    }

    /// A page of the chat messages matching `query` in this user's rooms
    /// (in `room` alone when given), best match first, then newest;
    /// `cursor` and `limit` as for [`Client::rooms`].
    pub async fn search(
        &self,
        query: &str,
        room: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<SearchResults, ClientError> {
        let frame = client_frame::Kind::Search(Search {
            query: query.into(),
            room: room.unwrap_or_default().into(),
            cursor: cursor.unwrap_or_default().into(),
            limit,
        });
        self.ask(fresh_id(), frame, Reply::Search).await
    }

    /// Watches the feed of all of the user's rooms, joined or not: every
    /// room comes as [`Signal::Feed`](crate::Signal::Feed) on the signals
    /// stream (`whole`), then each room again as it changes. Watched again
    /// on every reconnect. Needs [`Client::connect_with_signals`].
    pub fn watch_feed(&self) -> Result<(), ClientError> {
        self.command(Command::WatchFeed)
    }

    /// Closes the connection; requests still waiting get `Closed`.
    pub fn close(&self) {
        let _ = self.command(Command::Close);
    }

    fn command(&self, command: Command) -> Result<(), ClientError> {
        self.commands.send(command).map_err(|_| ClientError::Closed)
    }
}

/// An id for a request that carries none of its own (a read, a direct
/// room's open): it names the request to the driver only.
pub(crate) fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
