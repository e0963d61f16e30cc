//! The TypeScript SDK (`clients/ts`) against a real cluster: its Node tests
//! (`clients/ts/test/`) run with two gateways, a worker and the servers
//! started here, and kill a gateway themselves. `scripts/test.sh` installs
//! and builds the SDK first.

use std::path::Path;

use chat_tests::{node::node_tests, Cluster, ClusterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_passes_its_tests_against_a_real_cluster() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/ts");
    assert!(
        sdk.join("dist/index.js").exists(),
        "build the SDK first: (cd clients/ts && npm ci && npm run build)"
    );
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("sdk", &["ann", "bob"]).await;
    let gateways: Vec<String> = (0..2).map(|i| cluster.gateway(i).ws_url()).collect();
    let pids: Vec<String> = (0..2)
        .map(|i| cluster.gateway(i).process.pid().to_string())
        .collect();
    let tokens = serde_json::json!({ "ann": cluster.token("ann"), "bob": cluster.token("bob") });
    let env = [
        ("CHAT_TS_GATEWAYS", gateways.join(",")),
        ("CHAT_TS_GATEWAY_PIDS", pids.join(",")),
        ("CHAT_TS_TOKENS", tokens.to_string()),
        ("CHAT_TS_ROOM", "sdk".to_string()),
    ];
    node_tests(&sdk, &env, 120_000, 3).await;
}
