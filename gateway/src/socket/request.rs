//! A client frame parsed once into what it asks, with every check that
//! needs no state (ids, body size, names of roles and flags), as mini-redis
//! parses a `Command` from a `Frame`. What needs the session's state (its
//! rooms, its budget, membership) is `dispatch`'s.

use chat_proto::{
    internal::command::Change,
    v1::{client_frame, ClientFrame},
};
use chat_protocol::{envelope::Entry, kind::EntryKind, ClientMsgId, RoomId, Seq, UserId};

use crate::{
    config::Limits,
    error::GatewayError,
    lookup::{my_rooms::ListRooms, search::Search},
    rooms::pages::PageQuery,
    send::{
        commands,
        scheduled::{self, NewScheduled},
    },
    socket::checks::{check_body, check_emoji, target_seq},
};

/// What a client frame asks for.
pub enum Request {
    Ping,
    Join {
        room: RoomId,
        since: Option<Seq>,
    },
    Leave {
        room: RoomId,
    },
    /// A chat message, or an event changing one (edit, delete, react):
    /// each an entry of the room's sequence, sent the same way.
    Send {
        room: RoomId,
        client_msg_id: ClientMsgId,
        body: String,
        entry: Entry,
    },
    /// A page of a room's history.
    History {
        room: RoomId,
        query: PageQuery,
    },
    /// A member command, run through the workers as this user.
    Command {
        room: RoomId,
        command_id: String,
        change: Change,
    },
    /// The direct room of this user and `peer`, made if new.
    OpenDirect {
        peer: UserId,
    },
    /// A page of the user's rooms.
    ListRooms(ListRooms),
    /// A page of search hits in the user's rooms.
    Search(Search),
    /// The user is typing in the room (ephemeral).
    Typing {
        room: RoomId,
    },
    /// The user has read the room up to `seq`.
    MarkRead {
        room: RoomId,
        seq: Seq,
    },
    /// Which of these users are online.
    Presence {
        users: Vec<String>,
    },
    /// A scheduled message: made, cancelled or listed.
    Scheduling(Scheduling),
    /// Watch (or stop watching) the feed of the user's rooms.
    Feed {
        watch: bool,
    },
}

/// What a request does with scheduled messages.
pub enum Scheduling {
    /// A chat message to send at a later time.
    Schedule(NewScheduled),
    /// Cancels one's own scheduled message.
    Cancel { room: RoomId, id: uuid::Uuid },
    /// One's own scheduled messages in the room not sent yet.
    List { room: RoomId },
}

/// Which kind of frame it was, known even when its content is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameKind {
    Unknown,
    Ping,
    Join,
    Leave,
    Send,
    Edit,
    Delete,
    React,
    Command,
    History,
    ListRooms,
    Search,
    Typing,
    MarkRead,
    Presence,
    ListScheduled,
    Feed,
}

impl FrameKind {
    /// The `kind` label of the frames-in metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Ping => "ping",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Send => "send",
            Self::Edit => "edit",
            Self::Delete => "delete",
            Self::React => "react",
            Self::Command => "command",
            Self::History => "history",
            Self::ListRooms => "list_rooms",
            Self::Search => "search",
            Self::Typing => "typing",
            Self::MarkRead => "mark_read",
            Self::Presence => "presence",
            Self::ListScheduled => "list_scheduled",
            Self::Feed => "feed",
        }
    }

    /// Whether the frame spends one of the user's reads (it asks the
    /// store for a page, or Redis and Postgres for whom one may see).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Self::History
                | Self::ListRooms
                | Self::Search
                | Self::Presence
                | Self::ListScheduled
                | Self::Feed
        )
    }

    /// Whether the frame spends the socket's send budget. Every send, event
    /// and command frame does, valid or not: refusing is what is cheap.
    pub fn spends_budget(self) -> bool {
        matches!(
            self,
            Self::Send | Self::Edit | Self::Delete | Self::React | Self::Command
        )
    }
}

/// A decoded frame: its request id and kind, and what it asks or why that
/// is refused.
pub struct ParsedFrame {
    pub request_id: String,
    pub kind: FrameKind,
    pub request: Result<Request, GatewayError>,
}

