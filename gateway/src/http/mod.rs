//! What arrives over HTTP. In: TCP connections (`server`), WebSocket
//! upgrades and ticket requests (`upgrade`, checked by `auth`), room API
//! calls (`room_api`), a user's lookups (`lookups`), health and metrics scrapes (`health`). Out: an
//! authenticated socket handed to `socket::session`, commands to
//! `send::commands`, answers as HTTP statuses (`error::GatewayError`).

pub mod auth;
pub mod health;
pub mod lookups;
pub mod room_api;
pub mod server;
pub mod upgrade;

use axum::{routing::get, Json, Router};

use crate::state::AppState;

/// Every route of the gateway, each resource's own router merged here.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(upgrade::router(&state.config.allowed_origins))
        .merge(health::router())
        .merge(api())
        .with_state(state)
}

/// The room API and the lookups, and the OpenAPI document generated from
/// their handlers at `/v1/openapi.json`.
fn api() -> Router<AppState> {
    let (router, api) = room_api::routes()
        .merge(lookups::routes())
        .split_for_parts();
    let document = serde_json::to_value(&api).expect("the OpenAPI document serializes");
    router.route(
        "/v1/openapi.json",
        get(move || std::future::ready(Json(document.clone()))),
    )
}
