//! The room API over HTTP (`/v1/rooms`): users with their JWT under the
//! rules of their roles, the service with its token, and the OpenAPI
//! document it serves, checked by schemathesis against the live gateway.

use std::path::PathBuf;

use chat_tests::{cluster::ADMIN_TOKEN, Cluster, ClusterOptions};
use reqwest::Method;
use serde_json::{json, Value};

/// A user creates a room and owns it; the rules decide what each user may
/// do over HTTP exactly as over the socket; the member list shows roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_manage_their_rooms_over_http_by_the_rules() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    let (ann, bob, zed) = (
        cluster.token("ann"),
        cluster.token("bob"),
        cluster.token("zed"),
    );
    let create = json!({ "room": "annroom", "members": ["bob"] });
    let (status, _) = cluster
        .gateway(0)
        .call(&ann, Method::POST, "/v1/rooms", Some(create.clone()))
        .await;
    assert_eq!(status, 201);
    let (status, body) = cluster
        .gateway(0)
        .call(&zed, Method::POST, "/v1/rooms", Some(create))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    let members = "/v1/rooms/annroom/members";
    let (status, body) = cluster
        .gateway(0)
        .call(&bob, Method::GET, members, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([
            { "user": "ann", "role": "owner", "permissions": ["can_send_messages", "can_change_permissions", "can_remove_members", "can_delete_other_messages"] },
            { "user": "bob", "role": "member", "permissions": ["can_send_messages"] },
        ])
    );
    let (status, _) = cluster
        .gateway(0)
        .call(&zed, Method::GET, members, None)
        .await;
    assert_eq!(status, 403, "a stranger may not list the members");

    let carol = "/v1/rooms/annroom/members/carol";
    let (status, body) = cluster
        .gateway(0)
        .call(&bob, Method::PUT, carol, None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let promote = json!({ "role": "admin" });
    let (status, _) = cluster
        .gateway(0)
        .call(
            &ann,
            Method::PUT,
            "/v1/rooms/annroom/members/bob/access",
            Some(promote),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = cluster
        .gateway(0)
        .call(&bob, Method::PUT, carol, None)
        .await;
    assert_eq!(status, 204, "an admin may add members");
    let (status, body) = cluster
        .gateway(0)
        .call(&ann, Method::DELETE, "/v1/rooms/annroom/members/ann", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "the last owner stays"
    );
    let (status, body) = cluster
        .gateway(0)
        .call("not-a-token", Method::GET, members, None)
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    let kinds: Vec<String> = cluster
        .stored("annroom")
        .await
        .into_iter()
        .map(|(_, sender, _, body)| format!("{sender}:{body}"))
        .collect();
    assert_eq!(
        kinds,
        ["ann:bob", "bob:carol"],
        "one event per change, none for refusals"
    );
}

/// The document is OpenAPI 3.1 and names every operation; schemathesis
/// then calls each one with generated inputs, valid and invalid, and
/// every answer must be a documented status with a body of the documented
/// schema, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_api_keeps_to_its_openapi_document() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("lobby", &["ann"]).await;
    let url = cluster.gateway(0).url("/v1/openapi.json");
    let document: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut operations: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /v1/rooms/{room}",
            "DELETE /v1/rooms/{room}/members/{user}",
            "GET /v1/me/rooms",
            "GET /v1/rooms/{room}/members",
            "GET /v1/rooms/{room}/messages",
            "GET /v1/rooms/{room}/search",
            "GET /v1/search",
            "GET /v1/users/{user}/export",
            "POST /v1/direct/{user}",
            "POST /v1/rooms",
            "POST /v1/rooms/{room}/messages",
            "POST /v1/users/{user}/erase",
            "PUT /v1/rooms/{room}/members/{user}",
            "PUT /v1/rooms/{room}/members/{user}/access",
            "PUT /v1/rooms/{room}/retention",
        ]
    );

    let out = tokio::process::Command::new(schemathesis())
        .args(["run", &url])
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "25", "--seed", "7", "--workers", "2"])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found answers off the document"
    );
}

/// schemathesis from the project's tool folder (installed by
/// `scripts/check-deploy.sh`, which `scripts/test.sh` runs first), or PATH.
fn schemathesis() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let local = root.join(".tools/venv/bin/schemathesis");
    if local.exists() {
        local
    } else {
        PathBuf::from("schemathesis")
    }
}
