//! What operators see: metrics that agree with the traffic, readiness that
//! follows the dependencies, and one trace across both binaries.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, routing::post, Router};
use chat_protocol::codec::Encoding;
use chat_tests::{wait_for, Cluster, ClusterOptions, Frames, Metrics, Role, STEP};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value as AnyValue,
};
use prost::Message as _;

/// A body that must never appear in a log.
const BODY: &str = "very-private-body-7f3a";

// Longer than 80 lines on purpose: one scenario read top to bottom, each
// step next to what it checks; split up, it would read as scattered fragments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_agree_with_what_was_sent_and_delivered() {
    const N: usize = 40;
    let options = ClusterOptions::new(2, 2)
        .env(Role::Gateways, "CHAT_GATEWAY_LOG__FORMAT", "json")
        .env(Role::Workers, "CHAT_WORKER_LOG__FORMAT", "json")
        .env(
            Role::Both,
            "RUST_LOG",
            "debug,hyper=info,async_nats=info,tokio_postgres=info",
        );
    let cluster = Cluster::start(options).await;
    cluster.create_room("m", &["s", "r1", "r2"]).await;
    let mut s = cluster.gateway(0).connect("s").await;
    let mut r1 = cluster.gateway(0).connect_with("r1", Encoding::Proto).await;
    let mut r2 = cluster.gateway(1).connect("r2").await;
    r1.join("m").await;
    r2.join("m").await;
    for n in 0..N {
        s.send_and_wait("m", &format!("k{n}"), BODY).await.unwrap();
    }
    r1.collect_messages(N, STEP).await;
    r2.collect_messages(N, STEP).await;

    let gateways = Metrics::merge([
        cluster.gateway(0).metrics().await,
        cluster.gateway(1).metrics().await,
    ]);
    let workers = Metrics::merge([
        cluster.worker(0).metrics().await,
        cluster.worker(1).metrics().await,
    ]);
    assert_eq!(gateways.total("chat_gateway_connections", &[]), 3.0);
    assert_eq!(
        gateways.total("chat_gateway_connects_total", &[("result", "accepted")]),
        3.0
    );
    assert_eq!(
        gateways.total(
            "chat_gateway_frames_in_total",
            &[("type", "send"), ("encoding", "json")]
        ),
        N as f64
    );
    assert_eq!(
        gateways.total("chat_gateway_frames_in_total", &[("type", "join")]),
        2.0
    );
    assert_eq!(
        gateways.total("chat_gateway_frames_out_total", &[("type", "message")]),
        2.0 * N as f64
    );
    assert_eq!(
        gateways.total(
            "chat_gateway_frames_out_total",
            &[("type", "message"), ("encoding", "proto")]
        ),
        N as f64
    );
    assert_eq!(
        gateways.total("chat_gateway_send_ack_seconds", &[]),
        N as f64
    );
    // A message that lands while a joining socket's catch-up runs goes to
    // it as part of that catch-up (counted as replayed), not live.
    assert_eq!(
        gateways.total("chat_gateway_delivery_seconds", &[])
            + gateways.total("chat_gateway_replayed_total", &[]),
        2.0 * N as f64
    );
    assert_eq!(gateways.total("chat_gateway_rooms", &[]), 2.0);
    assert_eq!(
        workers.total("chat_worker_envelopes_total", &[("outcome", "stored")]),
        N as f64
    );
    assert_eq!(workers.total("chat_worker_dead_letters_total", &[]), 0.0);
    // Each send waited for the previous one's ack, so each was a batch of its own.
    assert_eq!(workers.total("chat_worker_batch_size", &[]), N as f64);
    assert_eq!(workers.total("chat_worker_batch_size_sum", &[]), N as f64);
    // Each send is timed at every stage of its way (bench/stages.py).
    let stage = |stage| [("stage", stage)];
    for name in ["queued", "lane", "commit", "fanout"] {
        let timed = workers.total("chat_worker_stage_seconds", &stage(name));
        assert_eq!(timed, N as f64, "{name}");
    }
    let published = gateways.total("chat_gateway_stage_seconds", &stage("publish"));
    assert_eq!(published, N as f64);
    let arrived = gateways.total("chat_gateway_stage_seconds", &stage("fanout_transit"));
    assert!(
        arrived >= N as f64,
        "every fan-out reached a gateway: {arrived}"
    );

    // Logs are JSON lines, carry connection ids, and never a token or a body.
    let token = cluster.token("s");
    let logs: Vec<String> = cluster
        .gateways
        .iter()
        .map(|g| g.process.log())
        .chain(cluster.workers.iter().map(|w| w.process.log()))
        .collect();
    let mut with_conn = 0;
    for line in logs.iter().flat_map(|l| l.lines()) {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        with_conn += entry["span"]["conn"].is_number() as usize;
        assert!(!line.contains(BODY), "a message body was logged: {line}");
        assert!(!line.contains(&token[..40]), "a token was logged: {line}");
    }
    assert!(with_conn >= 3, "socket log lines carry the connection id");

    // A closed socket leaves the connections gauge.
    drop(r1);
    wait_for("the closed socket to be counted", STEP, || async {
        let gateways = Metrics::merge([
            cluster.gateway(0).metrics().await,
            cluster.gateway(1).metrics().await,
        ]);
        (gateways.total("chat_gateway_connections", &[]) == 2.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_nats_down_and_back() {
    let mut cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    let gateway = cluster.gateway(0).url("/readyz");
    let worker = cluster.worker(0).url("/readyz");
    let status = |url: String| async move {
        reqwest::get(url)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(status(gateway.clone()).await, 200);
    assert_eq!(status(worker.clone()).await, 200);
    assert_eq!(status(cluster.gateway(0).url("/healthz")).await, 200);

    cluster.nats.stop();
    for url in [&gateway, &worker] {
        wait_for("not ready without NATS", STEP, || async {
            (status(url.clone()).await == 503).then_some(())
        })
        .await;
    }
    let body: serde_json::Value = reqwest::get(&gateway).await.unwrap().json().await.unwrap();
    assert_eq!(body["failing"], serde_json::json!(["nats"]));
    // What ChatDependencyDown alerts on.
    let up = |labels| cluster.gateway(0).metric("chat_dependency_up", labels);
    assert_eq!(up(&[("dependency", "nats")]).await, 0.0);
    assert_eq!(up(&[("dependency", "postgres")]).await, 1.0);
    assert_eq!(
        status(cluster.gateway(0).url("/healthz")).await,
        200,
        "alive all the same"
    );

    cluster.nats.restart().await;
    for url in [&gateway, &worker] {
        wait_for(
            "ready again with NATS back",
            Duration::from_secs(30),
            || async { (status(url.clone()).await == 200).then_some(()) },
        )
        .await;
    }
    let nats_up = cluster
        .gateway(0)
        .metric("chat_dependency_up", &[("dependency", "nats")])
        .await;
    assert_eq!(nats_up, 1.0);
}

/// Spans received by the test's OTLP/HTTP receiver: (service, trace id, span name).
type Spans = Arc<Mutex<Vec<(String, Vec<u8>, String)>>>;

async fn receive_traces(State(spans): State<Spans>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut spans = spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push((service.clone(), span.trace_id, span.name));
            }
        }
    }
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_one_trace_across_gateway_worker_and_delivering_gateway() {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(receive_traces))
        .with_state(Arc::clone(&spans));
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });

    let options = ClusterOptions::new(2, 1)
        .env(
            Role::Gateways,
            "CHAT_GATEWAY_TRACING__OTLP_ENDPOINT",
            &endpoint,
        )
        .env(
            Role::Workers,
            "CHAT_WORKER_TRACING__OTLP_ENDPOINT",
            &endpoint,
        )
        .env(Role::Both, "OTEL_BSP_SCHEDULE_DELAY", "200");
    let cluster = Cluster::start(options).await;
    cluster.create_room("t", &["a", "b"]).await;
    let mut b = cluster.gateway(1).connect_with("b", Encoding::Proto).await;
    b.join("t").await;
    let mut a = cluster.gateway(0).connect("a").await;
    a.send_and_wait("t", "traced", "follow me").await.unwrap();
    b.collect_messages(1, STEP).await;

    let wanted = [
        ("chat-gateway", "send"),
        ("chat-worker", "store"),
        ("chat-gateway", "deliver"),
    ];
    wait_for(
        "one trace with spans from both binaries",
        Duration::from_secs(20),
        || {
            let spans = spans.lock().unwrap().clone();
            async move {
                let mut by_trace: HashMap<Vec<u8>, HashSet<(String, String)>> = HashMap::new();
                for (service, trace, name) in spans {
                    by_trace.entry(trace).or_default().insert((service, name));
                }
                by_trace
                    .values()
                    .any(|names| {
                        wanted
                            .iter()
                            .all(|(s, n)| names.contains(&(s.to_string(), n.to_string())))
                    })
                    .then_some(())
            }
        },
    )
    .await;
    receiver.abort();
}

