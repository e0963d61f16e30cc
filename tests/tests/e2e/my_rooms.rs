//! A user's rooms (`listRooms`, `GET /v1/me/rooms`): newest activity
//! first, each with its last entry, head seq and the user's access; pages
//! of one statement each; a walk that meets new activity sees every room
//! once; bad cursors and limits refused.

use std::time::Duration;

use chat_client::{Client, ClientEncoding, ClientOptions};
use chat_proto::v1::{client_frame, server_frame::Kind, Error as ErrorFrame, ListRooms, RoomList};
use chat_protocol::codec::Encoding;
use chat_tests::{cluster::ADMIN_TOKEN, Cluster, ClusterOptions, Session};
use tokio::time::Instant;

/// A page of `session`'s rooms, or the error it got.
async fn list(
    session: &mut Session,
    cursor: &str,
    limit: Option<u32>,
) -> Result<RoomList, ErrorFrame> {
    let request = client_frame::Kind::ListRooms(ListRooms {
        cursor: cursor.into(),
        limit,
    });
    match session.ask(request).await {
        Kind::RoomList(list) => Ok(list),
        Kind::Error(e) => Err(e),
        other => panic!("expected roomList, got {other:?}"),
    }
}

/// Every room of a walk from the first page, `limit` at a time.
async fn walk(session: &mut Session, limit: u32) -> (Vec<String>, usize) {
    let (mut rooms, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = list(session, &cursor, Some(limit)).await.unwrap();
        pages += 1;
        rooms.extend(page.rooms.into_iter().map(|r| r.room));
        if page.next_cursor.is_empty() {
            return (rooms, pages);
        }
        cursor = page.next_cursor;
    }
}

