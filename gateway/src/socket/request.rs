//! A client frame parsed once into what it asks, with every check that
//! needs no state (ids, body size, names of roles and flags), as mini-redis
//! parses a `Command` from a `Frame`. What needs the session's state (its
//! rooms, its budget, membership) is `dispatch`'s.

use chat_proto::{
    internal::command::Change,
    v1::{client_frame, ClientFrame},
};
use chat_protocol::{ClientMsgId, RoomId, Seq};

use crate::{
    config::Limits,
    error::GatewayError,
    lookup::{my_rooms::ListRooms, search::Search},
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
    /// A member command, run through the workers as this user.
    Command {
        room: RoomId,
        command_id: String,
        change: Change,
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
        let kind = match &frame.kind {
            None => FrameKind::Unknown,
            Some(K::Ping(_)) => FrameKind::Ping,
            Some(K::Join(_)) => FrameKind::Join,
            Some(K::Leave(_)) => FrameKind::Leave,
            Some(K::Send(_)) => FrameKind::Send,
            Some(K::AddMember(_) | K::RemoveMember(_) | K::SetAccess(_)) => FrameKind::Command,
            Some(K::ListRooms(_)) => FrameKind::ListRooms,
            Some(K::Search(_)) => FrameKind::Search,
        };
        let request = match frame.kind {
            None => Err(GatewayError::Unsupported),
            Some(K::Ping(_)) => Ok(Request::Ping),
            Some(K::Join(join)) => RoomId::parse(join.room)
                .map(|room| Request::Join {
                    room,
                    since: join.since_seq.map(Seq::new),
                })
                .map_err(GatewayError::from),
            Some(K::Leave(leave)) => RoomId::parse(leave.room)
                .map(|room| Request::Leave { room })
                .map_err(GatewayError::from),
            Some(K::Send(send)) => parse_send(send, limits),
            Some(K::AddMember(add)) => {
                let change = commands::add_member(add.user);
                parse_command(add.room, &add.command_id, change)
            }
            Some(K::RemoveMember(remove)) => {
                let change = commands::remove_member(remove.user);
                parse_command(remove.room, &remove.command_id, change)
            }
            Some(K::SetAccess(set)) => {
                let change = commands::set_access(set.user, &set.role, &set.grant, &set.revoke);
                parse_command(set.room, &set.command_id, change)
            }
            Some(K::ListRooms(list)) => {
                ListRooms::parse(&list.cursor, list.limit).map(Request::ListRooms)
            }
            Some(K::Search(search)) => {
                Search::parse(search.query, &search.room, &search.cursor, search.limit)
                    .map(Request::Search)
            }
        };
        Self {
            request_id: frame.request_id,
            kind,
            request,
        }
    }
}

fn parse_send(send: chat_proto::v1::Send, limits: &Limits) -> Result<Request, GatewayError> {
    let room = RoomId::parse(send.room)?;
    let client_msg_id = ClientMsgId::parse(send.client_msg_id)?;
    let limit = limits.max_body_bytes.get();
    if send.body.len() > limit {
        return Err(GatewayError::InvalidArgument(format!(
            "body is {} bytes; the limit is {limit}",
            send.body.len()
        )));
    }
    // Postgres text cannot hold NUL; refused here, it never reaches a batch.
    if send.body.contains('\0') {
        return Err(GatewayError::InvalidArgument(
            "body must not contain NUL characters".into(),
        ));
    }
    Ok(Request::Send {
        room,
        client_msg_id,
        body: send.body,
    })
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
