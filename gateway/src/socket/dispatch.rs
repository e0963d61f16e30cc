//! What each request does with the session's state: joins and leaves go
//! to the rooms' hub, sends to the socket's publisher, member commands to
//! the workers, lookups (rooms, search) to `lookup`, each after the checks that need the session (its budget,
//! its in-flight sends, its rooms and the membership cache).

use std::sync::Arc;

use chat_proto::{
    internal::command::Change,
    v1::{server_frame::Kind, Applied, DirectRoom, Feed, Left, Pong, PresenceNow, ServerFrame},
};
use chat_protocol::{
    access::{Access, Actor, Permissions},
    kind::EntryKind,
    RoomId, Seq, UserId,
};
use tokio::time::Instant;
use tracing::Instrument;

use crate::{
    error::GatewayError,
    presence,
    rooms::pages::PageQuery,
    send::{
        commands,
        ingest::Submission,
        marks,
        publisher::{self, Outgoing},
    },
    socket::{
        outbox::Outbound,
        request::{ParsedFrame, Request},
        session::Session,
    },
};

/// A send's refusal without `can_send_messages`.
pub(super) const CANNOT_SEND: &str = "you may not send messages in this room";

/// A socket's typing signals for one room are at most this frequent.
const TYPING_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Session {
    /// Carries out one frame's request.
    pub(super) async fn dispatch(
        &mut self,
        frame: ParsedFrame,
        received: Instant,
    ) -> Result<(), GatewayError> {
        if frame.kind.spends_budget() {
            self.sends.spend(&self.state.limiter, &self.member.user)?;
        }
        if frame.kind.is_read() {
            self.state.limiter.read(&self.member.user)?;
        }
        let request_id = frame.request_id;
        match frame.request? {
            Request::Ping => {
                self.reply(request_id, Kind::Pong(Pong {})).await;
                Ok(())
            }
            Request::Join { room, since } => self.join(request_id, room, since).await,
            Request::Leave { room } => self.leave(request_id, room).await,
            Request::Send {
                room,
                client_msg_id,
                body,
                entry,
            } => {
                let submission = Submission {
                    room,
                    sender: self.member.user.clone(),
                    client_msg_id,
                    body,
                    entry,
                };
                self.send(request_id, submission, received).await
            }
            Request::Command {
                room,
                command_id,
                change,
            } => self.command(request_id, room, command_id, change),
            Request::OpenDirect { peer } => self.open_direct(request_id, peer),
            Request::History { room, query } => self.history(request_id, room, query).await,
            // Awaited here: a socket has one lookup running at a time.
            Request::ListRooms(list) => {
                let page = list.run(&self.state.store, &self.member.user).await?;
                self.reply(request_id, Kind::RoomList(page)).await;
                Ok(())
            }
            Request::Typing { room } => self.typing(room).await,
            Request::MarkRead { room, seq } => self.mark_read(request_id, room, seq).await,
            Request::Presence { users } => {
                let state = &self.state;
                let users =
                    presence::who(&state.store, &state.redis, &self.member.user, users).await?;
                let now = PresenceNow {
                    room: String::new(),
                    users,
                };
                self.reply(request_id, Kind::PresenceNow(now)).await;
                Ok(())
            }
            Request::Scheduling(request) => self.scheduling(request_id, request).await,
            Request::Feed { watch: true } => {
                self.watching = true;
                let member = self.member.clone();
                self.state.feeds.watch(member, request_id).await;
                Ok(())
            }
            Request::Feed { watch: false } => {
                self.state.feeds.unwatch(self.member.conn).await;
                self.watching = false;
                self.reply(request_id, Kind::Feed(Feed::default())).await;
                Ok(())
            }
            Request::Search(search) => {
                let page = search.run(&self.state.store, &self.member.user).await?;
                self.reply(request_id, Kind::SearchResults(page)).await;
                Ok(())
            }
        }
    }

    async fn join(
        &mut self,
        request_id: String,
        room: RoomId,
        since: Option<Seq>,
    ) -> Result<(), GatewayError> {
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
            .join(room, self.member.clone(), request_id, since)
            .await;
        Ok(())
    }

    /// Moves the user's read marker through the workers, for a member, and
    /// answers `readMarker` once stored.
    async fn mark_read(
        &mut self,
        request_id: String,
        room: RoomId,
        seq: Seq,
    ) -> Result<(), GatewayError> {
        self.access(&room).await?;
        let nats = self.state.nats.clone();
        let user = self.member.user.clone();
        let timeout = self.state.config.limits.ack_timeout;
        self.answer_later(request_id, async move {
            let marker = marks::mark_read(&nats, &room, &user, seq, timeout).await?;
            Ok(Kind::ReadMarker(marker))
        })
    }

    async fn leave(&mut self, request_id: String, room: RoomId) -> Result<(), GatewayError> {
        if self.joined.remove(&room).is_some() {
            self.state.hub.leave(&room, self.member.conn).await;
        }
        self.reply(
            request_id,
            Kind::Left(Left {
                room: room.to_string(),
                reason: String::new(),
            }),
        )
        .await;
        Ok(())
    }

    async fn send(
        &mut self,
        request_id: String,
        submission: Submission,
        received: Instant,
    ) -> Result<(), GatewayError> {
        let permit = Arc::clone(&self.inflight)
            .try_acquire_owned()
            .map_err(|_| GatewayError::RateLimited)?;
        let room = &submission.room;
        // Writing text needs can_send_messages; deleting and reacting, only
        // membership. The store checks again, under the room's lock.
        match submission.entry.kind {
            EntryKind::Message | EntryKind::MessageEdited => {
                if !self.may_send(room).await? {
                    return Err(GatewayError::Forbidden(CANNOT_SEND));
                }
            }
            _ => {
                self.access(room).await?;
            }
        }
        let span = tracing::info_span!("send", room = %room, request_id = %request_id);
        let outgoing = Outgoing {
            request_id,
            submission,
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
    pub(super) async fn may_send(&mut self, room: &RoomId) -> Result<bool, GatewayError> {
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
    pub(super) async fn access(&self, room: &RoomId) -> Result<Access, GatewayError> {
        if let Some(access) = self.joined.get(room) {
            return Ok(*access);
        }
        self.state
            .membership
            .access(room, &self.member.user)
            .await?
            .ok_or(GatewayError::Forbidden("not a member of this room"))
    }

    /// Tells every gateway that this user is typing in the room: for a
    /// member, at most once a second per room on this socket. Not answered
    /// unless refused.
    async fn typing(&mut self, room: RoomId) -> Result<(), GatewayError> {
        self.access(&room).await?;
        let now = Instant::now();
        match self.typed.get(&room) {
            Some(at) if now.duration_since(*at) < TYPING_EVERY => {
                return Err(GatewayError::RateLimited);
            }
            _ => {}
        }
        self.state.signals.typing(&room, &self.member.user);
        // Bounded by the rooms a socket may be in at once, give or take
        // the rooms it left: forgotten once it holds twice that many.
        if self.typed.len() >= 2 * self.state.config.limits.max_rooms_per_connection.get() {
            self.typed
                .retain(|_, at| now.duration_since(*at) < TYPING_EVERY);
        }
        self.typed.insert(room, now);
        Ok(())
    }

    /// Answers a page of the room's history, read while the socket waits
    /// (one page at a time per socket), for members of the room only.
    async fn history(
        &mut self,
        request_id: String,
        room: RoomId,
        query: PageQuery,
    ) -> Result<(), GatewayError> {
        self.access(&room).await?;
        let page = self
            .state
            .pages
            .read(&room, query, Some(&self.member.user))
            .await?
            .ok_or(GatewayError::Forbidden("not a member of this room"))?;
        self.reply(request_id, Kind::HistoryPage(page.into_proto()))
            .await;
        Ok(())
    }

    /// Runs a member command through the workers, as this user, and
    /// answers `applied` once it is committed.
    fn command(
        &mut self,
        request_id: String,
        room: RoomId,
        command_id: String,
        change: Change,
    ) -> Result<(), GatewayError> {
        let nats = self.state.nats.clone();
        let actor = Actor::User(self.member.user.clone());
        let timeout = self.state.config.limits.ack_timeout;
        self.answer_later(request_id, async move {
            let reply = commands::run(&nats, command_id, &actor, &room, change, timeout).await?;
            Ok(Kind::Applied(Applied {
                room: room.to_string(),
                command_id: reply.command_id,
                event: reply.event,
            }))
        })
    }

    /// Opens the direct room of this user and `peer` (made if new) and
    /// answers `directRoom` once it is committed.
    fn open_direct(&mut self, request_id: String, peer: UserId) -> Result<(), GatewayError> {
        let nats = self.state.nats.clone();
        let me = self.member.user.clone();
        let timeout = self.state.config.limits.ack_timeout;
        self.answer_later(request_id, async move {
            let (room, created) = commands::open_direct(&nats, &me, &peer, timeout).await?;
            Ok(Kind::DirectRoom(DirectRoom {
                room: room.to_string(),
                created,
            }))
        })
    }

    /// Answers a request that goes through the workers from a task of its
    /// own, so the socket reads on meanwhile. Counted like a send.
    pub(super) fn answer_later(
        &mut self,
        request_id: String,
        answer: impl std::future::Future<Output = Result<Kind, GatewayError>> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let permit = Arc::clone(&self.inflight)
            .try_acquire_owned()
            .map_err(|_| GatewayError::RateLimited)?;
        let out = self.member.out.clone();
        tokio::spawn(
            async move {
                let kind = answer.await.unwrap_or_else(|e| e.to_kind());
                let frame = ServerFrame {
                    request_id,
                    kind: Some(kind),
                };
                let _ = out.send(Outbound::frame(frame)).await;
                drop(permit);
            }
            .in_current_span(),
        );
        Ok(())
    }
}
