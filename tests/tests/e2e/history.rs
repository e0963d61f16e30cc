//! History pages: the `history` frame (both encodings) and
//! `GET /v1/rooms/{room}/messages`, on two gateways and two workers. Pages
//! back through a room with no gap or duplicate, `has_*` and cursors right
//! at both ends, the newest window from Redis and older pages from
//! Postgres (by index), a streaming replica serving what it has replayed,
//! ETag/304, compression, membership, and every bad input refused with
//! nothing stored.

use chat_client::{Client, ClientOptions, HistoryCursor};
use chat_proto::v1::{client_frame, server_frame::Kind, Error as ErrorFrame, History, HistoryPage};
use chat_protocol::codec::Encoding;
use chat_tests::{
    cluster::ADMIN_TOKEN, wait_for, Cluster, ClusterOptions, Frames, Role, Session, STEP,
};
use reqwest::header::{HeaderMap, ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, IF_NONE_MATCH};
use serde_json::Value;

/// Redis keeps only this many recent messages per room in these tests, so
/// that pages below them come from Postgres.
const RECENT: &str = "40";
const PAGES: &str = "chat_gateway_history_pages_total";

fn options() -> ClusterOptions {
    ClusterOptions::new(2, 2).env(Role::Workers, "CHAT_WORKER_RECENT_CACHE_LEN", RECENT)
}

/// A cursor as the frame carries it.
#[derive(Clone, Copy, Default)]
struct Ask {
    before: Option<i64>,
    after: Option<i64>,
    around: Option<i64>,
    limit: Option<i32>,
}

/// Asks for a page over the socket; the page or the error answering it.
async fn ws_history(s: &mut Session, room: &str, ask: Ask) -> Result<HistoryPage, ErrorFrame> {
    let frame = client_frame::Kind::History(History {
        room: room.into(),
        before: ask.before,
        after: ask.after,
        around: ask.around,
        limit: ask.limit,
    });
    let request_id = s.writer.request(frame).await.unwrap();
    loop {
        let frame = s.next_frame().await;
        if frame.request_id != request_id {
            continue;
        }
        return match frame.kind {
            Some(Kind::HistoryPage(page)) => Ok(page),
            Some(Kind::Error(e)) => Err(e),
            other => panic!("expected a history page, got {other:?}"),
        };
    }
}

/// Sends `n` messages as `s`, one after another, each acked.
async fn send_many(s: &mut Session, room: &str, tag: &str, n: usize) {
    for i in 0..n {
        let id = format!("{tag}-{i}");
        s.send_and_wait(room, &id, &format!("{tag} {i}"))
            .await
            .unwrap();
    }
}

/// Pages back from the newest with `limit`, checking each page's flags and
/// cursors; the seqs of every page, oldest first.
async fn page_back_ws(s: &mut Session, room: &str, head: u64, limit: i32) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut ask = Ask {
        limit: Some(limit),
        ..Ask::default()
    };
    let mut first = true;
    loop {
        let page = ws_history(s, room, ask).await.unwrap();
        let got: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
        assert!(
            got.windows(2).all(|w| w[1] == w[0] + 1),
            "a page in seq order: {got:?}"
        );
        assert_eq!((page.before, page.after), (got[0], *got.last().unwrap()));
        assert_eq!(
            page.has_after, !first,
            "has_after only below the newest page"
        );
        assert_eq!(page.has_before, page.before > 1);
        assert_eq!(page.head_seq, head);
        seqs.splice(0..0, got);
        first = false;
        if !page.has_before {
            return seqs;
        }
        ask.before = Some(page.before as i64);
    }
}

async fn stored_seqs(cluster: &Cluster, room: &str) -> Vec<u64> {
    cluster
        .stored(room)
        .await
        .iter()
        .map(|r| r.0 as u64)
        .collect()
}

async fn pages_from(cluster: &Cluster, source: &str) -> f64 {
    let mut total = 0.0;
    for g in &cluster.gateways {
        total += g.metric(PAGES, &[("source", source)]).await;
    }
    total
}

