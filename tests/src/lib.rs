//! Test harness: throw-away NATS (JetStream), Postgres and Redis started from
//! the installed binaries on free ports, real gateway and worker processes,
//! and real WebSocket clients. Nothing here touches the machine's own
//! instances; everything is killed when the test's `Cluster` is dropped.

pub mod checker;
pub mod cluster;
pub mod entries;
pub mod event_state;
pub mod frames;
pub mod jetstream;
pub mod metrics;
pub mod netns;
pub mod node;
pub mod nodes;
pub mod options;
pub mod process;
pub mod prometheus;
pub mod redis_cluster;
pub mod rooms;
pub mod services;
pub mod session;

pub use cluster::Cluster;
pub use frames::{assert_gap_free, is_status_push, Frames, STEP};
pub use jetstream::{envelope, header, room_in_partition, JetStream};
pub use metrics::Metrics;
pub use options::{ClusterOptions, Role, ADMIN_TOKEN};
pub use session::Session;

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
///
/// Taken below the kernel's ephemeral range: a port from there can be
/// handed to some client socket (tests open thousands) between this check
/// and the server's bind, and the server then never starts. Each process
/// walks the range from its own point, so parallel test binaries rarely
/// meet; a port in use is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&low| low > LOWEST + 1_000)
        .unwrap_or(32_768);
    let span = ephemeral - LOWEST;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let port = (LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {ephemeral}");
}