/// Rooms come newest activity first (a message moves its room up; a room
/// without entries counts from its creation), each with its last entry,
/// head seq and the user's own access, alike over both gateways, both
/// encodings, HTTP and the client library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_rooms_come_newest_activity_first_with_last_entry_head_and_access() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let db = cluster.postgres.client().await;
    db.batch_execute(
        "INSERT INTO rooms (id, created_at) VALUES ('empty', now() - interval '1 hour'); \
         INSERT INTO members (room_id, user_id) VALUES ('empty', 'ann')",
    )
    .await
    .unwrap();
    for (room, members) in [
        ("quiet", &["ann"][..]),
        ("busy", &["ann", "bob"]),
        ("other", &["bob"]),
        ("fresh", &["ann"]),
    ] {
        cluster.create_room(room, members).await;
    }
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    bob.send_and_wait("busy", "b1", "hello ann").await.unwrap();
    let added = reqwest::Client::new()
        .put(cluster.gateway(0).url("/v1/rooms/quiet/members/carl"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 204);

    let mut ann_json = cluster.gateway(0).connect("ann").await;
    let mut ann_proto = cluster
        .gateway(1)
        .connect_with("ann", Encoding::Proto)
        .await;
    let page = list(&mut ann_json, "", None).await.unwrap();
    let names: Vec<&str> = page.rooms.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(names, ["quiet", "busy", "fresh", "empty"]);
    assert!(page.next_cursor.is_empty(), "one page holds them all");
    let quiet = page.rooms[0].last_message.as_ref().unwrap();
    assert_eq!(
        (quiet.kind.as_str(), quiet.member.as_str(), quiet.seq),
        ("member_joined", "carl", 1)
    );
    let busy = &page.rooms[1];
    let last = busy.last_message.as_ref().expect("busy has a last message");
    assert_eq!(
        (last.sender.as_str(), last.body.as_str()),
        ("bob", "hello ann")
    );
    assert_eq!(
        (busy.head_seq, last.seq),
        (1, 1),
        "a room's creation is no entry"
    );
    let access = busy.access.as_ref().unwrap();
    assert_eq!(
        (access.role.as_str(), &access.permissions[..]),
        ("member", &["can_send_messages".to_string()][..])
    );
    for room in &page.rooms[2..] {
        assert!(
            room.last_message.is_none(),
            "a room without entries has none"
        );
        assert_eq!(room.head_seq, 0);
    }
    assert_eq!(
        list(&mut ann_proto, "", None).await.unwrap(),
        page,
        "both encodings, both gateways"
    );
    let bobs: Vec<String> = list(&mut bob, "", None)
        .await
        .unwrap()
        .rooms
        .into_iter()
        .map(|r| r.room)
        .collect();
    assert_eq!(bobs, ["busy", "other"]);

    let (status, body) = cluster
        .gateway(1)
        .get(&cluster.token("ann"), "/v1/me/rooms?limit=2")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rooms"][0]["room"], "quiet");
    assert_eq!(body["rooms"][1]["room"], "busy");
    assert_eq!(body["rooms"][1]["headSeq"], "1");
    assert_eq!(body["rooms"][1]["lastMessage"]["body"], "hello ann");
    let cursor = body["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, rest) = cluster
        .gateway(0)
        .get(
            &cluster.token("ann"),
            &format!("/v1/me/rooms?cursor={cursor}"),
        )
        .await;
    assert_eq!(rest["rooms"][0]["room"], "fresh");
    assert_eq!(rest["rooms"][1]["room"], "empty");
    assert!(rest.get("nextCursor").is_none(), "{rest}");

    let urls = [cluster.gateway(0).ws_url(), cluster.gateway(1).ws_url()];
    let options = ClientOptions::new(urls, cluster.token("ann"), ClientEncoding::Proto);
    let (client, _messages) = Client::connect(options);
    let first = client.rooms(None, Some(3)).await.unwrap();
    let second = client
        .rooms(Some(&first.next_cursor), Some(3))
        .await
        .unwrap();
    let names: Vec<String> = first
        .rooms
        .iter()
        .chain(&second.rooms)
        .map(|r| r.room.clone())
        .collect();
    assert_eq!(names, ["quiet", "busy", "fresh", "empty"]);
    assert!(second.next_cursor.is_empty());
    client.close();
}

/// Stages `count` rooms of ann's straight in Postgres: rooms r001.. in
/// order of activity, newest first; the even ones have a message (whose
/// time is their activity), the odd ones none (their creation is).
async fn stage_rooms(cluster: &Cluster, count: i32) {
    cluster
        .postgres
        .client()
        .await
        .execute(
            "WITH r AS (SELECT i, 'r' || lpad(i::text, 3, '0') AS id FROM generate_series(1, $1) i), \
             rooms_in AS (INSERT INTO rooms (id, last_seq, created_at) \
                 SELECT id, (i % 2 = 0)::int, now() - i * interval '1 minute' FROM r), \
             members_in AS (INSERT INTO members (room_id, user_id) SELECT id, 'ann' FROM r) \
             INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at) \
                 SELECT id, 1, gen_random_uuid(), 'ann', 'm' || i, 'hello ' || i, \
                     now() - i * interval '1 minute' + interval '30 seconds' \
                 FROM r WHERE i % 2 = 0",
            &[&count],
        )
        .await
        .unwrap();
}

fn expected(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("r{i:03}")).collect()
}

