//! Readiness of the services a binary depends on, for `/readyz`.

use std::time::Duration;

use async_nats::connection::State;
use redis::aio::ConnectionManager;

use chat_store::Store;

/// How long one dependency may take to answer before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Names of the dependencies that are not reachable now (empty: all fine).
pub async fn failing(
    nats: &async_nats::Client,
    store: &Store,
    redis: &ConnectionManager,
) -> Vec<&'static str> {
    let mut redis = redis.clone();
    let ping = redis::cmd("PING");
    let (pg, rd) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, store.ping()),
        tokio::time::timeout(PROBE_TIMEOUT, ping.query_async::<String>(&mut redis)),
    );
    let mut failing = Vec::new();
    if nats.connection_state() != State::Connected {
        failing.push("nats");
    }
    if !matches!(pg, Ok(Ok(()))) {
        failing.push("postgres");
    }
    if !matches!(rd, Ok(Ok(_))) {
        failing.push("redis");
    }
    failing
}

/// The `/readyz` answer for a list of failing dependencies: HTTP status and
/// JSON body, the same for every binary.
pub fn readiness(failing: &[&str]) -> (u16, serde_json::Value) {
    if failing.is_empty() {
        (200, serde_json::json!({ "status": "ready" }))
    } else {
        (
            503,
            serde_json::json!({ "status": "not_ready", "failing": failing }),
        )
    }
}
