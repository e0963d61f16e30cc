//! A Redis Cluster of three masters on loopback (`redis-server
//! --cluster-enabled yes`, joined by `redis-cli --cluster create`), each
//! with persistence off, so that a test can kill one.

use std::{path::Path, process::Command, time::Duration};

use crate::{process::Process, wait_for};

pub struct RedisCluster {
    ports: Vec<u16>,
    processes: Vec<Option<Process>>,
}

/// Redis listens for its cluster bus on the port + 10,000 as well: a port
/// free with its bus port, both below the ephemeral range (where another
/// process's outgoing connection could take one meanwhile), and apart from
/// the ports `free_port` hands out (its range starts at 10,000).
fn node_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const BUS_OFFSET: u16 = 10_000;
    const LOWEST: u16 = 2_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    // The span below 10,000 whose bus ports stay below 20,000.
    let span = 10_000 - LOWEST;
    let start = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let port = LOWEST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        if free(port) && free(port + BUS_OFFSET) {
            return port;
        }
    }
    panic!("no port free with its cluster bus port");
}

impl RedisCluster {
    /// Starts three masters and joins them; waits until every slot is served.
    pub async fn start(dir: &Path) -> Self {
        let ports: Vec<u16> = (0..3).map(|_| node_port()).collect();
        let processes = ports
            .iter()
            .map(|&port| {
                let node = dir.join(format!("redis-{port}"));
                std::fs::create_dir_all(&node).unwrap();
                let mut cmd = Command::new("redis-server");
                cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .args(["--cluster-enabled", "yes"])
                    // A master lost leaves its slots unserved, not the rest.
                    .args(["--cluster-require-full-coverage", "no"])
                    .args(["--cluster-node-timeout", "2000"])
                    .arg("--dir")
                    .arg(&node);
                Some(Process::spawn(
                    &format!("redis-{port}"),
                    cmd,
                    &node.join("redis.log"),
                ))
            })
            .collect();
        for &port in &ports {
            wait_for(
                "redis to accept connections",
                Duration::from_secs(30),
                || async move {
                    std::net::TcpStream::connect(("127.0.0.1", port))
                        .ok()
                        .map(|_| ())
                },
            )
            .await;
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = Self { ports, processes };
        wait_for("every slot served", Duration::from_secs(30), || async {
            cluster.state_ok().then_some(())
        })
        .await;
        cluster
    }

    /// The masters' URLs, comma-separated, as gateways and workers take them.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        urls.join(",")
    }

    /// Kills master `i` (SIGKILL): its slots, and everything cached in
    /// them, are gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.processes[i].take() {
            p.kill();
        }
    }

    /// Which master serves `key`'s slot (`CLUSTER KEYSLOT`, `CLUSTER SHARDS`
    /// read through the first live node).
    pub fn master_of(&self, key: &str) -> usize {
        let port = self.live_port();
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .unwrap();
        let slots = cli(port, &["CLUSTER", "SLOTS"]);
        // Lines: start, end, ip, port, id, … per range.
        let lines: Vec<&str> = slots.lines().map(str::trim).collect();
        for range in lines.windows(4) {
            let (Ok(start), Ok(end)) = (range[0].parse::<u16>(), range[1].parse::<u16>()) else {
                continue;
            };
            let Ok(port) = range[3].parse::<u16>() else {
                continue;
            };
            if (start..=end).contains(&slot) && range[2] == "127.0.0.1" {
                return self
                    .ports
                    .iter()
                    .position(|&p| p == port)
                    .expect("a master's port");
            }
        }
        panic!("no master serves slot {slot}:\n{slots}");
    }

    fn live_port(&self) -> u16 {
        self.ports
            .iter()
            .zip(&self.processes)
            .find(|(_, p)| p.is_some())
            .map(|(port, _)| *port)
            .expect("a live master")
    }

    fn state_ok(&self) -> bool {
        self.ports
            .iter()
            .all(|&port| cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
