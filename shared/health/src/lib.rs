//! Readiness of the services a binary depends on, for `/readyz`.

use std::time::Duration;

use async_nats::connection::State;
use chat_cache::Redis;

use chat_store::Store;

/// How long one dependency may take to answer before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// 1 if the dependency answered the last `/readyz`, else 0.
const UP: &str = "chat_dependency_up";

/// What `/readyz` found.
pub struct Probe {
    /// Dependencies without which nothing can be served.
    pub failing: Vec<&'static str>,
    /// Caches that are down: served from Postgres meanwhile, slower.
    pub degraded: Vec<&'static str>,
}

/// Which dependencies are not reachable now.
pub async fn probe(nats: &async_nats::Client, store: &Store, redis: &Redis) -> Probe {
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
    let mut degraded = Vec::new();
    if !matches!(rd, Ok(Ok(_))) {
        degraded.push("redis");
    }
    for dependency in ["nats", "postgres", "redis"] {
        let down = failing.contains(&dependency) || degraded.contains(&dependency);
        metrics::gauge!(UP, "dependency" => dependency).set(if down { 0.0 } else { 1.0 });
    }
    Probe { failing, degraded }
}

/// The `/readyz` answer: HTTP status and JSON body, the same for every
/// binary. Only a failing dependency makes a process not ready; a degraded
/// one is reported (taking every pod out of its Service because the cache
/// is down would turn a slower system into none).
pub fn readiness(probe: &Probe) -> (u16, serde_json::Value) {
    let (status, code) = if probe.failing.is_empty() {
        ("ready", 200)
    } else {
        ("not_ready", 503)
    };
    let mut body = serde_json::json!({ "status": status });
    if !probe.failing.is_empty() {
        body["failing"] = serde_json::json!(probe.failing);
    }
    if !probe.degraded.is_empty() {
        body["degraded"] = serde_json::json!(probe.degraded);
    }
    (code, body)
}
