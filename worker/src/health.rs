//! The worker's small HTTP surface: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};

use crate::{ctx::Ctx, metrics};

pub fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(ctx)
}

async fn readyz(State(ctx): State<Arc<Ctx>>) -> (StatusCode, Json<serde_json::Value>) {
    let probe = chat_health::probe(&ctx.nats, &ctx.store, &ctx.redis).await;
    let (status, body) = chat_health::readiness(&probe);
    (
        StatusCode::from_u16(status).expect("valid status"),
        Json(body),
    )
}

async fn render_metrics(State(ctx): State<Arc<Ctx>>) -> String {
    metrics::pool(&ctx.store);
    ctx.metrics.render()
}