/// Every metric the Grafana dashboard queries is served by a running
/// gateway or worker (event counters included, before any event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_query_only_metrics_the_binaries_serve() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("dash", &["d"]).await;
    let mut d = cluster.gateway(0).connect("d").await;
    d.join("dash").await;
    d.send_and_wait("dash", "d1", "for the dashboard")
        .await
        .unwrap();
    // Readiness probes set chat_dependency_up.
    for url in [
        cluster.gateway(0).url("/readyz"),
        cluster.worker(0).url("/readyz"),
    ] {
        reqwest::get(url).await.unwrap();
    }
    let served: HashSet<String> = Metrics::merge([
        cluster.gateway(0).metrics().await,
        cluster.worker(0).metrics().await,
    ])
    .names()
    .map(str::to_owned)
    .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("deploy/grafana/chat-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 10);
    // The alert rules too: an SLI over a metric nobody serves never fires.
    let rules = std::fs::read_to_string(root.join("deploy/prometheus/chat-rules.yml")).unwrap();
    let rules: String = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let exprs = exprs.into_iter().chain([rules]).collect::<Vec<_>>();
    for expr in &exprs {
        for name in metric_names(expr) {
            // Histograms are parsed as one metric under their base name.
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                served.contains(&name) || served.contains(base),
                "the dashboard queries {name}, which no binary serves ({expr})"
            );
        }
    }
}

/// The `chat_*` metric names a PromQL expression mentions.
fn metric_names(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("chat_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        found.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    found
}
