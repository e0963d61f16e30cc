//! A whole chat system on one machine: services, gateways and workers as
//! real processes, started, restarted and killed as a test needs them.

use std::{path::PathBuf, process::Command, time::Duration};

use tempfile::TempDir;

pub use crate::nodes::{Gateway, Worker};
pub use crate::options::{ClusterOptions, Role, ADMIN_TOKEN, ALLOWED_ORIGIN, JWT_SECRET};
use crate::{
    free_port,
    netns::Namespace,
    options::{token, UNLIMITED},
    process::Process,
    redis_cluster::RedisCluster,
    services::{Nats, NodePlace, Postgres, Redis},
    wait_for,
};

pub struct Cluster {
    pub nats: Nats,
    /// The namespace of the NATS node a test may cut off
    /// (`ClusterOptions::nats_cluster_with_a_node_apart`); after `nats`, so
    /// it is deleted once its server is gone.
    pub nats_namespace: Option<Namespace>,
    pub postgres: Postgres,
    pub redis: Redis,
    /// A Redis Cluster the gateways and workers use instead of `redis`
    /// (`ClusterOptions::redis_cluster`).
    pub redis_cluster: Option<RedisCluster>,
    pub gateways: Vec<Gateway>,
    pub workers: Vec<Worker>,
    options: ClusterOptions,
    spawned: usize,
    /// Last, so the processes (which print their logs on a failed test)
    /// are gone before their folder is.
    pub dir: TempDir,
}

/// Where cargo put the workspace binaries (next to this test's `deps/`).
/// `$CHAT_BIN_DIR` overrides it: binaries of a checkout whose target
/// folder is shared with others (they would overwrite each other's).
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CHAT_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
            dir.to_owned()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

