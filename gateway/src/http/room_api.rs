//! The room API (`/v1/rooms`): create and delete rooms, set how long their
//! messages are kept, list, add and remove members, change their roles and
//! flags. Trusted backends call it with the service
//! token (`admin_token`; may do anything the rules leave to the service),
//! users with their JWT (the rules of `chat_protocol::access` apply, as for
//! their WebSocket frames). Every change runs through the workers and is
//! answered once committed. The OpenAPI document at `/v1/openapi.json` is
//! generated from these handlers and those `router` is given (`http::history`).

use axum::{
    extract::{FromRequestParts, State},
    http::{request::Parts, StatusCode},
    Json,
};

use chat_proto::internal::{command::Change, CommandReply};
use chat_protocol::{
    access::{Access, Actor},
    RoomId, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::GatewayError,
    http::api::{bad_key, idempotency_key, Authenticated, Body, ErrorBody, Params},
    send::commands,
    state::AppState,
};

/// The room API's routes, for `api::router` to serve with the document.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room))
        .routes(routes!(delete_room))
        .routes(routes!(set_retention))
        .routes(routes!(list_members))
        .routes(routes!(add_member, remove_member))
        .routes(routes!(set_access))
}

/// The command id of a request: its `Idempotency-Key` (so a retried
/// request is applied once), or a fresh one.
struct CommandId(String);

impl FromRequestParts<AppState> for CommandId {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, GatewayError> {
        let key = idempotency_key(parts)?;
        commands::command_id(key).map(Self).map_err(|_| bad_key())
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    /// Room id, as in the WebSocket protocol (docs/protocol.md).
    room: String,
    /// Plain members.
    #[serde(default)]
    members: Vec<String>,
    /// Members who start as owners (the service only: a user creating a
    /// room is its owner).
    #[serde(default)]
    owners: Vec<String>,
}

/// A new role (absent: keep) with its default flags, then flags granted
/// and revoked, by name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetAccess {
    /// `owner`, `admin` or `member`; empty or absent keeps the current one.
    #[serde(default)]
    role: String,
    /// Flag names: `can_send_messages`, `can_change_permissions`,
    /// `can_remove_members`, `can_delete_other_messages`.
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    revoke: Vec<String>,
}

/// A room's own retention limits, each replacing the workers' default
/// (`retention.*`); absent or null: the default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Retention {
    /// Messages older than this many seconds are deleted (at least 1).
    #[serde(default)]
    max_age_seconds: Option<i64>,
    /// Only the room's newest this many entries are kept (at least 1).
    #[serde(default)]
    max_count: Option<i64>,
}

/// What a change to a member may be answered with, besides success.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Read by the OpenAPI document only.
enum ChangeRefused {
    /// Bad room or user id, role, flag name, body or Idempotency-Key.
    #[response(status = 400)]
    InvalidArgument(ErrorBody),
    /// No valid service token or JWT.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The rules of who may change whom do not allow it (deleting: not an owner).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such room (or, for access, no such member).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// It would leave the room without an owner.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// A dependency is down; retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// Not confirmed in time; retry with the same Idempotency-Key.
    #[response(status = 504)]
    Timeout(ErrorBody),
}

/// A member with their role and flags.
#[derive(Serialize, ToSchema)]
struct MemberView {
    user: String,
    role: String,
    permissions: Vec<String>,
}

/// Runs a change through the workers; answered once it is committed.
async fn change(
    state: &AppState,
    actor: &Actor,
    id: CommandId,
    room: &RoomId,
    change: Change,
) -> Result<CommandReply, GatewayError> {
    let timeout = state.config.limits.ack_timeout;
    commands::run(&state.nats, id.0, actor, room, change, timeout).await
}

