//! What arrives over HTTP. In: TCP connections (`server`), WebSocket
//! upgrades and ticket requests (`upgrade`, checked by `auth`), room API
//! calls (`room_api`), history pages (`history`), a user's lookups
//! (`lookups`), server publishes (`publish`), direct rooms (`direct`) and
//! a user's data, exported or erased (`users`),
//! all under the OpenAPI document `api` serves, health and metrics scrapes
//! (`health`), and the web chat page (`web`).
//! Out: an authenticated socket handed to `socket::session`, commands to
//! `send::commands`, published messages to `send::ingest`, answers as HTTP
//! statuses (`error::GatewayError`).

pub mod api;
pub mod auth;
pub mod direct;
pub mod health;
pub mod history;
pub mod lookups;
pub mod publish;
pub mod room_api;
pub mod server;
pub mod upgrade;
pub mod users;
pub mod web;

use axum::Router;

use crate::state::AppState;

/// Every route of the gateway, each resource's own router merged here.
pub fn router(state: AppState) -> Router {
    let resources = room_api::routes()
        .merge(history::routes())
        .merge(publish::routes())
        .merge(direct::routes())
        .merge(lookups::routes())
        .merge(users::routes());
    Router::new()
        .merge(upgrade::router(&state.config.allowed_origins))
        .merge(health::router())
        .merge(api::router(resources))
        .merge(web::router(&state.config.web))
        .with_state(state)
}