impl Cluster {
    pub async fn start(options: ClusterOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("chat-e2e-")
            .tempdir()
            .unwrap();
        let listen = if options.all_interfaces {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        let nats_namespace = options.nats_node_apart.then(Namespace::create);
        let nats = async {
            if options.nats_nodes == 1 {
                return Nats::start(dir.path(), &options.nats_conf, listen).await;
            }
            let places = (0..options.nats_nodes)
                .map(|i| match &nats_namespace {
                    Some(ns) if i + 1 == options.nats_nodes => NodePlace {
                        listen: ns.inside.clone(),
                        host: ns.inside.clone(),
                        namespace: Some(ns.name().to_owned()),
                        peers_via: ns.host.clone(),
                    },
                    _ => NodePlace {
                        listen: listen.into(),
                        host: "127.0.0.1".into(),
                        namespace: None,
                        peers_via: "127.0.0.1".into(),
                    },
                })
                .collect();
            Nats::start_cluster(dir.path(), &options.nats_conf, places).await
        };
        let (nats, postgres, redis) = tokio::join!(
            nats,
            Postgres::start(dir.path(), listen),
            Redis::start(dir.path(), listen),
        );
        let redis_cluster = match options.redis_cluster {
            true => Some(RedisCluster::start(dir.path()).await),
            false => None,
        };
        let mut cluster = Self {
            dir,
            nats,
            nats_namespace,
            redis_cluster,
            postgres,
            redis,
            gateways: Vec::new(),
            workers: Vec::new(),
            options: options.clone(),
            spawned: 0,
        };
        for _ in 0..options.workers {
            cluster.start_worker().await;
        }
        for _ in 0..options.gateways {
            cluster.start_gateway().await;
        }
        cluster
    }

    /// Starts one more worker and waits until it consumes.
    pub async fn start_worker(&mut self) -> usize {
        self.start_worker_with(&[]).await
    }

    /// Starts one more worker with extra environment variables (failpoints,
    /// say) and waits until it consumes.
    pub async fn start_worker_with(&mut self, env: &[(&str, &str)]) -> usize {
        let worker = self.spawn_worker(env).await;
        self.workers.push(worker);
        self.workers.len() - 1
    }

    /// Kills worker `i` (SIGKILL) if it still runs and starts another in
    /// its place, as an orchestrator replaces a crashed pod.
    pub async fn restart_worker(&mut self, i: usize) {
        self.workers[i].process.kill();
        self.workers[i] = self.spawn_worker(&[]).await;
    }

    async fn spawn_worker(&mut self, env: &[(&str, &str)]) -> Worker {
        let n = self.next_name();
        let http_port = free_port();
        let mut cmd = Command::new(bin("worker"));
        cmd.env("CHAT_WORKER_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("CHAT_WORKER_NATS_URL", self.nats.url())
            .env("CHAT_WORKER_REDIS_URL", self.redis_url())
            .env("CHAT_WORKER_POSTGRES__URL", self.postgres.url())
            .env("CHAT_WORKER_POSTGRES__POOL_SIZE", "8")
            .env("RUST_LOG", "info");
        for (k, v) in &self.options.worker_env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let log = self.dir.path().join(format!("worker-{n}.log"));
        let mut process = Process::spawn(&format!("worker-{n}"), cmd, &log);
        wait_for("worker to start consuming", Duration::from_secs(30), || {
            let ready = process.log().contains("worker consuming");
            assert!(process.is_running(), "worker exited:\n{}", process.log());
            async move { ready.then_some(()) }
        })
        .await;
        Worker { http_port, process }
    }

    /// Starts one more gateway and waits until it answers `/healthz`.
    pub async fn start_gateway(&mut self) -> usize {
        let n = self.next_name();
        let gateway = self.spawn_gateway(n, free_port()).await;
        self.gateways.push(gateway);
        self.gateways.len() - 1
    }

    /// Kills gateway `i` (SIGKILL) and starts it again with the same id and
    /// port, as an orchestrator restarts a crashed pod.
    pub async fn restart_gateway(&mut self, i: usize) {
        self.gateways[i].process.kill();
        let (n, port) = (self.gateways[i].n, self.gateways[i].port);
        self.gateways[i] = self.spawn_gateway(n, port).await;
    }

    /// Starts one more gateway inside `ns`, reaching the services through
    /// the namespace's link (see [`Namespace`]); needs
    /// [`ClusterOptions::reachable_from_namespaces`].
    pub async fn start_gateway_in(&mut self, ns: &Namespace) -> usize {
        assert!(
            self.options.all_interfaces,
            "services listen on loopback only"
        );
        let n = self.next_name();
        let mut cmd = ns.command(&bin("gateway"));
        cmd.env("CHAT_GATEWAY_LISTEN", format!("{}:{}", ns.inside, 8080))
            .env("CHAT_GATEWAY_NATS_URL", {
                let urls: Vec<String> = (self.nats.ports().iter())
                    .map(|port| format!("nats://{}:{port}", ns.nats_host))
                    .collect();
                urls.join(",")
            })
            .env(
                "CHAT_GATEWAY_REDIS_URL",
                format!("redis://{}:{}", ns.redis_host, self.redis.port),
            )
            .env(
                "CHAT_GATEWAY_POSTGRES__URL",
                format!(
                    "postgres://postgres@{}:{}/chat",
                    ns.host, self.postgres.port
                ),
            );
        let gateway = self.launch(n, &ns.inside, 8080, cmd).await;
        self.gateways.push(gateway);
        self.gateways.len() - 1
    }

    async fn spawn_gateway(&self, n: usize, port: u16) -> Gateway {
        let mut cmd = Command::new(bin("gateway"));
        cmd.env("CHAT_GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("CHAT_GATEWAY_NATS_URL", self.nats.url())
            .env("CHAT_GATEWAY_REDIS_URL", self.redis_url())
            .env("CHAT_GATEWAY_POSTGRES__URL", self.postgres.url());
        self.launch(n, "127.0.0.1", port, cmd).await
    }

    /// Adds the settings every gateway shares to `cmd`, starts it and waits
    /// until it answers `/healthz`.
    async fn launch(&self, n: usize, host: &str, port: u16, mut cmd: Command) -> Gateway {
        cmd.env("CHAT_GATEWAY_GATEWAY_ID", format!("gw{n}"))
            .env("CHAT_GATEWAY_POSTGRES__POOL_SIZE", "8")
            .env("CHAT_GATEWAY_JWT__HS256_SECRET", JWT_SECRET)
            .env("CHAT_GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "CHAT_GATEWAY_ALLOWED_ORIGINS",
                format!("[\"{ALLOWED_ORIGIN}\"]"),
            )
            .env("RUST_LOG", "info");
        // Tests send as fast as they can from few users and addresses: the
        // per-user limits are out of their way unless a test sets them
        // (`tests/tests/e2e/limits.rs`).
        for (key, value) in UNLIMITED {
            cmd.env(key, value);
        }
        for (k, v) in &self.options.gateway_env {
            cmd.env(k, v);
        }
        let log = self.dir.path().join(format!("gateway-{n}.log"));
        let mut process = Process::spawn(&format!("gateway-{n}"), cmd, &log);
        let health = format!("http://{host}:{port}/healthz");
        wait_for(
            "gateway to answer /healthz",
            Duration::from_secs(30),
            || {
                assert!(process.is_running(), "gateway exited:\n{}", process.log());
                let health = health.clone();
                async move {
                    reqwest::get(&health)
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await;
        Gateway {
            n,
            host: host.into(),
            port,
            process,
        }
    }

    /// Adds a `CHAT_GATEWAY_*` variable for the gateways started from now
    /// on (one that names a server the cluster starts after its gateways:
    /// a replica, say).
    pub fn set_gateway_env(&mut self, key: &str, value: &str) {
        self.options.gateway_env.push((key.into(), value.into()));
    }

    fn next_name(&mut self) -> usize {
        self.spawned += 1;
        self.spawned
    }

    /// The Redis the gateways and workers use: the cluster's nodes, or the one server.
    pub fn redis_url(&self) -> String {
        match &self.redis_cluster {
            Some(cluster) => cluster.url(),
            None => self.redis.url(),
        }
    }

    pub fn gateway(&self, i: usize) -> &Gateway {
        &self.gateways[i]
    }

    pub fn worker(&self, i: usize) -> &Worker {
        &self.workers[i]
    }

    pub fn token(&self, user: &str) -> String {
        token(user)
    }

    /// Runs the `chat` CLI as `user` against gateway 0 and returns what it
    /// printed, failing the test if it did not succeed.
    pub async fn chat(&self, user: &str, args: &[&str]) -> String {
        let out = tokio::process::Command::new(bin("chat"))
            .args([
                "--url",
                &self.gateway(0).ws_url(),
                "--token",
                &self.token(user),
            ])
            .args(args)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
