//! NATS with JetStream, Postgres and Redis, each a private instance.

use std::{
    os::unix::fs::{chown, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{free_port, process::Process, wait_for};

const STARTUP: Duration = Duration::from_secs(30);

/// `nats-server -js`: one server, or a cluster of them whose JetStream
/// keeps every stream on each node; binary from `$NATS_SERVER_BIN` or
/// `nats-server` on PATH.
pub struct Nats {
    nodes: Vec<NatsNode>,
}

/// One server of a `Nats`.
struct NatsNode {
    name: String,
    port: u16,
    /// Where it listens: loopback, every interface, or its namespace's address.
    listen: String,
    /// Where the others and the clients reach it.
    host: String,
    /// Runs inside this network namespace (a node a test cuts off).
    namespace: Option<String>,
    store: PathBuf,
    config: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

/// Where a cluster node runs, for `Nats::start_cluster`.
pub struct NodePlace {
    /// Listen address.
    pub listen: String,
    /// Address the others and the clients use.
    pub host: String,
    /// Network namespace to run in, if any.
    pub namespace: Option<String>,
    /// Address this node reaches the others at (its namespace's view of the host).
    pub peers_via: String,
}

impl Nats {
    /// Starts a server with the project's `deploy/nats.conf` and `extra`
    /// settings after it (later settings win).
    pub async fn start(dir: &Path, extra: &str, listen: &'static str) -> Self {
        let place = NodePlace {
            listen: listen.into(),
            host: "127.0.0.1".into(),
            namespace: None,
            peers_via: "127.0.0.1".into(),
        };
        let mut node = NatsNode::new(dir, "nats", place, free_port(), extra.to_owned());
        node.restart().await;
        Self { nodes: vec![node] }
    }

    /// Starts a cluster of one node per place (three for streams of three
    /// replicas), routed to each other, and waits until JetStream answers.
    pub async fn start_cluster(dir: &Path, extra: &str, places: Vec<NodePlace>) -> Self {
        let cluster_ports: Vec<u16> = places.iter().map(|_| free_port()).collect();
        let hosts: Vec<String> = places.iter().map(|p| p.host.clone()).collect();
        let mut nodes = Vec::new();
        for (i, place) in places.into_iter().enumerate() {
            let routes: Vec<String> = (0..hosts.len())
                .filter(|&j| j != i)
                .map(|j| {
                    let host = if hosts[j] == "127.0.0.1" {
                        &place.peers_via
                    } else {
                        &hosts[j]
                    };
                    format!("\"nats-route://{host}:{}\"", cluster_ports[j])
                })
                .collect();
            let settings = format!(
                "server_name: n{i}\ncluster {{\n  name: chat\n  listen: \"{}:{}\"\n  routes: [{}]\n}}\n{extra}",
                place.listen,
                cluster_ports[i],
                routes.join(", "),
            );
            nodes.push(NatsNode::new(
                dir,
                &format!("n{i}"),
                place,
                free_port(),
                settings,
            ));
        }
        let mut nats = Self { nodes };
        for node in &mut nats.nodes {
            node.spawn();
        }
        for node in &nats.nodes {
            node.wait_accepting().await;
        }
        nats.wait_for_jetstream().await;
        nats
    }

    /// Every server's URL, comma-separated, as gateways and workers take it.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(NatsNode::url).collect();
        urls.join(",")
    }

    /// A client of the cluster (any server).
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(chat_streams::servers(&self.url()))
            .await
            .expect("connect to NATS")
    }

    /// The client ports, for a process that reaches NATS another way.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The servers' names (`nats`, or `n0`, `n1`, … in a cluster).
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// What the servers have logged so far.
    pub fn log(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.log())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops every server (SIGKILL), keeping their stores.
    pub fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
    }

    /// Starts every server again on the same ports and stores.
    pub async fn restart(&mut self) {
        for node in &mut self.nodes {
            node.spawn();
        }
        for node in &self.nodes {
            node.wait_accepting().await;
        }
        if self.nodes.len() > 1 {
            self.wait_for_jetstream().await;
        }
    }

    /// Stops the server called `name` (SIGKILL), keeping its store.
    pub fn stop_node(&mut self, name: &str) {
        self.node(name).stop();
    }

    /// Starts the server called `name` again.
    pub async fn restart_node(&mut self, name: &str) {
        let node = self.node(name);
        node.spawn();
        node.wait_accepting().await;
    }

    fn node(&mut self, name: &str) -> &mut NatsNode {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no nats node {name}"))
    }

    /// Waits until JetStream answers through the first server that does.
    async fn wait_for_jetstream(&self) {
        let url = self.url();
        wait_for("JetStream to answer", STARTUP, || {
            let url = url.clone();
            async move {
                let client = async_nats::connect(chat_streams::servers(&url))
                    .await
                    .ok()?;
                let js = async_nats::jetstream::new(client);
                js.query_account().await.ok().map(|_| ())
            }
        })
        .await;
    }
}

