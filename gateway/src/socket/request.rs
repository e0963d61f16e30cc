//! A client frame parsed once into what it asks, with every check that
//! needs no state (ids, body size, names of roles and flags), as mini-redis
//! parses a `Command` from a `Frame`. What needs the session's state (its
//! rooms, its budget, membership) is `dispatch`'s.

use chat_proto::{
    internal::command::Change,
    v1::{client_frame, ClientFrame},
};
use chat_protocol::{ClientMsgId, RoomId, Seq, UserId};

use crate::{
    config::Limits,
    error::GatewayError,
    lookup::{my_rooms::ListRooms, search::Search},
    rooms::pages::PageQuery,
    send::commands,
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
    Send {
        room: RoomId,
        client_msg_id: ClientMsgId,
        body: String,
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
}

/// Which kind of frame it was, known even when its content is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameKind {
    Unknown,
    Ping,
    Join,
    Leave,
    Send,
    Command,
    History,
    ListRooms,
    Search,
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
            Self::Command => "command",
            Self::History => "history",
            Self::ListRooms => "list_rooms",
            Self::Search => "search",
        }
    }

    /// Whether the frame spends the socket's send budget. Every send and
    /// command frame does, valid or not: refusing is what is cheap.
    pub fn spends_budget(self) -> bool {
        matches!(self, Self::Send | Self::Command)
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
    Ok(Request::Send {
        room,
        client_msg_id,
        body: send.body,
    })
}

/// The limits of a message's body, the same for a socket's send and a
/// server publish: at most `max_body_bytes`, no NUL.
pub fn check_body(body: &str, limits: &Limits) -> Result<(), GatewayError> {
    let limit = limits.max_body_bytes.get();
    if body.len() > limit {
        return Err(GatewayError::InvalidArgument(format!(
            "body is {} bytes; the limit is {limit}",
            body.len()
        )));
    }
    // Postgres text cannot hold NUL; refused here, it never reaches a batch.
    if body.contains('\0') {
        return Err(GatewayError::InvalidArgument(
            "body must not contain NUL characters".into(),
        ));
    }
    Ok(())
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
