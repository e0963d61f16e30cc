//! Builds the gateway from its configuration and serves it. `main` and the
//! tests both go through `Application::build`.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{atomic::AtomicU64, Arc},
};

use chat_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{
    net::TcpListener,
    sync::{watch, Notify, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::GatewayConfig,
    error::GatewayError,
    http::{self, auth::Verifier, server},
    rooms::{
        announcements, history::History, hub::Hub, membership::Membership, room::RoomDeps,
        tail_probe::Prober,
    },
    send::{
        canary::{Canary, CanaryHealth},
        ingest::Ingest,
    },
    socket::{drain::Drain, limits::Limiter},
    state::{AppState, Inner},
};

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to NATS, Postgres and Redis, declares the streams and binds
    /// the listener. Sockets are served once `run` is called.
    pub async fn build(
        config: GatewayConfig,
        metrics: PrometheusHandle,
    ) -> Result<Self, GatewayError> {
        crate::metrics::describe();
        // Fires once every socket has drained; everything else stops then.
        let shutdown = CancellationToken::new();
        let verifier = Verifier::new(&config.jwt)
            .map_err(|e| GatewayError::Startup(format!("jwt key: {e}")))?;
        // Fan-out lost to a slow subscription or a reconnect: every room
        // checks for a lost tail at once.
        let resync = Arc::new(Notify::new());
        let (reconnected, reconnects) = watch::channel(());
        let nats = connect_nats(&config, Arc::clone(&resync), reconnected).await?;
        let js = async_nats::jetstream::new(nats.clone());
        chat_streams::ensure(&js, &config.stream)
            .await
            .map_err(GatewayError::nats)?;
        let store = Store::new(&config.postgres)?;
        let redis = chat_cache::connect(config.redis_url.expose())?;
        let membership = Membership::new(
            store.clone(),
            redis.clone(),
            config.delivery.membership_ttl.as_secs(),
        );
        let history = History {
            store: store.clone(),
            redis: redis.clone(),
        };
        let hub = Hub::new(RoomDeps {
            nats: nats.clone(),
            history: history.clone(),
            config: config.delivery.clone(),
            shutdown: shutdown.clone(),
        });
        tokio::spawn(
            Prober::new(hub.clone(), history, &config.delivery).run(resync, shutdown.clone()),
        );
        announcements::listen(&nats, hub.clone(), shutdown.clone()).await?;
        let ingest = Ingest::new(
            js.clone(),
            store.clone(),
            &config.gateway_id,
            config.limits.ack_timeout,
            reconnects,
        );
        // Receipts keep coming while sockets drain, so their sends get acked.
        ingest.listen(&nats, shutdown.clone()).await?;
        let canary_health = Arc::new(CanaryHealth::default());
        let canary = Canary::subscribe(
            &nats,
            js,
            &config.gateway_id,
            &config.canary,
            Arc::clone(&canary_health),
        )
        .await?;
        tokio::spawn(canary.run(shutdown.clone()));
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| GatewayError::Startup(format!("bind {}: {e}", config.listen)))?;
        let sockets = Arc::new(Semaphore::new(config.limits.max_connections.get()));
        let limiter = Arc::new(Limiter::new(&config.limits));
        tokio::spawn(Arc::clone(&limiter).prune(shutdown.clone()));
        let drain = Drain::new(config.drain_spread);
        let state = AppState(Arc::new(Inner {
            config,
            verifier,
            store,
            redis,
            membership,
            hub,
            ingest,
            nats,
            metrics,
            shutdown,
            drain,
            canary: canary_health,
            sockets,
            limiter,
            sessions: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
        }));
        Ok(Self { listener, state })
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves until `terminated` completes (SIGTERM), then drains: see
    /// [`drain`]. Returns once every socket is gone.
    pub async fn run(self, terminated: impl Future<Output = ()> + Send + 'static) {
        let state = self.state.clone();
        let addr = self.local_addr();
        tracing::info!(addr = %addr, gateway_id = %state.config.gateway_id, "gateway listening");
        let draining = state.clone();
        tokio::spawn(async move {
            terminated.await;
            drain(&draining).await;
            draining.shutdown.cancel();
        });
        let limits = &state.config.limits;
        server::serve(
            self.listener,
            http::router(state.clone()),
            limits.handshake_timeout,
            state.shutdown.clone(),
        )
        .await;
    }
}

/// Not ready at once (new sockets refused) for `drain_delay_ms`, so the
/// load balancer stops sending any; then every socket closes at its moment
/// in the `drain_spread_ms` window, each first answering its sends in
/// flight (`drain_timeout_ms`). Rooms, receipts and `/readyz` keep running
/// throughout; returns once the last socket is gone, or when that took
/// longer than it may.
async fn drain(state: &AppState) {
    let config = &state.config;
    let delay = config.drain_delay;
    let spread = config.drain_spread;
    let in_flight = config.drain_timeout;
    tracing::info!(
        ?delay,
        ?spread,
        "draining: not ready; then closing sockets over the spread"
    );
    state.drain.begin();
    tokio::time::sleep(delay).await;
    state.drain.close_sockets();
    state.sessions.close();
    if tokio::time::timeout(spread + in_flight, state.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("sockets still open after the drain timeout");
    }
    tracing::info!("drained");
}

/// Connects to NATS; the events that may lose fan-out wake `resync`, and
/// each (re)connect also ticks `reconnected` (receipts may be lost too).
async fn connect_nats(
    config: &GatewayConfig,
    resync: Arc<Notify>,
    reconnected: watch::Sender<()>,
) -> Result<async_nats::Client, GatewayError> {
    chat_streams::connect_options(format!("chat-gateway-{}", config.gateway_id))
        .event_callback(move |event| {
            let resync = Arc::clone(&resync);
            let reconnected = reconnected.clone();
            async move {
                match event {
                    async_nats::Event::SlowConsumer(_) => {
                        crate::metrics::nats_slow_consumer();
                        resync.notify_one();
                    }
                    async_nats::Event::Connected => {
                        tracing::info!("nats connected");
                        resync.notify_one();
                        reconnected.send_replace(());
                    }
                    other => tracing::info!(event = %other, "nats"),
                }
            }
        })
        .connect(config.nats_url.expose())
        .await
        .map_err(GatewayError::nats)
}
