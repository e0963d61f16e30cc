//! Direct rooms over HTTP (`POST /v1/direct/{user}`): a user opens the
//! room of their pair with `user`, made on first use by either with both
//! as members (`send::commands::open_direct`, as the WebSocket's
//! `openDirect`).

use axum::{extract::State, http::StatusCode, Json};
use chat_protocol::{access::Actor, UserId};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::GatewayError,
    http::api::{Authenticated, ErrorBody, Params},
    send::commands,
    state::AppState,
};

/// The route, for `api::router` to serve with the OpenAPI document.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_direct))
}

/// The pair's room.
#[derive(Serialize, ToSchema)]
struct DirectRoom {
    /// Its id (`dm-` and 40 hex digits, the same whoever opens it).
    room: String,
    /// Made by this request.
    created: bool,
}

/// Opens the direct room of the caller (a user's JWT) and `user`: 201 when
/// this request made it, 200 when it existed. Nobody can add a third
/// member to it; either may leave (`DELETE /v1/rooms/{room}/members/{me}`),
/// and opening it again adds the opener back.
#[utoipa::path(
    post, path = "/v1/direct/{user}", tag = "rooms",
    params(("user" = String, Path, description = "The other user of the pair")),
    responses(
        (status = 201, description = "Made by this request, with both as members", body = DirectRoom),
        (status = 200, description = "It existed", body = DirectRoom),
        (status = 400, description = "Bad user id, or oneself", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The service token: a direct room is opened by one of its pair", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry", body = ErrorBody),
        (status = 504, description = "Not confirmed in time; retry", body = ErrorBody),
    )
)]
async fn open_direct(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    Params(peer): Params<String>,
) -> Result<(StatusCode, Json<DirectRoom>), GatewayError> {
    let Actor::User(me) = actor else {
        return Err(GatewayError::Forbidden(
            "a direct room is opened by one of its pair: use a user's JWT",
        ));
    };
    let peer = UserId::parse(peer)?;
    let timeout = state.config.limits.ack_timeout;
    let (room, created) = commands::open_direct(&state.nats, &me, &peer, timeout).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let room = room.to_string();
    Ok((status, Json(DirectRoom { room, created })))
}
