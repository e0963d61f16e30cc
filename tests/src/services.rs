//! NATS with JetStream, Postgres and Redis, each a private instance.

use std::{
    os::unix::fs::{chown, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{free_port, process::Process, wait_for};

const STARTUP: Duration = Duration::from_secs(30);

/// `nats-server -js`; binary from `$NATS_SERVER_BIN` or `nats-server` on PATH.
pub struct Nats {
    pub port: u16,
    store: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

impl Nats {
    pub async fn start(dir: &Path) -> Self {
        let mut nats = Self {
            port: free_port(),
            store: dir.join("jetstream"),
            log: dir.join("nats.log"),
            process: None,
        };
        nats.restart().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Starts (again) on the same port and store.
    pub async fn restart(&mut self) {
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let mut cmd = Command::new(bin);
        cmd.args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-sd",
        ])
        .arg(&self.store);
        self.process = Some(Process::spawn("nats", cmd, &self.log));
        let url = self.url();
        wait_for("nats to accept connections", STARTUP, || {
            let url = url.clone();
            async move { async_nats::connect(url).await.ok().map(|_| ()) }
        })
        .await;
    }
}

/// `redis-server` with persistence off.
pub struct Redis {
    pub port: u16,
    _process: Process,
}

impl Redis {
    pub async fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir);
        let process = Process::spawn("redis", cmd, &dir.join("redis.log"));
        wait_for("redis to accept connections", STARTUP, || async move {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        })
        .await;
        Self {
            port,
            _process: process,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A private Postgres cluster from `initdb`, with a `chat` database.
pub struct Postgres {
    pub port: u16,
    _process: Process,
}

impl Postgres {
    pub async fn start(dir: &Path) -> Self {
        let data = dir.join("pgdata");
        let sockets = dir.join("pgsock");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&sockets).unwrap();
        // Postgres refuses to run as root: run it as the `postgres` user then.
        let as_root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let as_user = |program: &str| {
            if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--", program]);
                c
            } else {
                Command::new(program)
            }
        };
        if as_root {
            let uid = postgres_uid();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            chown(&data, Some(uid), None).unwrap();
            chown(&sockets, Some(uid), None).unwrap();
        }
        let status = as_user("initdb")
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
        let port = free_port();
        let mut cmd = as_user("postgres");
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&sockets)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ]);
        let process = Process::spawn("postgres", cmd, &dir.join("postgres.log"));
        let admin = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
        let client = wait_for("postgres to accept connections", STARTUP, || {
            let admin = admin.clone();
            async move {
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(conn);
                Some(client)
            }
        })
        .await;
        client.batch_execute("CREATE DATABASE chat").await.unwrap();
        Self {
            port,
            _process: process,
        }
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