/// Creates a room. The service names its owners and members (asking again
/// is harmless: 200); a user becomes the owner of the room they create
/// (`conflict` if it exists).
#[utoipa::path(
    post, path = "/v1/rooms", tag = "rooms",
    params(("Idempotency-Key" = Option<String>, Header, description = "Applies a retried request once")),
    request_body = CreateRoom,
    responses(
        (status = 201, description = "Created"),
        (status = 200, description = "The room existed (service); nothing changed"),
        (status = 400, description = "Bad room or user id, bad JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 409, description = "The room exists (user)", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry", body = ErrorBody),
        (status = 504, description = "Not confirmed in time; retry with the same key", body = ErrorBody),
    )
)]
async fn create_room(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    id: CommandId,
    Body(req): Body<CreateRoom>,
) -> Result<StatusCode, GatewayError> {
    let room = RoomId::parse(req.room)?;
    let users = |list: Vec<String>| {
        list.into_iter()
            .map(|m| UserId::parse(m).map(String::from))
            .collect::<Result<Vec<_>, _>>()
    };
    let owners = match &actor {
        Actor::Service => users(req.owners)?,
        Actor::User(me) if req.owners.is_empty() => vec![me.to_string()],
        Actor::User(_) => {
            return Err(GatewayError::InvalidArgument(
                "a user creating a room is its owner: leave `owners` out".into(),
            ))
        }
    };
    let create = Change::CreateRoom(chat_proto::internal::CreateRoom {
        members: users(req.members)?,
        owners,
    });
    let reply = change(&state, &actor, id, &room, create).await?;
    Ok(if reply.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

/// Deletes the room with everything stored for it (its owners; the
/// service). Its sockets hear `left` with reason `deleted`; a room made
/// again under its id starts empty, at seq 1.
#[utoipa::path(
    delete, path = "/v1/rooms/{room}", tag = "rooms",
    params(
        ("room" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Applies a retried request once"),
    ),
    responses(
        (status = 204, description = "Deleted (or, resent with its key, deleted before)"),
        ChangeRefused,
    )
)]
async fn delete_room(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    id: CommandId,
    Params(room): Params<String>,
) -> Result<StatusCode, GatewayError> {
    let delete = Change::DeleteRoom(chat_proto::internal::DeleteRoom {});
    change(&state, &actor, id, &RoomId::parse(room)?, delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets how long the room's messages are kept (its owners; the service).
/// Workers delete what is past the limits from the oldest, in the
/// background; history and search stop showing them, and a resume from
/// before the oldest kept gets `resync` from it.
#[utoipa::path(
    put, path = "/v1/rooms/{room}/retention", tag = "rooms",
    params(
        ("room" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Applies a retried request once"),
    ),
    request_body = Retention,
    responses(
        (status = 204, description = "Committed"),
        ChangeRefused,
    )
)]
async fn set_retention(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    id: CommandId,
    Params(room): Params<String>,
    Body(req): Body<Retention>,
) -> Result<StatusCode, GatewayError> {
    let set = commands::set_retention(req.max_age_seconds, req.max_count)?;
    change(&state, &actor, id, &RoomId::parse(room)?, set).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The room's members with their roles and flags, for the service or a
/// member of the room.
#[utoipa::path(
    get, path = "/v1/rooms/{room}/members", tag = "members",
    params(("room" = String, Path)),
    responses(
        (status = 200, description = "The members, by user id", body = Vec<MemberView>),
        (status = 400, description = "Bad room id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a member of the room", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry", body = ErrorBody),
    )
)]
async fn list_members(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    Params(room): Params<String>,
) -> Result<Json<Vec<MemberView>>, GatewayError> {
    let room = RoomId::parse(room)?;
    let members = state
        .store
        .members(&room)
        .await?
        .ok_or(GatewayError::NotFound)?;
    if let Actor::User(me) = &actor {
        if !members.iter().any(|(user, _)| user == me) {
            return Err(GatewayError::Forbidden("not a member of this room"));
        }
    }
    Ok(Json(
        members
            .into_iter()
            .map(|(user, access): (UserId, Access)| MemberView {
                user: user.to_string(),
                role: access.role.as_str().into(),
                permissions: access.permissions.names(),
            })
            .collect(),
    ))
}

/// Adds a member (a plain `member`).
#[utoipa::path(
    put, path = "/v1/rooms/{room}/members/{user}", tag = "members",
    params(
        ("room" = String, Path), ("user" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Applies a retried request once"),
    ),
    responses(
        (status = 204, description = "Committed (or already a member)"),
        ChangeRefused,
    )
)]
async fn add_member(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    id: CommandId,
    Params((room, user)): Params<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    let add = commands::add_member(user)?;
    change(&state, &actor, id, &RoomId::parse(room)?, add).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member (oneself: leaves the room).
#[utoipa::path(
    delete, path = "/v1/rooms/{room}/members/{user}", tag = "members",
    params(
        ("room" = String, Path), ("user" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Applies a retried request once"),
    ),
    responses(
        (status = 204, description = "Committed (or not a member)"),
        ChangeRefused,
    )
)]
async fn remove_member(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    id: CommandId,
    Params((room, user)): Params<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    let remove = commands::remove_member(user)?;
    change(&state, &actor, id, &RoomId::parse(room)?, remove).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes a member's role and flags.
#[utoipa::path(
    put, path = "/v1/rooms/{room}/members/{user}/access", tag = "members",
    params(
        ("room" = String, Path), ("user" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Applies a retried request once"),
    ),
    request_body = SetAccess,
    responses(
        (status = 204, description = "Committed"),
        ChangeRefused,
    )
)]
async fn set_access(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    id: CommandId,
    Params((room, user)): Params<(String, String)>,
    Body(req): Body<SetAccess>,
) -> Result<StatusCode, GatewayError> {
    let set = commands::set_access(user, &req.role, &req.grant, &req.revoke)?;
    change(&state, &actor, id, &RoomId::parse(room)?, set).await?;
    Ok(StatusCode::NO_CONTENT)
}
