//! Test harness: throw-away NATS (JetStream), Postgres and Redis started from
//! the installed binaries on free ports, real gateway and worker processes,
//! and real WebSocket clients. Nothing here touches the machine's own
//! instances; everything is killed when the test's `Cluster` is dropped.

pub mod checker;
pub mod cluster;
pub mod netns;
pub mod process;
pub mod services;

pub use cluster::{Cluster, ClusterOptions, Role};

use std::{future::Future, time::Duration};

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}
