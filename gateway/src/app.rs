//! Builds the gateway from its configuration and serves it. `main` and the
//! tests both go through `Application::build`.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{atomic::AtomicU64, Arc},
    time::Duration,
};

use chat_cache::Redis;
use chat_store::Store;
use chat_tasks::{Ends, Tasks};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{
    net::TcpListener,
    sync::{watch, Notify, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::{GatewayConfig, Limits},
    error::GatewayError,
    feed::Feeds,
    http::{self, auth::Verifier, server},
    presence::{self, Presence},
    rooms::{
        announcements, history::History, hub::Hub, membership::Membership, pages::Pages,
        room::RoomDeps, tail_probe::Prober,
    },
    send::{
        canary::{Canary, CanaryHealth},
        ingest::Ingest,
    },
    signals::{self, Signals},
    socket::{drain::Drain, limits::Limiter, session::CLOSE_GRACE},
    state::{AppState, Inner},
};

/// How long background tasks get to end after the last socket is gone.
const TASKS_GRACE: Duration = Duration::from_secs(5);

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The background tasks: rooms' prober, announcements, receipts, the
    /// batch publisher, the canary, the drain.
    tasks: Tasks,
    /// Cancelled by `tasks` when a critical task dies: the gateway drains as
    /// on SIGTERM, then `run` returns the error. Cancelled by the drain too,
    /// before `shutdown`, so that tasks ending then are not taken for dead.
    stopping: CancellationToken,
}

