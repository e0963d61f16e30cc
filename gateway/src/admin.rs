//! The admin seam: create rooms and manage members over HTTP, guarded by the
//! configured service token. Off when no token is configured.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{post, put},
    Json, Router,
};
use chat_shared::{RoomId, UserId};
use serde::Deserialize;

use crate::{app::AppState, auth::bearer, error::GatewayError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/rooms", post(create_room))
        .route(
            "/v1/admin/rooms/{room}/members/{user}",
            put(add_member).delete(remove_member),
        )
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), GatewayError> {
    let expected = state.config.admin_token.expose();
    match bearer(headers) {
        Some(token) if !expected.is_empty() && constant_time_eq(token, expected) => Ok(()),
        _ => Err(GatewayError::Unauthorized("admin token required")),
    }
}

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
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<CreateRoom>,
) -> Result<StatusCode, GatewayError> {
    authorize(&state, &headers)?;
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
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((room, user)): Path<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    authorize(&state, &headers)?;
    let (room, user) = (RoomId::parse(room)?, UserId::parse(user)?);
    if state.store.room_head(&room).await?.is_none() {
        return Err(GatewayError::NotFound);
    }
    state.membership.add(&room, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((room, user)): Path<(String, String)>,
) -> Result<StatusCode, GatewayError> {
    authorize(&state, &headers)?;
    let (room, user) = (RoomId::parse(room)?, UserId::parse(user)?);
    state.membership.remove(&room, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