impl ParsedFrame {
    pub fn parse(frame: ClientFrame, limits: &Limits) -> Self {
        use client_frame::Kind as K;
        let request_id = frame.request_id;
        let (kind, request) = match frame.kind {
            None => (FrameKind::Unknown, Err(GatewayError::Unsupported)),
            Some(K::Ping(_)) => (FrameKind::Ping, Ok(Request::Ping)),
            Some(K::Join(join)) => {
                let since = join.since_seq.map(Seq::new);
                let join = RoomId::parse(join.room).map(|room| Request::Join { room, since });
                (FrameKind::Join, join.map_err(GatewayError::from))
            }
            Some(K::Leave(leave)) => {
                let leave = RoomId::parse(leave.room).map(|room| Request::Leave { room });
                (FrameKind::Leave, leave.map_err(GatewayError::from))
            }
            Some(K::Send(send)) => (FrameKind::Send, parse_send(send, limits)),
            Some(K::Edit(edit)) => (FrameKind::Edit, parse_edit(edit, limits)),
            Some(K::Delete(delete)) => (FrameKind::Delete, parse_delete(delete)),
            Some(K::React(react)) => (FrameKind::React, parse_react(react)),
            Some(K::AddMember(add)) => {
                let change = commands::add_member(add.user);
                let command = parse_command(add.room, &add.command_id, change);
                (FrameKind::Command, command)
            }
            Some(K::RemoveMember(remove)) => {
                let change = commands::remove_member(remove.user);
                let command = parse_command(remove.room, &remove.command_id, change);
                (FrameKind::Command, command)
            }
            Some(K::SetAccess(set)) => {
                let change = commands::set_access(set.user, &set.role, &set.grant, &set.revoke);
                let command = parse_command(set.room, &set.command_id, change);
                (FrameKind::Command, command)
            }
            Some(K::OpenDirect(open)) => {
                let open = UserId::parse(open.user).map(|peer| Request::OpenDirect { peer });
                (FrameKind::Command, open.map_err(GatewayError::from))
            }
            Some(K::History(history)) => (FrameKind::History, parse_history(history)),
            Some(K::Typing(typing)) => {
                let typing = RoomId::parse(typing.room).map(|room| Request::Typing { room });
                (FrameKind::Typing, typing.map_err(GatewayError::from))
            }
            Some(K::MarkRead(mark)) => {
                let mark = RoomId::parse(mark.room)
                    .map_err(GatewayError::from)
                    .and_then(|room| {
                        let seq = target_seq("seq", mark.seq)?;
                        Ok(Request::MarkRead { room, seq })
                    });
                (FrameKind::MarkRead, mark)
            }
            Some(K::Presence(presence)) => (
                FrameKind::Presence,
                Ok(Request::Presence {
                    users: presence.users,
                }),
            ),
            Some(K::CancelScheduled(cancel)) => (FrameKind::Command, parse_cancel(cancel)),
            Some(K::ListScheduled(list)) => (FrameKind::ListScheduled, parse_list(list)),
            Some(K::WatchFeed(_)) => (FrameKind::Feed, Ok(Request::Feed { watch: true })),
            Some(K::UnwatchFeed(_)) => (FrameKind::Feed, Ok(Request::Feed { watch: false })),
            Some(K::ListRooms(list)) => {
                let list = ListRooms::parse(&list.cursor, list.limit).map(Request::ListRooms);
                (FrameKind::ListRooms, list)
            }
            Some(K::Search(search)) => {
                let search =
                    Search::parse(search.query, &search.room, &search.cursor, search.limit)
                        .map(Request::Search);
                (FrameKind::Search, search)
            }
        };
        Self {
            request_id,
            kind,
            request,
        }
    }
}

fn parse_send(send: chat_proto::v1::Send, limits: &Limits) -> Result<Request, GatewayError> {
    let room = RoomId::parse(send.room)?;
    let client_msg_id = ClientMsgId::parse(send.client_msg_id)?;
    check_body(&send.body, limits)?;
    let target = send
        .reply_to
        .map(|s| target_seq("replyTo", s))
        .transpose()?;
    if let Some(at) = send.deliver_at_ms {
        let deliver_at_ms = scheduled::check_time(at, chat_protocol::now_ms())?;
        return Ok(Request::Scheduling(Scheduling::Schedule(NewScheduled {
            room,
            client_msg_id,
            body: send.body,
            reply_to: target,
            deliver_at_ms,
        })));
    }
    Ok(Request::Send {
        room,
        client_msg_id,
        body: send.body,
        entry: Entry {
            kind: EntryKind::Message,
            target,
        },
    })
}

fn parse_cancel(cancel: chat_proto::v1::CancelScheduled) -> Result<Request, GatewayError> {
    let room = RoomId::parse(cancel.room)?;
    let id = scheduled::parse_id(&cancel.id)?;
    Ok(Request::Scheduling(Scheduling::Cancel { room, id }))
}

fn parse_list(list: chat_proto::v1::ListScheduled) -> Result<Request, GatewayError> {
    let room = RoomId::parse(list.room)?;
    Ok(Request::Scheduling(Scheduling::List { room }))
}

fn parse_edit(edit: chat_proto::v1::Edit, limits: &Limits) -> Result<Request, GatewayError> {
    check_body(&edit.body, limits)?;
    event(
        edit.room,
        edit.seq,
        edit.client_msg_id,
        EntryKind::MessageEdited,
        edit.body,
    )
}

fn parse_delete(delete: chat_proto::v1::Delete) -> Result<Request, GatewayError> {
    let kind = EntryKind::MessageDeleted;
    event(
        delete.room,
        delete.seq,
        delete.client_msg_id,
        kind,
        String::new(),
    )
}

fn parse_react(react: chat_proto::v1::React) -> Result<Request, GatewayError> {
    check_emoji(&react.emoji)?;
    let kind = match react.remove {
        false => EntryKind::ReactionAdded,
        true => EntryKind::ReactionRemoved,
    };
    event(
        react.room,
        react.seq,
        react.client_msg_id,
        kind,
        react.emoji,
    )
}

/// An event on the message at `seq`; `body` is the new text or the emoji.
fn event(
    room: String,
    seq: i64,
    client_msg_id: String,
    kind: EntryKind,
    body: String,
) -> Result<Request, GatewayError> {
    let room = RoomId::parse(room)?;
    let target = Some(target_seq("seq", seq)?);
    Ok(Request::Send {
        room,
        client_msg_id: ClientMsgId::parse(client_msg_id)?,
        body,
        entry: Entry { kind, target },
    })
}

fn parse_history(history: chat_proto::v1::History) -> Result<Request, GatewayError> {
    let room = RoomId::parse(history.room)?;
    let limit = history.limit.map(i64::from);
    let query = PageQuery::parse(history.before, history.after, history.around, limit)?;
    Ok(Request::History { room, query })
}

fn parse_command(
    room: String,
    command_id: &str,
    change: Result<Change, GatewayError>,
) -> Result<Request, GatewayError> {
    let (room, change) = (RoomId::parse(room)?, change?);
    let command_id = commands::command_id(Some(command_id))?;
    Ok(Request::Command {
        room,
        command_id,
        change,
    })
}
