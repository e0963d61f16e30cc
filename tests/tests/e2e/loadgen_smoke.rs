//! Keeps the load generator working: a few seconds of the `smoke` scenario
//! against a real cluster, both encodings, and an audit of its report.

use chat_tests::{
    cluster::{bin, ADMIN_TOKEN, JWT_SECRET},
    Cluster, ClusterOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_smoke_run_delivers_everything_once() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    for target in ["ours", "ours-proto"] {
        let report = cluster.dir.path().join(format!("{target}.json"));
        let chart = cluster.dir.path().join(format!("{target}.svg"));
        let status = tokio::process::Command::new(bin("loadgen"))
            .args(["--scenario", "smoke", "--target", target, "--quiet"])
            .args([
                "--url",
                &cluster.gateway(0).ws_url(),
                "--url",
                &cluster.gateway(1).ws_url(),
            ])
            .args([
                "--admin-url",
                &cluster.gateway(0).url(""),
                "--admin-token",
                ADMIN_TOKEN,
            ])
            .args(["--jwt-secret", JWT_SECRET])
            .args([
                "--watch-pid",
                &cluster.gateways[0].process.pid().to_string(),
            ])
            .arg("--report")
            .arg(&report)
            .arg("--chart")
            .arg(&chart)
            .status()
            .await
            .unwrap();
        assert!(status.success(), "loadgen failed for {target}");
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let sent = r["sent"].as_u64().unwrap();
        assert!(sent >= 200, "{target}: sent only {sent}");
        assert_eq!(r["missing"], 0, "{target}: {r}");
        assert_eq!(r["duplicates"], 0, "{target}");
        assert_eq!(r["connected"], 20);
        assert_eq!(
            r["ack_latency"]["count"].as_u64(),
            Some(sent),
            "{target}: every send acked"
        );
        // Rooms of 5: each message reaches its 5 members.
        assert_eq!(r["deliveries"].as_u64(), Some(sent * 5), "{target}");
        assert!(std::fs::read_to_string(&chart).unwrap().contains("<svg"));
    }
}
