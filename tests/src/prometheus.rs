//! A real Prometheus (Debian's package) scraping a test cluster's gateways
//! and workers every second and evaluating the project's alert rules
//! (deploy/prometheus/chat-rules.yml) every second, each rule's `for`
//! shortened to `FOR` so that a test sees an alert go pending, then firing.

use std::{
    path::Path,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use serde_json::Value;

use crate::{cluster::Cluster, free_port, process::Process, wait_for};

/// Every alert's `for` in the tests' copy of the rules.
pub const FOR: &str = "4s";

pub struct Prometheus {
    port: u16,
    _process: Process,
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

impl Prometheus {
    /// Starts Prometheus on the cluster's gateways and workers (as they are
    /// now) and waits until every target is up.
    pub async fn start(cluster: &Cluster) -> Self {
        let dir = cluster.dir.path().join("prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        let rules = dir.join("rules.yml");
        // PyYAML from the deploy checks' tools (scripts/check-deploy.sh).
        let python = repo().join(".tools/venv/bin/python");
        let status = Command::new(&python)
            .arg("-c")
            .arg(
                "import sys, yaml\n\
                 doc = yaml.safe_load(open(sys.argv[1]))\n\
                 for g in doc['groups']:\n\
                 \x20   g['interval'] = '1s'\n\
                 \x20   for r in g['rules']:\n\
                 \x20       if 'alert' in r: r['for'] = sys.argv[3]\n\
                 yaml.safe_dump(doc, open(sys.argv[2], 'w'))\n",
            )
            .arg(repo().join("deploy/prometheus/chat-rules.yml"))
            .arg(&rules)
            .arg(FOR)
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
        assert!(status.success(), "the rules' test copy was not written");
        let targets = |ports: Vec<u16>| -> String {
            let list: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
            list.join(", ")
        };
        let gateways = targets(cluster.gateways.iter().map(|g| g.port).collect());
        let workers = targets(cluster.workers.iter().map(|w| w.http_port).collect());
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{}']\n\
             scrape_configs:\n\
             - job_name: gateway\n  static_configs: [{{targets: [{gateways}]}}]\n\
             - job_name: worker\n  static_configs: [{{targets: [{workers}]}}]\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let process = Process::spawn("prometheus", cmd, &dir.join("prometheus.log"));
        let prometheus = Self {
            port,
            _process: process,
        };
        let expected = cluster.gateways.len() + cluster.workers.len();
        wait_for(
            "Prometheus to scrape every target",
            Duration::from_secs(30),
            || {
                let prometheus = &prometheus;
                async move {
                    let targets = prometheus.get("/api/v1/targets").await?;
                    let active = targets["data"]["activeTargets"].as_array()?;
                    let up = active.iter().filter(|t| t["health"] == "up").count();
                    (up == expected).then_some(())
                }
            },
        )
        .await;
        prometheus
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        reqwest::get(url).await.ok()?.json().await.ok()
    }

    /// The state of alert `name` now (`pending`, `firing`), if it is active.
    pub async fn alert_state(&self, name: &str) -> Option<String> {
        let alerts = self.get("/api/v1/alerts").await?;
        alerts["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .and_then(|a| a["state"].as_str().map(str::to_owned))
    }

    /// Waits until alert `name` is seen pending, then firing.
    pub async fn wait_pending_then_firing(&self, name: &str, within: Duration) {
        let seen_pending = AtomicBool::new(false);
        wait_for(
            &format!("{name} to go pending, then firing"),
            within,
            || {
                let (state, seen) = (self.alert_state(name), &seen_pending);
                async move {
                    match state.await.as_deref() {
                        Some("pending") => seen.store(true, Ordering::Relaxed),
                        Some("firing") if seen.load(Ordering::Relaxed) => return Some(()),
                        Some("firing") => panic!("{name} fired without being seen pending"),
                        _ => {}
                    }
                    None
                }
            },
        )
        .await
    }
}