impl NatsNode {
    fn new(dir: &Path, name: &str, place: NodePlace, port: u16, extra: String) -> Self {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats.conf");
        std::fs::copy(&deploy, dir.join("nats-deploy.conf")).expect("copy deploy/nats.conf");
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(&config, format!("include \"nats-deploy.conf\"\n{extra}\n"))
            .expect("write nats.conf");
        Self {
            name: name.into(),
            port,
            listen: place.listen,
            host: place.host,
            namespace: place.namespace,
            store: dir.join(format!("jetstream-{name}")),
            config,
            log: dir.join(format!("{name}.log")),
            process: None,
        }
    }

    fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts the server (again) and waits until it accepts connections.
    async fn restart(&mut self) {
        self.spawn();
        self.wait_accepting().await;
    }

    fn spawn(&mut self) {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let mut cmd = match &self.namespace {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, &bin]);
                cmd
            }
            None => Command::new(bin),
        };
        cmd.arg("-c")
            .arg(&self.config)
            .args([
                "-js",
                "-a",
                &self.listen,
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store);
        self.process = Some(Process::spawn(&self.name, cmd, &self.log));
    }

    async fn wait_accepting(&self) {
        let url = self.url();
        wait_for("nats to accept connections", STARTUP, || {
            let url = url.clone();
            async move { async_nats::connect(url).await.ok().map(|_| ()) }
        })
        .await;
    }
}

/// `redis-server` with persistence off: a restart comes back empty.
pub struct Redis {
    pub port: u16,
    listen: &'static str,
    dir: PathBuf,
    process: Option<Process>,
}

impl Redis {
    pub async fn start(dir: &Path, listen: &'static str) -> Self {
        let mut redis = Self {
            port: free_port(),
            listen,
            dir: dir.into(),
            process: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL); everything it held is gone.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// SIGSTOP: Redis hangs, its connections open and silent (as when the
    /// network drops its packets).
    pub fn pause(&self) {
        if let Some(p) = &self.process {
            p.pause();
        }
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        if let Some(p) = &self.process {
            p.resume();
        }
    }

    /// Starts (again) on the same port, empty.
    pub async fn restart(&mut self) {
        let port = self.port;
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            self.listen,
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(&self.dir);
        self.process = Some(Process::spawn("redis", cmd, &self.dir.join("redis.log")));
        wait_for("redis to accept connections", STARTUP, || async move {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        })
        .await;
    }
}

/// A private Postgres cluster from `initdb`, with a `chat` database.
pub struct Postgres {
    pub port: u16,
    listen: &'static str,
    dir: PathBuf,
    as_root: bool,
    process: Option<Process>,
}

impl Postgres {
    pub async fn start(dir: &Path, listen: &'static str) -> Self {
        let data = dir.join("pgdata");
        let sockets = dir.join("pgsock");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&sockets).unwrap();
        // Postgres refuses to run as root: run it as the `postgres` user then.
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        if as_root {
            let uid = postgres_uid();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown(&data, Some(uid), None).unwrap();
            chown(&sockets, Some(uid), None).unwrap();
        }
        let mut postgres = Self {
            port: free_port(),
            listen,
            dir: dir.into(),
            as_root,
            process: None,
        };
        let status = postgres
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        if listen != "127.0.0.1" {
            let hba = data.join("pg_hba.conf");
            let mut rules = std::fs::read_to_string(&hba).unwrap();
            rules.push_str("host all all 0.0.0.0/0 trust\n");
            std::fs::write(&hba, rules).unwrap();
        }
        postgres.restart().await;
        postgres
            .admin()
            .await
            .batch_execute("CREATE DATABASE chat")
            .await
            .unwrap();
        postgres
    }

