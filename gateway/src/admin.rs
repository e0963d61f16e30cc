//! The admin seam: create rooms and manage members over HTTP, guarded by the
//! configured service token. Off when no token is configured.

use axum::{
    extract::{FromRequest, FromRequestParts, State},
    http::{request::Parts, StatusCode},
    routing::{post, put},
    Router,
};
use chat_protocol::{RoomId, UserId};
use serde::Deserialize;

use crate::{auth::bearer, control, error::GatewayError, state::AppState};

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

async fn create_room(
    _: Admin,
    State(state): State<AppState>,
    Body(req): Body<CreateRoom>,
) -> Result<StatusCode, GatewayError> {
    let room = RoomId::parse(req.room)?;
    let members = req
        .members
        .into_iter()
        .map(UserId::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let created = state.store.create_room(&room).await?;
    for user in &members {
        state.membership.add(&room, user).await?;
    }
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

async fn add_member(
    _: Admin,
    State(state): State<AppState>,
    Params((room, user)): Params<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    let (room, user) = (RoomId::parse(room)?, UserId::parse(user)?);
    if state.store.room_head(&room).await?.is_none() {
        return Err(GatewayError::NotFound);
    }
    state.membership.add(&room, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    _: Admin,
    State(state): State<AppState>,
    Params((room, user)): Params<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    let (room, user) = (RoomId::parse(room)?, UserId::parse(user)?);
    state.membership.remove(&room, &user).await?;
    control::member_removed(&state.nats, &room, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
