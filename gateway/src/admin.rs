//! The admin seam: create rooms and manage members over HTTP, guarded by the
//! configured service token. Off when no token is configured.

use axum::{
    extract::{FromRequest, FromRequestParts, State},
    http::{request::Parts, StatusCode},
    routing::{post, put},
    Router,
};
use std::time::Duration;

use chat_proto::internal::{command::Change, CommandReply};
use chat_protocol::{RoomId, UserId};
use chat_store::Asker;
use serde::Deserialize;

use crate::{auth::bearer, command, error::GatewayError, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/rooms", post(create_room))
        .route(
            "/v1/admin/rooms/{room}/members/{user}",
            put(add_member).delete(remove_member),
        )
        .route(
            "/v1/admin/rooms/{room}/members/{user}/access",
            put(set_access),
        )
}

/// Proof that the request carries the admin token. Handlers take it as
/// their first argument, so a caller without the token is refused (401)
/// before its path or body is even parsed.
struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GatewayError> {
        let expected = state.config.admin_token.expose();
        match bearer(&parts.headers) {
            Some(token) if !expected.is_empty() && constant_time_eq(token, expected) => Ok(Admin),
            _ => Err(GatewayError::Unauthorized("admin token required")),
        }
    }
}

/// A JSON body whose rejection is our `invalid_argument`, not axum's text.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(GatewayError))]
struct Body<T>(T);

/// Path parameters, refused the same way.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(GatewayError))]
struct Params<T>(T);

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    room: String,
    #[serde(default)]
    members: Vec<String>,
    /// Members who start as owners (they need not be in `members` too).
    #[serde(default)]
    owners: Vec<String>,
}

/// A new role (absent: keep) with its default flags, then flags granted
/// and revoked, by name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetAccess {
    #[serde(default)]
    role: String,
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    revoke: Vec<String>,
}

/// The command id of a request: its `Idempotency-Key` (so a retried
/// request is applied once), or a fresh one.
struct CommandId(String);

impl FromRequestParts<AppState> for CommandId {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, GatewayError> {
        let key = match parts.headers.get("idempotency-key").map(|k| k.to_str()) {
            None => None,
            Some(Ok(key)) if !key.is_empty() => Some(key),
            Some(_) => return Err(bad_key()),
        };
        command::command_id(key).map(Self).map_err(|_| bad_key())
    }
}

fn bad_key() -> GatewayError {
    GatewayError::InvalidArgument("Idempotency-Key must be a valid client message id".into())
}

/// Runs a change through the workers; answered once it is committed.
async fn change(
    state: &AppState,
    id: CommandId,
    room: &RoomId,
    change: Change,
) -> Result<CommandReply, GatewayError> {
    let timeout = Duration::from_millis(state.config.limits.ack_timeout_ms);
    command::run(&state.nats, id.0, Asker::SERVICE, room, change, timeout).await
}

async fn create_room(
    _: Admin,
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
    let create = Change::CreateRoom(chat_proto::internal::CreateRoom {
        members: users(req.members)?,
        owners: users(req.owners)?,
    });
    let reply = change(&state, id, &room, create).await?;
    Ok(if reply.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

async fn add_member(
    _: Admin,
    State(state): State<AppState>,
    id: CommandId,
    Params((room, user)): Params<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    let add = command::add_member(user)?;
    change(&state, id, &RoomId::parse(room)?, add).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    _: Admin,
    State(state): State<AppState>,
    id: CommandId,
    Params((room, user)): Params<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    let remove = command::remove_member(user)?;
    change(&state, id, &RoomId::parse(room)?, remove).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_access(
    _: Admin,
    State(state): State<AppState>,
    id: CommandId,
    Params((room, user)): Params<(String, String)>,
    Body(req): Body<SetAccess>,
) -> Result<StatusCode, GatewayError> {
    let set = command::set_access(user, &req.role, &req.grant, &req.revoke)?;
    change(&state, id, &RoomId::parse(room)?, set).await?;
    Ok(StatusCode::NO_CONTENT)
}
