//! The web chat page (`clients/web`) served by the gateways, in a real
//! browser: its Playwright tests (`clients/web/test/`) drive Debian's
//! Chromium against two gateways, a worker and the servers started here.
//! `scripts/test.sh` installs Chromium and builds the page first.

use std::path::Path;

use chat_client::ClientError;
use chat_protocol::codec::Encoding;
use chat_tests::{node::node_tests, Cluster, ClusterOptions};

fn web_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/web");
    assert!(
        dir.join("dist/index.html").exists(),
        "build the page first: (cd clients/web && npm ci && npm run build)"
    );
    dir.canonicalize().unwrap()
}

fn serving_the_page(gateways: usize) -> ClusterOptions {
    let dist = web_dir().join("dist");
    ClusterOptions::new(gateways, 1)
        .gateway_env("CHAT_GATEWAY_WEB__ENABLED", "true")
        .gateway_env("CHAT_GATEWAY_WEB__DIR", dist.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_in_browsers_on_two_gateways() {
    let web = web_dir();
    let cluster = Cluster::start(serving_the_page(2)).await;
    cluster.create_room("web", &["ann", "bob"]).await;
    cluster.create_room("side", &["ann", "bob"]).await;
    // More than the page's first history page (50), to page back through.
    let mut ann = cluster.gateway(0).connect("ann").await;
    for i in 0..60 {
        let body = format!("earlier {i}");
        ann.send_and_wait("web", &format!("earlier-{i}"), &body)
            .await
            .unwrap();
    }
    drop(ann);
    let pages: Vec<String> = (0..2).map(|i| cluster.gateway(i).url("/")).collect();
    let tokens = serde_json::json!({ "ann": cluster.token("ann"), "bob": cluster.token("bob") });
    // Screenshots of every run (and of a failure) are kept there.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts/web");
    let env = [
        ("CHAT_WEB_PAGES", pages.join(",")),
        ("CHAT_WEB_TOKENS", tokens.to_string()),
        ("CHAT_WEB_ARTIFACTS", artifacts.display().to_string()),
    ];
    node_tests(&web, &env, 180_000, 1).await;
}

/// The page is served with a policy that keeps it to its own origin, and
/// opening the gateway to the page it serves opens it to no other origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serving_the_page_admits_its_own_origin_and_no_other() {
    let cluster = Cluster::start(serving_the_page(1)).await;
    let gateway = cluster.gateway(0);
    let page = reqwest::get(gateway.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("app.js"));
    let script = reqwest::get(gateway.url("/app.js")).await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        reqwest::get(gateway.url("/nope.js"))
            .await
            .unwrap()
            .status(),
        404
    );

    let mut options = gateway.connect_options("ann", Encoding::Json);
    options.origin = Some(gateway.url(""));
    assert!(chat_client::connect(&options).await.is_ok(), "its own page");
    options.origin = Some("http://evil.example".into());
    assert!(matches!(
        chat_client::connect(&options).await,
        Err(ClientError::Refused(403))
    ));
}