/// 500 rooms, walked 50 at a time: each page is one statement (counted in
/// the Postgres log with `log_statement = all`), every room comes once in
/// order. New messages during a walk move no room twice and skip none:
/// the walk keeps the order of its first page's moment; a fresh walk
/// shows the rooms that spoke on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_rooms_walk_one_statement_a_page_and_new_activity_moves_nothing_mid_walk() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    stage_rooms(&cluster, 500).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    list(&mut ann, "", Some(1)).await.unwrap();
    cluster.postgres.log_statements("all").await;
    // Logging starts when each session next reads its settings: wait until
    // a page's statement shows, then count from there.
    const MARK: &str = "WITH t AS (SELECT coalesce($2::int8";
    let deadline = Instant::now() + Duration::from_secs(10);
    let from = loop {
        list(&mut ann, "", Some(1)).await.unwrap();
        let log = cluster.postgres.log();
        if log.contains(MARK) {
            break log.len();
        }
        assert!(Instant::now() < deadline, "statements never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (rooms, pages) = walk(&mut ann, 50).await;
    assert_eq!(rooms, expected(500));
    assert_eq!(pages, 10);
    let log = cluster.postgres.log()[from..].to_owned();
    let statements: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("LOG:  execute"))
        .collect();
    assert_eq!(
        statements.iter().filter(|l| l.contains(MARK)).count(),
        pages,
        "{log}"
    );
    assert!(
        statements
            .iter()
            .all(|l| l.contains(MARK) || !l.contains("members")),
        "no other statement read the rooms: {statements:#?}"
    );
    cluster.postgres.log_statements("none").await;

    // A walk that meets new activity: a room not reached yet (r400) and one
    // already passed (r010) get messages after the first page.
    let mut seen = Vec::new();
    let first = list(&mut ann, "", Some(50)).await.unwrap();
    seen.extend(first.rooms.into_iter().map(|r| r.room));
    ann.send_and_wait("r400", "new-400", "news").await.unwrap();
    ann.send_and_wait("r010", "new-010", "news").await.unwrap();
    let mut cursor = first.next_cursor;
    while !cursor.is_empty() {
        let page = list(&mut ann, &cursor, Some(50)).await.unwrap();
        for room in &page.rooms {
            if room.room == "r400" {
                let last = room.last_message.as_ref().unwrap();
                assert_eq!(last.body, "news", "the last entry is the current one");
            }
        }
        seen.extend(page.rooms.into_iter().map(|r| r.room));
        cursor = page.next_cursor;
    }
    assert_eq!(seen, expected(500), "each room once, in the walk's order");
    let fresh = list(&mut ann, "", Some(3)).await.unwrap();
    let top: Vec<&str> = fresh.rooms.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(
        top,
        ["r010", "r400", "r001"],
        "a new walk shows them on top"
    );
}

/// Malformed cursors and limits 0 and 201 are `invalid_argument` on both
/// encodings and 400 over HTTP; the socket carries on; the service token
/// has no rooms (403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cursors_and_limits_are_invalid_arguments() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster.create_room("lobby", &["ann"]).await;
    let rooms_cursor = {
        let mut ann = cluster.gateway(0).connect("ann").await;
        cluster.create_room("hall", &["ann"]).await;
        list(&mut ann, "", Some(1)).await.unwrap().next_cursor
    };
    assert!(!rooms_cursor.is_empty());
    for (gateway, encoding) in [(0, Encoding::Json), (1, Encoding::Proto)] {
        let mut ann = cluster.gateway(gateway).connect_with("ann", encoding).await;
        let forged: String = "rooms1\nx\ny\nlobby"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        let bad = [
            ("zz-not-hex", None),
            ("6e6f", None),
            (&rooms_cursor[1..], None),
            (&forged[..], None),
            ("", Some(0)),
            ("", Some(201)),
        ];
        for (cursor, limit) in bad {
            let e = list(&mut ann, cursor, limit).await.unwrap_err();
            assert_eq!(
                e.code, "invalid_argument",
                "{cursor:?} {limit:?}: {}",
                e.message
            );
        }
        let page = list(&mut ann, "", Some(200)).await.unwrap();
        assert_eq!(page.rooms.len(), 2, "the socket carries on");
        ann.send_and_wait("lobby", &format!("after-{gateway}"), "still here")
            .await
            .unwrap();
    }
    let token = cluster.token("ann");
    for query in ["cursor=zz", "limit=0", "limit=201", "limit=x"] {
        let (status, body) = cluster
            .gateway(1)
            .get(&token, &format!("/v1/me/rooms?{query}"))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_argument")),
            "{query}"
        );
    }
    let (status, _) = cluster.gateway(0).get(ADMIN_TOKEN, "/v1/me/rooms").await;
    assert_eq!(status, 403);
    let (status, _) = cluster.gateway(0).get("nope", "/v1/me/rooms").await;
    assert_eq!(status, 401);
    let stored = cluster.stored("lobby").await;
    assert_eq!(stored.len(), 2, "the two sends, nothing else");
}
