//! The admin seam: create rooms and manage members over HTTP, guarded by the
//! configured service token. Off when no token is configured.

use axum::{
    extract::{FromRequest, FromRequestParts, State},
    http::{request::Parts, StatusCode},
    routing::{post, put},
    Router,
};
use std::time::Duration;

use chat_proto::internal::{command::Change, CommandReply, MemberChange};
use chat_protocol::{ClientMsgId, RoomId, UserId};
use serde::Deserialize;

use crate::{auth::bearer, command, error::GatewayError, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/rooms", post(create_room))
        .route(
            "/v1/admin/rooms/{room}/members/{user}",
            put(add_member).delete(remove_member),
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
struct CreateRoom {
    room: String,
    #[serde(default)]
    members: Vec<String>,
}

/// The command id of a request: its `Idempotency-Key` (so a retried
/// request is applied once), or a fresh one.
struct CommandId(String);

impl FromRequestParts<AppState> for CommandId {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, GatewayError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Self(uuid::Uuid::now_v7().to_string())),
            Some(key) => key
                .to_str()
                .ok()
                .and_then(|k| ClientMsgId::parse(k).ok())
                .map(|k| Self(k.as_str().to_owned()))
                .ok_or_else(|| {
                    GatewayError::InvalidArgument(
                        "Idempotency-Key must be a valid client message id".into(),
                    )
                }),
        }
    }
}

/// Runs a change through the workers; answered once it is committed.
async fn change(
    state: &AppState,
    id: CommandId,
    room: &RoomId,
    change: Change,
) -> Result<CommandReply, GatewayError> {
    let timeout = Duration::from_millis(state.config.limits.ack_timeout_ms);
    command::run(&state.nats, id.0, room, change, timeout).await
}

async fn create_room(
    _: Admin,
    State(state): State<AppState>,
    id: CommandId,
    Body(req): Body<CreateRoom>,
) -> Result<StatusCode, GatewayError> {
    let room = RoomId::parse(req.room)?;
    let members = req
        .members
        .into_iter()
        .map(|m| UserId::parse(m).map(String::from))
        .collect::<Result<Vec<_>, _>>()?;
    let create = Change::CreateRoom(chat_proto::internal::CreateRoom { members });
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
    let (room, user) = (RoomId::parse(room)?, UserId::parse(user)?);
    let add = Change::AddMember(MemberChange { user: user.into() });
    change(&state, id, &room, add).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    _: Admin,
    State(state): State<AppState>,
    id: CommandId,
    Params((room, user)): Params<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    let (room, user) = (RoomId::parse(room)?, UserId::parse(user)?);
    let remove = Change::RemoveMember(MemberChange { user: user.into() });
    change(&state, id, &room, remove).await?;
    Ok(StatusCode::NO_CONTENT)
}
