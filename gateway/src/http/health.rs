//! `/healthz` (alive), `/readyz` (dependencies reachable, not draining, the
//! delivery canary answered if so configured) and `/metrics` (Prometheus text).

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};

use crate::{metrics, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let mut probe = chat_health::probe(&state.nats, &state.store, &state.redis).await;
    if state.is_draining() {
        probe.failing.push("draining");
    }
    if state
        .canary
        .failing(state.config.canary.fail_readiness_after)
    {
        probe.failing.push("canary");
    }
    let (status, body) = chat_health::readiness(&probe);
    (
        StatusCode::from_u16(status).expect("valid status"),
        Json(body),
    )
}

async fn render_metrics(State(state): State<AppState>) -> String {
    metrics::pool(&state.store);
    metrics::rooms(state.hub.room_count());
    let publishes = state.config.limits.max_inflight_publishes.get();
    metrics::publishes_in_flight(publishes - state.publishes.available_permits());
    state.metrics.render()
}
