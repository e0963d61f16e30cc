//! The gateway's shared state: everything a request handler or a socket may
//! touch. Handlers depend on this module, not on `app`, which builds it.

use std::{
    ops::Deref,
    sync::{atomic::AtomicU64, Arc},
};

use chat_cache::Redis;
use chat_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::GatewayConfig, feed::Feeds, http::auth::Verifier, presence::Presence, rooms::hub::Hub,
    rooms::membership::Membership, rooms::pages::Pages, send::canary::CanaryHealth,
    send::ingest::Ingest, signals::Signals, socket::drain::Drain, socket::limits::Limiter,
};

/// Everything a request handler may touch; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub config: GatewayConfig,
    pub verifier: Verifier,
    pub store: Store,
    pub redis: Redis,
    pub membership: Membership,
    /// History pages: Redis, the replica, the primary.
    pub pages: Pages,
    pub hub: Hub,
    /// Sockets watching their user's feed of rooms.
    pub feeds: Feeds,
    /// This gateway's outgoing signals (typing, online).
    pub signals: Signals,
    /// Who is online: this gateway's sockets opening and closing.
    pub presence: Presence,
    pub ingest: Arc<Ingest>,
    pub nats: async_nats::Client,
    pub metrics: PrometheusHandle,
    /// Fires once every socket has drained: stops the accept loop, rooms,
    /// the receipt listener, the prober and the canary.
    pub shutdown: CancellationToken,
    /// SIGTERM to the last socket: readiness, refused upgrades, and each
    /// socket's moment to close.
    pub drain: Drain,
    /// The delivery canary's recent record, for `/readyz`.
    pub canary: Arc<CanaryHealth>,
    /// Open sockets, so shutdown can wait for them to close.
    pub sessions: TaskTracker,
    /// One permit per open socket, up to `limits.max_connections`.
    pub sockets: Arc<Semaphore>,
    /// One permit per server publish awaiting its commit, up to
    /// `limits.max_inflight_publishes`.
    pub publishes: Semaphore,
    /// Send rates, and sockets per user and per address.
    pub limiter: Arc<Limiter>,
    /// The next socket's connection id (for logs).
    pub next_conn: AtomicU64,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.drain.is_draining() || self.shutdown.is_cancelled()
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
