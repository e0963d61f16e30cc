//! Full-text search (`search`, `GET /v1/search`,
//! `GET /v1/rooms/{room}/search`): chat messages of one's own rooms
//! only, best match first, then newest, paged; changes to members are not
//! searched; bad queries, cursors and limits refused, other rooms
//! forbidden.

use chat_client::{Client, ClientEncoding, ClientOptions};
use chat_proto::v1::{
    client_frame, server_frame::Kind, Error as ErrorFrame, Search, SearchResults,
};
use chat_protocol::codec::Encoding;
use chat_tests::{cluster::ADMIN_TOKEN, Cluster, ClusterOptions, Session};

/// A page of hits for `query` (in `room` when not empty), or the error.
async fn search(
    session: &mut Session,
    query: &str,
    room: &str,
    cursor: &str,
    limit: Option<u32>,
) -> Result<SearchResults, ErrorFrame> {
    let request = client_frame::Kind::Search(Search {
        query: query.into(),
        room: room.into(),
        cursor: cursor.into(),
        limit,
    });
    match session.ask(request).await {
        Kind::SearchResults(results) => Ok(results),
        Kind::Error(e) => Err(e),
        other => panic!("expected searchResults, got {other:?}"),
    }
}

fn bodies(results: &SearchResults) -> Vec<String> {
    results
        .hits
        .iter()
        .map(|h| h.message.as_ref().unwrap().body.clone())
        .collect()
}

/// Hits come from the asker's rooms only, best rank first, then newest;
/// words are stemmed; a change to a member (whose body names the member)
/// is not a hit; the same over both encodings, HTTP and the client library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_chat_messages_of_my_rooms_best_first_then_newest() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster.create_room("team", &["ann", "bob"]).await;
    let added = reqwest::Client::new()
        .put(cluster.gateway(0).url("/v1/rooms/team/members/deploy"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        added.status().as_u16(),
        204,
        "an event whose member is `deploy`"
    );
    cluster.create_room("ops", &["ann"]).await;
    cluster.create_room("secret", &["carol"]).await;
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut carol = cluster.gateway(0).connect("carol").await;
    bob.send_and_wait("team", "t1", "the deploy is running late")
        .await
        .unwrap();
    bob.send_and_wait("team", "t2", "deploy deploy deploy now")
        .await
        .unwrap();
    carol
        .send_and_wait("secret", "s1", "deploy the secret plan")
        .await
        .unwrap();
    ann.send_and_wait("ops", "o1", "deploy finished")
        .await
        .unwrap();

    let found = search(&mut ann, "deploy", "", "", None).await.unwrap();
    assert_eq!(
        bodies(&found),
        [
            "deploy deploy deploy now",
            "deploy finished",
            "the deploy is running late"
        ],
        "best first, then newest; never carol's room, never the member named deploy"
    );
    assert!(found.hits[0].rank > found.hits[1].rank);
    assert_eq!(found.hits[1].rank, found.hits[2].rank);
    assert!(found.next_cursor.is_empty());
    let hit = found.hits[0].message.as_ref().unwrap();
    assert_eq!(
        (hit.room.as_str(), hit.sender.as_str(), hit.seq),
        ("team", "bob", 3)
    );

    let bobs = search(&mut bob, "deploy", "", "", None).await.unwrap();
    assert_eq!(
        bodies(&bobs),
        ["deploy deploy deploy now", "the deploy is running late"]
    );
    let stemmed = search(&mut bob, "runs", "team", "", None).await.unwrap();
    assert_eq!(bodies(&stemmed), ["the deploy is running late"]);
    let phrase = search(&mut ann, "\"deploy finished\" -late", "", "", None)
        .await
        .unwrap();
    assert_eq!(bodies(&phrase), ["deploy finished"]);
    let ops = search(&mut ann, "deploy", "ops", "", None).await.unwrap();
    assert_eq!(bodies(&ops), ["deploy finished"]);
    let e = search(&mut bob, "deploy", "ops", "", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, "forbidden");
    let none = search(&mut ann, "nothing-like-it", "", "", None)
        .await
        .unwrap();
    assert!(none.hits.is_empty());

    let token = cluster.token("ann");
    let (status, body) = cluster
        .gateway(1)
        .get(&token, "/v1/search?q=deploy&limit=2")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["hits"][0]["message"]["body"],
        "deploy deploy deploy now"
    );
    assert_eq!(body["hits"][0]["message"]["seq"], "3");
    assert!(body["hits"][0]["rank"].as_f64().unwrap() > 0.0);
    let cursor = body["nextCursor"].as_str().expect("a second page");
    let (_, rest) = cluster
        .gateway(1)
        .get(&token, &format!("/v1/search?q=deploy&cursor={cursor}"))
        .await;
    assert_eq!(
        rest["hits"][0]["message"]["body"],
        "the deploy is running late"
    );
    let (status, body) = cluster
        .gateway(1)
        .get(&token, "/v1/rooms/ops/search?q=finished")
        .await;
    assert_eq!(
        (status, body["hits"][0]["message"]["body"].as_str()),
        (200, Some("deploy finished"))
    );
    let (status, body) = cluster
        .gateway(1)
        .get(&token, "/v1/rooms/secret/search?q=deploy")
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));

    let urls = [cluster.gateway(1).ws_url(), cluster.gateway(0).ws_url()];
    let (client, _messages) = Client::connect(ClientOptions::new(
        urls,
        cluster.token("bob"),
        ClientEncoding::Json,
    ));
    let found = client
        .search("late", Some("team"), None, None)
        .await
        .unwrap();
    assert_eq!(bodies(&found), ["the deploy is running late"]);
    client.close();
}