/// 260 messages and two member changes; paging back over both gateways
/// in both encodings sees each seq once, in order, member changes
/// included; `around`, `after` and both ends are right; the newest pages
/// come from Redis and the older ones from Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_page_back_through_the_whole_history_in_both_encodings() {
    let cluster = Cluster::start(options()).await;
    cluster.create_room("hist", &["ann", "bob"]).await;
    let mut ann = cluster.gateway(0).connect_with("ann", Encoding::Json).await;
    send_many(&mut ann, "hist", "a", 130).await;
    let add = reqwest::Client::new().put(cluster.gateway(1).url("/v1/rooms/hist/members/cat"));
    assert_eq!(
        add.bearer_auth(ADMIN_TOKEN).send().await.unwrap().status(),
        204
    );
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    send_many(&mut bob, "hist", "b", 130).await;
    let stored = stored_seqs(&cluster, "hist").await;
    let head = *stored.last().unwrap();
    assert_eq!(head, 261, "260 messages and cat's joining");

    for (json, limit) in [(true, 50), (false, 37), (true, 200)] {
        let s = if json { &mut ann } else { &mut bob };
        let seqs = page_back_ws(s, "hist", head, limit).await;
        assert_eq!(seqs, stored, "every stored seq once, in order");
    }
    let page = ws_history(
        &mut bob,
        "hist",
        Ask {
            limit: Some(200),
            ..Ask::default()
        },
    )
    .await
    .unwrap();
    let cat = page
        .messages
        .iter()
        .find(|m| m.kind == "member_joined" && m.member == "cat");
    assert!(
        cat.is_some(),
        "member changes are in the pages as delivered"
    );

    let around = ws_history(
        &mut ann,
        "hist",
        Ask {
            around: Some(100),
            limit: Some(11),
            ..Ask::default()
        },
    )
    .await
    .unwrap();
    let seqs: Vec<u64> = around.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (95..=105).collect::<Vec<_>>());
    assert!(around.has_before && around.has_after);
    let first = ws_history(
        &mut ann,
        "hist",
        Ask {
            after: Some(0),
            limit: Some(10),
            ..Ask::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            first.messages[0].seq,
            first.after,
            first.has_before,
            first.has_after
        ),
        (1, 10, false, true)
    );
    let past = ws_history(
        &mut bob,
        "hist",
        Ask {
            after: Some(head as i64),
            ..Ask::default()
        },
    )
    .await
    .unwrap();
    assert!(past.messages.is_empty() && past.has_before && !past.has_after);
    assert_eq!(past.after, head, "poll again with the same cursor");
    let start = ws_history(
        &mut bob,
        "hist",
        Ask {
            before: Some(1),
            ..Ask::default()
        },
    )
    .await
    .unwrap();
    assert!(start.messages.is_empty() && !start.has_before && start.has_after);

    let (redis, primary) = (
        pages_from(&cluster, "redis").await,
        pages_from(&cluster, "primary").await,
    );
    let newest = ws_history(
        &mut bob,
        "hist",
        Ask {
            limit: Some(30),
            ..Ask::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(newest.messages.last().unwrap().seq, head);
    assert_eq!(
        pages_from(&cluster, "redis").await,
        redis + 1.0,
        "the newest window comes from Redis"
    );
    let older = ws_history(
        &mut ann,
        "hist",
        Ask {
            before: Some(50),
            limit: Some(30),
            ..Ask::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(older.messages[0].seq, 20);
    assert_eq!(
        pages_from(&cluster, "primary").await,
        primary + 1.0,
        "older pages come from Postgres"
    );
    assert_eq!(
        pages_from(&cluster, "replica").await,
        0.0,
        "no replica configured"
    );
}

/// A GET as `token` with extra headers: status, headers and body bytes.
async fn get(
    cluster: &Cluster,
    gw: usize,
    token: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Vec<u8>) {
    let client = reqwest::Client::builder().build().unwrap();
    let mut request = client.get(cluster.gateway(gw).url(path)).bearer_auth(token);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

async fn get_json(cluster: &Cluster, gw: usize, token: &str, path: &str) -> (u16, Value) {
    let (status, _, body) = get(cluster, gw, token, path, &[]).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Over HTTP: members page back to the first message; an answer carries
/// an ETag that If-None-Match turns into 304; big answers are compressed
/// as the client accepts (gzip, br, zstd), small ones are not; the service
/// reads any room, a user only the rooms they are in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_over_http_pages_revalidates_compresses_and_checks_membership() {
    let cluster = Cluster::start(options()).await;
    cluster.create_room("web", &["ann"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    send_many(&mut ann, "web", "w", 120).await;
    let stored = stored_seqs(&cluster, "web").await;
    let ann_token = cluster.token("ann");

    let mut seqs = Vec::new();
    let mut path = "/v1/rooms/web/messages?limit=25".to_string();
    loop {
        let (status, page) = get_json(&cluster, 1, &ann_token, &path).await;
        assert_eq!(status, 200, "{page}");
        let got: Vec<u64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(page["before"].as_u64(), got.first().copied());
        seqs.splice(0..0, got);
        if !page["hasBefore"].as_bool().unwrap() {
            break;
        }
        path = format!("/v1/rooms/web/messages?limit=25&before={}", page["before"]);
    }
    assert_eq!(seqs, stored);

    let newest = "/v1/rooms/web/messages?limit=100";
    let (status, headers, body) = get(&cluster, 0, &ann_token, newest, &[]).await;
    assert_eq!(status, 200);
    let etag = headers[ETAG].to_str().unwrap().to_owned();
    let (status, headers, empty) = get(
        &cluster,
        1,
        &ann_token,
        newest,
        &[(IF_NONE_MATCH.as_str(), &etag)],
    )
    .await;
    assert_eq!(
        status, 304,
        "the same page on the other gateway has the same ETag"
    );
    assert!(empty.is_empty());
    assert_eq!(headers[ETAG].to_str().unwrap(), etag);
    send_many(&mut ann, "web", "x", 1).await;
    let (status, _, _) = get(
        &cluster,
        0,
        &ann_token,
        newest,
        &[(IF_NONE_MATCH.as_str(), &etag)],
    )
    .await;
    assert_eq!(status, 200, "a new message changes the newest page");

    for encoding in ["gzip", "br", "zstd"] {
        let (status, headers, compressed) = get(
            &cluster,
            0,
            &ann_token,
            newest,
            &[(ACCEPT_ENCODING.as_str(), encoding)],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(headers[CONTENT_ENCODING].to_str().unwrap(), encoding);
        assert!(
            compressed.len() < body.len() / 2,
            "{encoding}: {} of {}",
            compressed.len(),
            body.len()
        );
    }
    let small = "/v1/rooms/web/messages?limit=1";
    let (_, headers, _) = get(
        &cluster,
        0,
        &ann_token,
        small,
        &[(ACCEPT_ENCODING.as_str(), "gzip")],
    )
    .await;
    assert!(
        headers.get(CONTENT_ENCODING).is_none(),
        "a small answer is sent as it is"
    );

    let (status, page) = get_json(
        &cluster,
        0,
        ADMIN_TOKEN,
        "/v1/rooms/web/messages?around=60&limit=3",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"].as_array().unwrap().len(), 3);
    let zed = cluster.token("zed");
    let refused = [
        (zed.as_str(), "/v1/rooms/web/messages", 403, "forbidden"),
        (zed.as_str(), "/v1/rooms/nowhere/messages", 403, "forbidden"),
        (ADMIN_TOKEN, "/v1/rooms/nowhere/messages", 404, "not_found"),
        ("not-a-token", "/v1/rooms/web/messages", 401, "unauthorized"),
    ];
    for (token, path, status, code) in refused {
        let (got, body) = get_json(&cluster, 1, token, path).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
}

/// Every bad request is refused with its code, over both encodings and
/// HTTP; the socket stays open and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_history_requests_are_refused_and_store_nothing() {
    let cluster = Cluster::start(options()).await;
    cluster.create_room("bad", &["ann"]).await;
    cluster.create_room("other", &["bob"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    send_many(&mut ann, "bad", "m", 5).await;
    let stored = cluster.stored("bad").await;
    let other = cluster.stored("other").await;
    let invalid = [
        Ask {
            limit: Some(0),
            ..Ask::default()
        },
        Ask {
            limit: Some(201),
            ..Ask::default()
        },
        Ask {
            limit: Some(-3),
            ..Ask::default()
        },
        Ask {
            before: Some(-1),
            ..Ask::default()
        },
        Ask {
            before: Some(0),
            ..Ask::default()
        },
        Ask {
            after: Some(-7),
            ..Ask::default()
        },
        Ask {
            around: Some(-2),
            ..Ask::default()
        },
        Ask {
            before: Some(3),
            after: Some(1),
            ..Ask::default()
        },
        Ask {
            before: Some(3),
            around: Some(1),
            ..Ask::default()
        },
        Ask {
            after: Some(3),
            around: Some(1),
            ..Ask::default()
        },
    ];
    for (gw, encoding) in [(0, Encoding::Json), (1, Encoding::Proto)] {
        let mut s = cluster.gateway(gw).connect_with("ann", encoding).await;
        for ask in invalid {
            let e = ws_history(&mut s, "bad", ask).await.unwrap_err();
            assert_eq!(e.code, "invalid_argument", "{}", e.message);
        }
        for room in ["other", "nowhere"] {
            let e = ws_history(&mut s, room, Ask::default()).await.unwrap_err();
            assert_eq!(e.code, "forbidden", "{room}: {}", e.message);
        }
        let e = ws_history(&mut s, "bad room!", Ask::default())
            .await
            .unwrap_err();
        assert_eq!(e.code, "invalid_argument");
        assert_eq!(
            ws_history(&mut s, "bad", Ask::default())
                .await
                .unwrap()
                .messages
                .len(),
            5,
            "the socket serves on"
        );
    }
    let token = cluster.token("ann");
    for query in [
        "limit=0",
        "limit=201",
        "limit=x",
        "before=abc",
        "before=-1",
        "after=-1",
        "around=1.5",
        "before=3&after=1",
        "after=1&around=2",
        "before=2&around=2",
    ] {
        let (status, body) = get_json(
            &cluster,
            1,
            &token,
            &format!("/v1/rooms/bad/messages?{query}"),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_argument")),
            "{query}: {body}"
        );
    }
    assert_eq!(cluster.stored("bad").await, stored, "nothing stored");
    assert_eq!(
        cluster.stored("other").await,
        other,
        "nothing stored in the room of others"
    );
    send_many(&mut ann, "bad", "after", 1).await;
}

/// The client library's `history` and the `chat history` command page back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_and_the_cli_page_back() {
    let cluster = Cluster::start(options()).await;
    cluster.create_room("cli", &["ann"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    send_many(&mut ann, "cli", "c", 30).await;
    let url = cluster.gateway(1).ws_url();
    let options = ClientOptions::new(vec![url.clone()], cluster.token("ann"), Encoding::Proto);
    let (client, _messages) = Client::connect(options);
    let newest = client
        .history("cli", HistoryCursor::Newest, Some(20))
        .await
        .unwrap();
    assert_eq!(
        (newest.before, newest.after, newest.has_before),
        (11, 30, true)
    );
    let older = client
        .history("cli", HistoryCursor::Before(newest.before), Some(20))
        .await
        .unwrap();
    assert_eq!(
        (older.before, older.after, older.has_before),
        (1, 10, false)
    );
    let refused = client
        .history("cli", HistoryCursor::Newest, Some(500))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    client.close();

    let out = tokio::process::Command::new(chat_tests::cluster::bin("chat"))
        .args(["--url", &url, "--token", &cluster.token("ann")])
        .args(["history", "cli", "--before", "11", "--limit", "5"])
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.starts_with("#6 <ann> c 5") && printed.trim_end().ends_with("c 9"),
        "{printed}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--before 6"));
}

/// The history statements read the `messages` primary key in order: an
/// index scan and no sort, whatever the cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_statements_scan_the_primary_key_without_sorting() {
    let cluster = Cluster::start(ClusterOptions::new(0, 1)).await;
    let pg = cluster.postgres.client().await;
    // As the gateways' connections are set up.
    let setting = chat_store::sql::READER_OPTIONS.trim_start_matches("-c ");
    pg.batch_execute(&format!("SET {setting}")).await.unwrap();
    // Rooms interleaved on disk, as live traffic writes them.
    pg.batch_execute(
        "INSERT INTO rooms (id, last_seq) SELECT 'r' || r, 2000 FROM generate_series(1, 20000) r;
         INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at)
           SELECT 'r' || r, s, gen_random_uuid(), 'u', 'c' || s, 'hello', now()
           FROM generate_series(1, 2000) s, generate_series(1, 50) r;
         ANALYZE rooms; ANALYZE messages;",
    )
    .await
    .unwrap();
    let head = pg
        .query(&format!("EXPLAIN {}", chat_store::sql::ROOM_HEAD), &[&"r7"])
        .await
        .unwrap();
    let mut plans = vec![("room_head".to_string(), head)];
    for (from, limit) in [
        (1i64, 50i64),
        (1200, 50),
        (1801, 200),
        (1951, 50),
        (1991, 10),
    ] {
        let explain = format!("EXPLAIN {}", chat_store::sql::HISTORY_PAGE);
        let plan = pg.query(&explain, &[&"r7", &from, &limit]).await.unwrap();
        plans.push((format!("history_page from {from} limit {limit}"), plan));
    }
    for (name, plan) in plans {
        let plan: Vec<String> = plan.iter().map(|r| r.get(0)).collect();
        let plan = plan.join("\n");
        assert!(plan.contains("Index Scan"), "{name}:\n{plan}");
        assert!(
            !plan.contains("Sort") && !plan.contains("Seq Scan"),
            "{name}:\n{plan}"
        );
    }
}

/// With `postgres.read_url`, pages come from the replica once it has
/// replayed them; while its replay is paused, pages it lacks come from
/// the primary (and pages it holds still from the replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_what_it_has_replayed_and_the_primary_the_rest() {
    let mut cluster = Cluster::start(ClusterOptions::new(0, 2).env(
        Role::Workers,
        "CHAT_WORKER_RECENT_CACHE_LEN",
        RECENT,
    ))
    .await;
    let replica = cluster
        .postgres
        .start_replica(&cluster.dir.path().join("replica"))
        .await;
    let replica_url = format!("postgres://postgres@127.0.0.1:{}/chat", replica.port);
    cluster.set_gateway_env("CHAT_GATEWAY_POSTGRES__READ_URL", &replica_url);
    cluster.start_gateway().await;
    cluster.start_gateway().await;
    cluster.create_room("rep", &["ann"]).await;
    let mut ann = cluster
        .gateway(1)
        .connect_with("ann", Encoding::Proto)
        .await;
    send_many(&mut ann, "rep", "m", 100).await;
    let head = stored_seqs(&cluster, "rep").await.len() as i64;
    let standby = replica_client(&replica_url).await;
    replayed(&standby, head).await;

    let token = cluster.token("ann");
    let old = "/v1/rooms/rep/messages?before=50&limit=20";
    let count = |source: &'static str| {
        let cluster = &cluster;
        async move {
            cluster
                .gateway(0)
                .metric(PAGES, &[("source", source)])
                .await
        }
    };
    let (status, page) = get_json(&cluster, 0, &token, old).await;
    assert_eq!(
        (status, page["messages"].as_array().unwrap().len()),
        (200, 20)
    );
    assert_eq!((count("replica").await, count("primary").await), (1.0, 0.0));

    standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    send_many(&mut ann, "rep", "n", 100).await;
    let lagging = format!("/v1/rooms/rep/messages?before={}&limit=50", head + 90);
    let (status, page) = get_json(&cluster, 0, &token, &lagging).await;
    let seqs: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        (status, seqs),
        (200, (head + 40..head + 90).collect::<Vec<_>>())
    );
    assert_eq!(
        (count("replica").await, count("primary").await),
        (1.0, 1.0),
        "the lagging page from the primary"
    );
    get_json(&cluster, 0, &token, old).await;
    assert_eq!(
        count("replica").await,
        2.0,
        "what the replica holds still comes from it"
    );
    let mut bob_ws = cluster.gateway(0).connect("ann").await;
    let ask = Ask {
        before: Some(head + 90),
        limit: Some(50),
        ..Ask::default()
    };
    assert_eq!(
        ws_history(&mut bob_ws, "rep", ask)
            .await
            .unwrap()
            .messages
            .len(),
        50
    );
    assert_eq!(count("primary").await, 2.0);

    standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    replayed(&standby, head + 100).await;
    get_json(&cluster, 0, &token, &lagging).await;
    assert_eq!(
        (count("replica").await, count("primary").await),
        (3.0, 2.0),
        "caught up: from the replica"
    );
    drop(replica);
}

async fn replica_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Waits until the replica holds `seq` of room `rep`.
async fn replayed(standby: &tokio_postgres::Client, seq: i64) {
    wait_for("the replica to replay", STEP, || async move {
        let row = standby
            .query_one(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE room_id = 'rep'",
                &[],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) >= seq).then_some(())
    })
    .await;
}

/// The window's rules, against a real Redis: new entries append, an entry
/// older than everything held is left out, a newer state of an entry
/// replaces it and an older one does not, and out-of-order entries in one
/// write land as if written one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_keeps_the_newest_state_of_each_entry_and_stays_whole() {
    use chat_proto::v1::Message;
    use chat_protocol::{RoomId, Seq};
    let dir = tempfile::tempdir().unwrap();
    let server = chat_tests::services::Redis::start(dir.path(), "127.0.0.1").await;
    let redis = chat_cache::connect(&server.url(), &Default::default())
        .await
        .unwrap();
    let room = RoomId::parse("w").unwrap();
    let entry = |seq: u64, changed_seq: u64, body: &str| {
        let message = Message {
            room: "w".into(),
            seq,
            changed_seq,
            body: body.into(),
            ..Default::default()
        };
        (room.clone(), message)
    };
    let write = |entries: Vec<(RoomId, Message)>| {
        let mut redis = redis.clone();
        async move { chat_cache::remember(&mut redis, &entries, 4).await.unwrap() }
    };
    let held = || {
        let mut redis = redis.clone();
        let room = room.clone();
        async move {
            chat_cache::between(&mut redis, &room, Seq::ZERO, Seq::new(1 << 40), 100)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.body)
                .collect::<Vec<_>>()
        }
    };
    // Into an empty window, out of order: 5 lands; 3, older than all held, does not.
    write(vec![entry(5, 0, "five"), entry(3, 0, "three")]).await;
    assert_eq!(held().await, ["five"]);
    // New entries append; past the 4 kept, the oldest go.
    write((6..=9).map(|s| entry(s, 0, &s.to_string())).collect()).await;
    assert_eq!(held().await, ["6", "7", "8", "9"]);
    // An edit (seq 7 changed at 12) replaces 7; a late, older state does not.
    write(vec![entry(7, 12, "seven edited")]).await;
    write(vec![entry(7, 10, "seven stale"), entry(10, 0, "10")]).await;
    assert_eq!(held().await, ["seven edited", "8", "9", "10"]);
}