impl Application {
    /// Connects to NATS, Postgres and Redis, declares the streams and binds
    /// the listener. Sockets are served once `run` is called.
    pub async fn build(
        config: GatewayConfig,
        metrics: PrometheusHandle,
    ) -> Result<Self, GatewayError> {
        crate::metrics::describe();
        crate::metrics::max_connections(config.limits.max_connections.get());
        // Fires once every socket has drained; everything else stops then.
        let shutdown = CancellationToken::new();
        let verifier = Verifier::new(&config.jwt)
            .map_err(|e| GatewayError::Startup(format!("jwt key: {e}")))?;
        let resync = Arc::new(Notify::new());
        let (reconnected, reconnects) = watch::channel(());
        let nats = connect_nats(&config, Arc::clone(&resync), reconnected).await?;
        let nats_events = NatsEvents { resync, reconnects };
        chat_streams::ensure(&async_nats::jetstream::new(nats.clone()), &config.stream)
            .await
            .map_err(|e| GatewayError::Startup(e.to_string()))?;
        let store = Store::reader(&config.postgres)?;
        let redis = chat_cache::connect(config.redis_url.expose(), &config.redis).await?;
        let (membership, pages, history) = reads(&config, &store, &redis)?;
        // Each background task keeps a promise for every socket: one that
        // dies drains the gateway, and `run` returns the error.
        let stopping = CancellationToken::new();
        let tasks = Tasks::new(stopping.clone(), crate::metrics::TASKS);
        let paths = Paths::start(
            &config,
            &nats,
            &store,
            history,
            &tasks,
            nats_events,
            &shutdown,
        )
        .await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| GatewayError::Startup(format!("bind {}: {e}", config.listen)))?;
        let sockets = Arc::new(Semaphore::new(config.limits.max_connections.get()));
        let publishes = Semaphore::new(config.limits.max_inflight_publishes.get());
        let limiter = limiter(&config.limits, &tasks, &shutdown);
        let deps = presence::Deps {
            gateway_id: config.gateway_id.clone(),
            config: config.presence.clone(),
            redis: redis.clone(),
            store: store.clone(),
            signals: paths.signals.clone(),
        };
        let presence = start_presence(deps, &tasks, &shutdown);
        let drain = Drain::new(config.drain_spread);
        let state = AppState(Arc::new(Inner {
            config,
            verifier,
            store,
            redis,
            membership,
            pages,
            hub: paths.hub,
            feeds: paths.feeds,
            signals: paths.signals,
            presence,
            ingest: paths.ingest,
            nats,
            metrics,
            shutdown,
            drain,
            canary: paths.canary,
            sockets,
            publishes,
            limiter,
            sessions: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
        }));
        Ok(Self {
            listener,
            state,
            tasks,
            stopping,
        })
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves until `terminated` completes (SIGTERM), then drains: see
    /// [`drain`]. Returns once every socket is gone; an error if a
    /// background task died and stopped the gateway.
    pub async fn run(
        self,
        terminated: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let state = self.state.clone();
        let addr = self.local_addr();
        tracing::info!(addr = %addr, gateway_id = %state.config.gateway_id, "gateway listening");
        let (draining, stopping) = (state.clone(), self.stopping.clone());
        self.tasks
            .spawn_critical("drain", Ends::OnItsOwn, async move {
                tokio::select! {
                    () = terminated => {}
                    () = stopping.cancelled() => tracing::error!("a background task died: draining"),
                }
                drain(&draining).await;
                stopping.cancel();
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
        if tokio::time::timeout(TASKS_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks still running after shutdown");
        }
        match self.tasks.died() {
            Some(task) => Err(GatewayError::TaskDied(task)),
            None => Ok(()),
        }
    }
}

/// Send rates and socket counts. Its pruning only forgets idle buckets:
/// restarted if it dies.
fn limiter(limits: &Limits, tasks: &Tasks, shutdown: &CancellationToken) -> Arc<Limiter> {
    let limiter = Arc::new(Limiter::new(limits));
    let pruned = (Arc::clone(&limiter), shutdown.clone());
    tasks.spawn_restarting("limiter_prune", move || {
        Arc::clone(&pruned.0).prune(pruned.1.clone())
    });
    limiter
}

/// What gateways read through the caches: membership, history pages, and
/// a room's messages for gap fills and replays.
fn reads(
    config: &GatewayConfig,
    store: &Store,
    redis: &Redis,
) -> Result<(Membership, Pages, History), GatewayError> {
    let membership = Membership::new(
        store.clone(),
        redis.clone(),
        config.delivery.membership_ttl.as_secs(),
    );
    let pages = Pages::new(store, Store::replica(&config.postgres)?, redis);
    let history = History {
        store: store.clone(),
        redis: redis.clone(),
    };
    Ok((membership, pages, history))
}

/// Presence's handle; its tracker runs under `tasks`, critical: it holds
/// this gateway's users (other gateways reap them once it is gone).
fn start_presence(deps: presence::Deps, tasks: &Tasks, shutdown: &CancellationToken) -> Presence {
    let (presence, tracker) = Presence::start(deps, shutdown.clone());
    tasks.spawn_critical("presence", Ends::AtShutdown, tracker);
    presence
}

/// What the NATS connection's events wake.
struct NatsEvents {
    /// Fan-out may have been lost (a slow subscription, a reconnect):
    /// every room checks for a lost tail at once.
    resync: Arc<Notify>,
    /// Ticks on each (re)connect: receipts may have been lost too.
    reconnects: watch::Receiver<()>,
}

/// The paths to the workers and back, their tasks running under `tasks`.
struct Paths {
    hub: Hub,
    feeds: Feeds,
    signals: Signals,
    ingest: Arc<Ingest>,
    canary: Arc<CanaryHealth>,
}

impl Paths {
    async fn start(
        config: &GatewayConfig,
        nats: &async_nats::Client,
        store: &Store,
        history: History,
        tasks: &Tasks,
        events: NatsEvents,
        shutdown: &CancellationToken,
    ) -> Result<Self, GatewayError> {
        let js = async_nats::jetstream::new(nats.clone());
        let hub = Hub::new(RoomDeps {
            nats: nats.clone(),
            history: history.clone(),
            config: config.delivery.clone(),
            shutdown: shutdown.clone(),
        });
        let prober = Prober::new(hub.clone(), history, &config.delivery);
        tasks.spawn_critical(
            "tail_probe",
            Ends::AtShutdown,
            prober.run(events.resync, shutdown.clone()),
        );
        let (feeds, feed) = Feeds::start(nats.clone(), store.clone(), shutdown.clone());
        // Critical: it holds every watching socket's feed.
        tasks.spawn_critical("feed", Ends::AtShutdown, feed);
        let announced =
            announcements::listen(nats, hub.clone(), feeds.clone(), shutdown.clone()).await?;
        tasks.spawn_critical("announcements", Ends::AtShutdown, announced);
        let signals = signals::listen(nats, hub.clone(), feeds.clone(), shutdown.clone()).await?;
        tasks.spawn_critical("signals", Ends::AtShutdown, signals);
        let (signals, signal_publisher) = Signals::start(
            nats.clone(),
            config.stream.publish_timeout,
            shutdown.clone(),
        );
        tasks.spawn_critical("signal_publisher", Ends::AtShutdown, signal_publisher);
        let (ingest, publisher) = Ingest::new(
            js.clone(),
            store.clone(),
            &config.gateway_id,
            config.stream.partitions,
            config.limits.ack_timeout,
            events.reconnects,
            shutdown.clone(),
        );
        tasks.spawn_critical("batch_publisher", Ends::AtShutdown, publisher);
        // Receipts keep coming while sockets drain, so their sends get acked.
        let receipts = ingest.listen(nats, shutdown.clone()).await?;
        tasks.spawn_critical("receipts", Ends::AtShutdown, receipts);
        let canary = Arc::new(CanaryHealth::default());
        let probe = Canary::subscribe(
            nats,
            js,
            &config.gateway_id,
            config.stream.partitions,
            &config.canary,
            Arc::clone(&canary),
        )
        .await?;
        tasks.spawn_critical("canary", Ends::AtShutdown, probe.run(shutdown.clone()));
        Ok(Self {
            hub,
            feeds,
            signals,
            ingest,
            canary,
        })
    }
}

/// Not ready at once (new sockets refused) for `drain_delay_ms`, so the
/// load balancer stops sending any; then every socket closes at its moment
/// in the `drain_spread_ms` window, each first answering its sends in
/// flight (`drain_timeout_ms`) and then waiting for the client's answer to
/// its close frame (`CLOSE_GRACE`). Rooms, receipts and `/readyz` keep
/// running throughout; returns once the last socket is gone, or when that
/// took longer than it may.
async fn drain(state: &AppState) {
    let config = &state.config;
    let delay = config.drain_delay;
    let spread = config.drain_spread;
    let in_flight = config.drain_timeout + CLOSE_GRACE;
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
        .connect(chat_streams::servers(config.nats_url.expose()))
        .await
        .map_err(GatewayError::nats)
}
