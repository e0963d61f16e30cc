//! `GET /v1/ws` and `POST /v1/ws/ticket`: everything that can refuse a
//! client happens before the upgrade, so a refused client gets a plain HTTP
//! status; an accepted one is handed to its session.

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
};

use axum::{
    extract::{ConnectInfo, Query, State, WebSocketUpgrade},
    http::HeaderMap,
    response::Response,
    routing::{get, post},
    Json, Router,
};
use chat_protocol::codec::{Encoding, JSON_SUBPROTOCOL, PROTO_SUBPROTOCOL};
use serde::Deserialize;

use crate::{
    error::GatewayError,
    http::auth::{self, bearer},
    socket::session::{self, SessionInfo},
    state::AppState,
};

/// The socket routes; browsers from `allowed_origins` may ask for tickets.
pub fn router(allowed_origins: &[String]) -> Router<AppState> {
    Router::new().route("/v1/ws", get(upgrade)).route(
        "/v1/ws/ticket",
        post(ticket).layer(auth::ticket_cors(allowed_origins)),
    )
}

#[derive(Deserialize)]
struct UpgradeQuery {
    ticket: Option<String>,
}

/// `GET /v1/ws`: everything that can refuse a client happens here, before
/// the upgrade, so a refused client gets a plain HTTP status.
async fn upgrade(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Query<UpgradeQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, GatewayError> {
    let result = accept(state, peer, headers, query, ws).await;
    crate::metrics::connect(match &result {
        Ok(_) => "accepted",
        Err(GatewayError::AtCapacity) => "at_capacity",
        Err(e) => e.code().as_str(),
    });
    result
}

async fn accept(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<UpgradeQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, GatewayError> {
    if state.is_draining() {
        return Err(GatewayError::ShuttingDown);
    }
    auth::check_origin(
        &headers,
        &state.config.allowed_origins,
        state.config.web.enabled,
    )?;
    let slot = Arc::clone(&state.sockets)
        .try_acquire_owned()
        .map_err(|_| GatewayError::AtCapacity)?;
    // Before authentication: a flood from one address is refused cheaply.
    let ip = state.limiter.client_ip(peer, &headers);
    let address_slot = state.limiter.admit_address(ip)?;
    let user = match (bearer(&headers), query.ticket) {
        (Some(_), _) => state.verifier.verify_bearer(&headers)?,
        (None, Some(ticket)) => auth::redeem_ticket(&mut state.redis.clone(), &ticket).await?,
        (None, None) => return Err(GatewayError::Unauthorized("missing bearer token or ticket")),
    };
    let user_slot = state.limiter.admit_user(&user)?;
    let ws = ws.protocols([JSON_SUBPROTOCOL, PROTO_SUBPROTOCOL]);
    let encoding = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Encoding::from_subprotocol)
        .unwrap_or(Encoding::Json);
    let info = SessionInfo {
        conn: state.next_conn.fetch_add(1, Ordering::Relaxed),
        user,
        encoding,
    };
    let limits = &state.config.limits;
    let drain_token = state.sessions.token();
    Ok(ws
        .read_buffer_size(limits.ws_buffer_bytes.get())
        .write_buffer_size(limits.ws_buffer_bytes.get())
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| async move {
            session::serve(socket, info, state).await;
            drop((slot, address_slot, user_slot, drain_token));
        }))
}

/// `POST /v1/ws/ticket`: trades a bearer token for a one-time ticket, for
/// browsers, which cannot set headers on a WebSocket request.
async fn ticket(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, GatewayError> {
    auth::check_origin(
        &headers,
        &state.config.allowed_origins,
        state.config.web.enabled,
    )?;
    let user = state.verifier.verify_bearer(&headers)?;
    let ttl = state.config.jwt.ticket_ttl.as_secs();
    let ticket = auth::issue_ticket(&mut state.redis.clone(), &user, ttl).await?;
    Ok(Json(
        serde_json::json!({ "ticket": ticket, "expires_in_secs": ttl }),
    ))
}
