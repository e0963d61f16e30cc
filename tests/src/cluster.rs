//! A whole chat system on one machine: services, gateways and workers as
//! real processes, and helpers that read like what a user does.

use std::{path::PathBuf, process::Command, time::Duration};

use chat_client::{connect, ConnectOptions, Reader, Writer};
use chat_protocol::codec::Encoding;
use tempfile::TempDir;

use crate::{
    free_port,
    netns::Namespace,
    process::Process,
    services::{Nats, Postgres, Redis},
    wait_for,
};

pub const JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The only browser origin the test gateways allow.
pub const ALLOWED_ORIGIN: &str = "https://chat.example";

/// Per-user and per-address limits high enough for any test that does
/// not test them.
const UNLIMITED: [(&str, &str); 6] = [
    ("CHAT_GATEWAY_LIMITS__SEND_RATE_PER_CONNECTION", "1000000"),
    ("CHAT_GATEWAY_LIMITS__SEND_BURST_PER_CONNECTION", "1000000"),
    ("CHAT_GATEWAY_LIMITS__SEND_RATE_PER_USER", "1000000"),
    ("CHAT_GATEWAY_LIMITS__SEND_BURST_PER_USER", "1000000"),
    ("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_USER", "100000"),
    ("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_IP", "100000"),
];

/// What to start.
#[derive(Clone)]
pub struct ClusterOptions {
    pub gateways: usize,
    pub workers: usize,
    /// Extra `CHAT_GATEWAY_*` variables.
    pub gateway_env: Vec<(String, String)>,
    /// Extra `CHAT_WORKER_*` variables.
    pub worker_env: Vec<(String, String)>,
    /// nats-server settings after `deploy/nats.conf`'s.
    pub nats_conf: String,
    /// Services listen on every interface, not only loopback, so that a
    /// gateway in a network namespace reaches them.
    pub all_interfaces: bool,
}

/// Which processes an environment variable is for.
pub enum Role {
    Gateways,
    Workers,
    Both,
}

impl ClusterOptions {
    pub fn new(gateways: usize, workers: usize) -> Self {
        Self {
            gateways,
            workers,
            gateway_env: Vec::new(),
            worker_env: Vec::new(),
            nats_conf: String::new(),
            all_interfaces: false,
        }
    }

    pub fn reachable_from_namespaces(mut self) -> Self {
        self.all_interfaces = true;
        self
    }

    pub fn nats_conf(mut self, settings: &str) -> Self {
        self.nats_conf.push_str(settings);
        self.nats_conf.push('\n');
        self
    }

    pub fn gateway_env(self, key: &str, value: &str) -> Self {
        self.env(Role::Gateways, key, value)
    }

    pub fn env(mut self, role: Role, key: &str, value: &str) -> Self {
        let pair = (key.to_string(), value.to_string());
        match role {
            Role::Gateways => self.gateway_env.push(pair),
            Role::Workers => self.worker_env.push(pair),
            Role::Both => {
                self.gateway_env.push(pair.clone());
                self.worker_env.push(pair);
            }
        }
        self
    }
}

pub struct Gateway {
    /// Names its id (`gw<n>`) and log file.
    n: usize,
    /// Where clients reach it: loopback, or its network namespace.
    host: String,
    pub port: u16,
    pub process: Process,
}

pub struct Worker {
    /// Port of its `/metrics`, `/healthz`, `/readyz`.
    pub http_port: u16,
    pub process: Process,
}

pub struct Cluster {
    pub nats: Nats,
    pub postgres: Postgres,
    pub redis: Redis,
    pub gateways: Vec<Gateway>,
    pub workers: Vec<Worker>,
    options: ClusterOptions,
    spawned: usize,
    /// Last, so the processes (which print their logs on a failed test)
    /// are gone before their folder is.
    pub dir: TempDir,
}

/// Where cargo put the workspace binaries (next to this test's `deps/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
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
        let (nats, postgres, redis) = tokio::join!(
            Nats::start(dir.path(), &options.nats_conf, listen),
            Postgres::start(dir.path(), listen),
            Redis::start(dir.path(), listen),
        );
        let mut cluster = Self {
            dir,
            nats,
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
            .env("CHAT_WORKER_REDIS_URL", self.redis.url())
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
            .env(
                "CHAT_GATEWAY_NATS_URL",
                format!("nats://{}:{}", ns.nats_host, self.nats.port),
            )
            .env(
                "CHAT_GATEWAY_REDIS_URL",
                format!("redis://{}:{}", ns.host, self.redis.port),
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
            .env("CHAT_GATEWAY_REDIS_URL", self.redis.url())
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

    fn next_name(&mut self) -> usize {
        self.spawned += 1;
        self.spawned
    }

    /// The id gateway `i` runs with (its receipts subject, its pod name).
    pub fn gateway_id(&self, gateway: usize) -> String {
        format!("gw{}", self.gateways[gateway].n)
    }

    pub fn ws_url(&self, gateway: usize) -> String {
        let g = &self.gateways[gateway];
        format!("ws://{}:{}/v1/ws", g.host, g.port)
    }

    pub fn http_url(&self, gateway: usize, path: &str) -> String {
        let g = &self.gateways[gateway];
        format!("http://{}:{}{path}", g.host, g.port)
    }

    pub fn worker_url(&self, worker: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.workers[worker].http_port)
    }

    pub fn token(&self, user: &str) -> String {
        chat_auth::mint_hs256(JWT_SECRET, user, 3600)
    }

    pub fn options(&self, gateway: usize, user: &str, encoding: Encoding) -> ConnectOptions {
        ConnectOptions::new(self.ws_url(gateway), self.token(user), encoding)
    }

    /// Opens a socket for `user` on `gateway`.
    pub async fn connect(
        &self,
        gateway: usize,
        user: &str,
        encoding: Encoding,
    ) -> (Writer, Reader) {
        connect(&self.options(gateway, user, encoding))
            .await
            .unwrap_or_else(|e| panic!("{user} could not connect to gateway {gateway}: {e}"))
    }

    /// Creates a room with members through the room API (service token).
    pub async fn create_room(&self, room: &str, members: &[&str]) {
        let response = reqwest::Client::new()
            .post(self.http_url(0, "/v1/rooms"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "room": room, "members": members }))
            .send()
            .await
            .expect("admin request");
        assert!(
            response.status().is_success(),
            "create room failed: {}",
            response.status()
        );
    }

    /// Messages stored for a room: (seq, sender, client_msg_id, body), by seq.
    pub async fn stored(&self, room: &str) -> Vec<(i64, String, String, String)> {
        self.postgres
            .client()
            .await
            .query(
                "SELECT seq, sender_id, client_msg_id, body FROM messages WHERE room_id = $1 ORDER BY seq",
                &[&room],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }
}
