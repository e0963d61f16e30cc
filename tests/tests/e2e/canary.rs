//! The delivery canary: a probe through ingest stream, worker and back,
//! seen in the gateway's metrics and, when so configured, its readiness.

use std::time::Duration;

use chat_tests::{wait_for, Cluster, ClusterOptions, STEP};
use tokio::time::Instant;

const PERIOD_MS: u64 = 300;

/// `/readyz` of gateway 0: (status, names of what fails).
async fn readiness(cluster: &Cluster) -> (u16, Vec<String>) {
    let response = reqwest::get(cluster.gateway(0).url("/readyz"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    let failing = body["failing"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (status, failing)
}

async fn canary_ok(cluster: &Cluster) -> f64 {
    let m = cluster.gateway(0).metrics().await;
    m.total("chat_gateway_canary_ok", &[])
}

/// With a worker running the canary is answered, storing nothing; with the
/// worker stopped (SIGSTOP) it turns to 0 within two periods and readiness
/// fails after `fail_readiness_after` of them; with the worker resumed both
/// come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_follows_the_worker_down_and_back() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_CANARY__INTERVAL_MS", &PERIOD_MS.to_string())
        .gateway_env("CHAT_GATEWAY_CANARY__FAIL_READINESS_AFTER", "2");
    let cluster = Cluster::start(options).await;
    let period = Duration::from_millis(PERIOD_MS);

    wait_for("the canary to be answered", STEP, || async {
        (canary_ok(&cluster).await == 1.0).then_some(())
    })
    .await;
    // A few periods more: every probe answered, none failed.
    let gateway = wait_for("four canaries to be answered", STEP, || async {
        let gateway = cluster.gateway(0).metrics().await;
        (gateway.total("chat_gateway_canary_seconds", &[]) >= 4.0).then_some(gateway)
    })
    .await;
    let answered = gateway.total("chat_gateway_canary_seconds", &[]);
    assert!(answered >= 4.0, "{answered} canaries answered");
    assert_eq!(
        gateway.total("chat_gateway_canary_failures_total", &[]),
        0.0
    );
    assert_eq!(gateway.total("chat_gateway_canary_ok", &[]), 1.0);
    let worker = cluster.worker(0).metrics().await;
    assert!(worker.total("chat_worker_canaries_total", &[]) >= answered);
    assert_eq!(worker.total("chat_worker_envelopes_total", &[]), 0.0);
    assert_eq!(
        worker.total("chat_worker_batch_size", &[]),
        0.0,
        "no transaction"
    );
    assert_eq!(worker.total("chat_worker_dead_letters_total", &[]), 0.0);
    let stored: i64 = cluster
        .postgres
        .client()
        .await
        .query_one("SELECT count(*) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "canaries are never stored");
    assert_eq!(readiness(&cluster).await, (200, vec![]));

    cluster.workers[0].process.pause();
    let paused = Instant::now();
    wait_for(
        "the canary to fail",
        2 * period + Duration::from_millis(700),
        || async { (canary_ok(&cluster).await == 0.0).then_some(()) },
    )
    .await;
    let failed_after = paused.elapsed();
    wait_for("readiness to report the canary", STEP, || async {
        let (status, failing) = readiness(&cluster).await;
        (status == 503 && failing == ["canary"]).then_some(())
    })
    .await;
    let unready_after = paused.elapsed();
    println!("worker stopped: canary 0 after {failed_after:?}, not ready after {unready_after:?}");
    assert!(
        unready_after <= 3 * period + Duration::from_secs(1),
        "not ready only after {unready_after:?}"
    );
    let gateway = cluster.gateway(0).metrics().await;
    assert!(
        gateway.total(
            "chat_gateway_canary_failures_total",
            &[("reason", "timeout")]
        ) >= 2.0
    );

    cluster.workers[0].process.resume();
    let resumed = Instant::now();
    wait_for("the canary to come back", STEP, || async {
        (canary_ok(&cluster).await == 1.0 && readiness(&cluster).await.0 == 200).then_some(())
    })
    .await;
    println!(
        "worker resumed: canary ok and ready again after {:?}",
        resumed.elapsed()
    );
}