/// 120 equally good hits come 50, 50 and 20 a page, newest first, each
/// once, in both encodings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_pages_through_every_hit_once() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster.create_room("team", &["ann", "bob"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    for i in 0..120 {
        ann.send_and_wait("team", &format!("n{i}"), &format!("needle number {i}"))
            .await
            .unwrap();
        if i % 10 == 0 {
            ann.send_and_wait("team", &format!("h{i}"), "haystack")
                .await
                .unwrap();
        }
    }
    for (gateway, encoding) in [(0, Encoding::Json), (1, Encoding::Proto)] {
        let mut bob = cluster.gateway(gateway).connect_with("bob", encoding).await;
        let (mut seqs, mut sizes, mut cursor) = (Vec::new(), Vec::new(), String::new());
        loop {
            let page = search(&mut bob, "needle", "team", &cursor, Some(50))
                .await
                .unwrap();
            sizes.push(page.hits.len());
            seqs.extend(page.hits.iter().map(|h| h.message.as_ref().unwrap().seq));
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
        assert_eq!(sizes, [50, 50, 20]);
        assert_eq!(seqs.len(), 120);
        assert!(
            seqs.windows(2).all(|w| w[0] > w[1]),
            "newest first, each once: {seqs:?}"
        );
    }
}

/// Empty, blank, over-long (257 bytes) and NUL queries, malformed cursors,
/// limits 0 and 201 and bad room ids are `invalid_argument`; a room one is
/// not in is `forbidden`; over both encodings and HTTP; the socket
/// carries on and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_searches_are_refused() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster.create_room("team", &["ann"]).await;
    cluster.create_room("secret", &["carol"]).await;
    let long = "a".repeat(257);
    let max = "a".repeat(256);
    for (gateway, encoding) in [(0, Encoding::Json), (1, Encoding::Proto)] {
        let mut ann = cluster.gateway(gateway).connect_with("ann", encoding).await;
        let bad = [
            ("", "", "", None),
            ("   ", "", "", None),
            (&long[..], "", "", None),
            ("a\0b", "", "", None),
            ("word", "", "zz", None),
            ("word", "", "6e6f", None),
            ("word", "", "", Some(0)),
            ("word", "", "", Some(201)),
            ("word", "bad room!", "", None),
        ];
        for (query, room, cursor, limit) in bad {
            let e = search(&mut ann, query, room, cursor, limit)
                .await
                .unwrap_err();
            assert_eq!(
                e.code, "invalid_argument",
                "{query:?} {room:?} {cursor:?} {limit:?}"
            );
        }
        let e = search(&mut ann, "word", "secret", "", None)
            .await
            .unwrap_err();
        assert_eq!(e.code, "forbidden");
        assert!(search(&mut ann, &max, "team", "", Some(200))
            .await
            .unwrap()
            .hits
            .is_empty());
        ann.send_and_wait("team", &format!("after-{gateway}"), "still here")
            .await
            .unwrap();
    }
    let token = cluster.token("ann");
    for query in [
        "",
        "q=",
        "q=%20",
        &format!("q={long}"),
        "q=a&cursor=zz",
        "q=a&limit=0",
        "q=a&limit=201",
    ] {
        let (status, body) = cluster
            .gateway(1)
            .get(&token, &format!("/v1/search?{query}"))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_argument")),
            "{query}"
        );
    }
    let (status, _) = cluster
        .gateway(1)
        .get(&token, "/v1/rooms/secret/search?q=a")
        .await;
    assert_eq!(status, 403);
    let (status, _) = cluster.gateway(1).get(ADMIN_TOKEN, "/v1/search?q=a").await;
    assert_eq!(status, 403, "the service has no rooms");
    assert_eq!(cluster.stored("team").await.len(), 2, "the two sends");
    assert!(cluster.stored("secret").await.is_empty());
}
