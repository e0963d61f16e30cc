//! What arrives over HTTP. In: TCP connections (`server`), WebSocket
//! upgrades and ticket requests (`upgrade`, checked by `auth`), room API
//! calls (`room_api`), history pages (`history`), health and metrics scrapes (`health`). Out: an
//! authenticated socket handed to `socket::session`, commands to
//! `send::commands`, answers as HTTP statuses (`error::GatewayError`).

pub mod auth;
pub mod health;
pub mod history;
pub mod room_api;
pub mod server;
pub mod upgrade;

use axum::Router;

use crate::state::AppState;

/// Every route of the gateway, each resource's own router merged here.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(upgrade::router(&state.config.allowed_origins))
        .merge(health::router())
        .merge(room_api::router(history::routes()))
        .with_state(state)
}