    /// A streaming replica of this server (`pg_basebackup -R`, so it
    /// follows the primary as a hot standby), started in `dir` on a port
    /// of its own. `SELECT pg_wal_replay_pause()` on it makes it lag.
    pub async fn start_replica(&self, dir: &Path) -> Postgres {
        std::fs::create_dir_all(dir.join("pgsock")).unwrap();
        if self.as_root {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown(dir, Some(postgres_uid()), None).unwrap();
            chown(dir.join("pgsock"), Some(postgres_uid()), None).unwrap();
        }
        let status = self
            .command("pg_basebackup")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-R", "-X", "stream", "--no-sync", "-D"])
            .arg(dir.join("pgdata"))
            .status()
            .expect("run pg_basebackup");
        assert!(status.success(), "pg_basebackup failed");
        let mut replica = Self {
            port: free_port(),
            listen: self.listen,
            dir: dir.into(),
            as_root: self.as_root,
            process: None,
        };
        replica.restart().await;
        replica
    }

    fn command(&self, program: &str) -> Command {
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        }
    }

    /// Immediate shutdown (SIGQUIT to the postmaster, as `pg_ctl stop -m
    /// immediate`): every connection dropped, crash recovery at restart.
    pub fn crash(&mut self) {
        if let Some(mut p) = self.process.take() {
            // The child may be `runuser`: signal the postmaster itself.
            let pid = std::fs::read_to_string(self.dir.join("pgdata/postmaster.pid"))
                .expect("postmaster.pid");
            let pid = pid.lines().next().expect("pid line").trim();
            let _ = Command::new("kill").args(["-QUIT", pid]).status();
            p.wait();
        }
    }

    /// Starts (again) on the same port and data, and waits until it serves.
    pub async fn restart(&mut self) {
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.dir.join("pgdata"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.join("pgsock"))
            .args([
                "-c",
                &format!("listen_addresses={}", self.listen),
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
                // Every statement, nested ones included, for the test that
                // checks each hot statement names its room (store.rs).
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "pg_stat_statements.track=all",
            ]);
        self.process = Some(Process::spawn(
            "postgres",
            cmd,
            &self.dir.join("postgres.log"),
        ));
        self.admin().await;
    }

    /// What the server logged so far (with `log_statement` = `all`, every
    /// statement: see `log_statements`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// Turns statement logging on (`all`) or off (`none`) for every
    /// session, open ones included, to count what a request runs.
    pub async fn log_statements(&self, setting: &str) {
        let admin = self.admin().await;
        let set = format!("ALTER SYSTEM SET log_statement = '{setting}'");
        admin.batch_execute(&set).await.unwrap();
        admin
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .unwrap();
    }

    /// A connection to the `postgres` database, once the server accepts one.
    async fn admin(&self) -> tokio_postgres::Client {
        let admin = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        );
        wait_for("postgres to accept connections", STARTUP, || {
            let admin = admin.clone();
            async move {
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                Some(client)
            }
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/chat", self.port)
    }

    /// A fresh connection to the `chat` database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to test postgres");
        tokio::spawn(conn);
        client
    }
}

fn postgres_uid() -> u32 {
    let out = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .expect("id -u postgres");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("postgres user exists")
}
