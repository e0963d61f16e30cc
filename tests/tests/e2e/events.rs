//! Message events: edits, deletes, reactions and replies are entries of the
//! room's sequence, each applied once per client_msg_id, delivered live and
//! replayed in order; history, the Redis window and search show every
//! message as it stands; what the rules refuse stores nothing.

use chat_client::Timeline;
use chat_proto::v1::{
    client_frame::Kind as Ask, server_frame::Kind, History, HistoryPage, Message, Search,
};
use chat_protocol::{codec::Encoding, RoomId, Seq};
use chat_tests::{
    assert_gap_free,
    entries::{delete, edit, react, reply},
    Cluster, ClusterOptions, Frames, Session, ADMIN_TOKEN, STEP,
};

/// The newest page of the room's history, as `session`'s user sees it.
async fn page(session: &mut Session, room: &str) -> HistoryPage {
    let ask = Ask::History(History {
        room: room.into(),
        limit: Some(200),
        ..History::default()
    });
    match session.ask(ask).await {
        Kind::HistoryPage(page) => page,
        other => panic!("expected a history page, got {other:?}"),
    }
}

/// The chat messages of a page (as they stand).
fn chat_messages(page: &HistoryPage) -> Vec<Message> {
    page.messages
        .iter()
        .filter(|m| m.kind.is_empty())
        .cloned()
        .collect()
}

fn timeline_of(user: &str, entries: &[Message]) -> Vec<Message> {
    let mut timeline = Timeline::new(user);
    for e in entries {
        timeline.apply(e);
    }
    timeline.messages().cloned().collect()
}

/// A message, an answer to it, an edit (resent: applied once), reactions
/// (a repeat changing nothing) and a delete, from two users on two
/// gateways in both encodings: each is an entry with its own seq, live on
/// both sockets in one gap-free order; a client applying them live, and one
/// replaying the room from the start, both end with what history shows;
/// the Redis window holds what Postgres holds; search finds the new text only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_entries_applied_once_and_history_shows_messages_as_they_stand() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster.create_room("team", &["ann", "bob", "cat"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    // Each user watches the room from a second socket of their own, which
    // only reads: the first one's replies skip what is pushed meanwhile.
    let mut ann_watch = cluster.gateway(0).connect("ann").await;
    let mut bob_watch = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    ann_watch.join("team").await;
    bob_watch.join("team").await;

    let first = ann.send_and_wait("team", "a1", "helo world").await.unwrap();
    assert_eq!(first.seq, 1);
    let answer = bob.entry(reply("team", "b1", "hi ann", 1)).await.unwrap();
    let edited = ann
        .entry(edit("team", "a2", 1, "hello world"))
        .await
        .unwrap();
    let again = ann
        .entry(edit("team", "a2", 1, "hello world"))
        .await
        .unwrap();
    assert_eq!(
        (again.seq, again.message_id.as_str()),
        (edited.seq, edited.message_id.as_str()),
        "a resent edit is applied once"
    );
    bob.entry(react("team", "b2", 1, "👍", false))
        .await
        .unwrap();
    ann.entry(react("team", "a3", 1, "👍", false))
        .await
        .unwrap();
    ann.entry(react("team", "a4", 1, "🎉", false))
        .await
        .unwrap();
    ann.entry(react("team", "a5", 1, "🎉", true)).await.unwrap();
    let repeat = ann
        .entry(react("team", "a6", 1, "👍", false))
        .await
        .unwrap();
    assert_eq!(repeat.seq, 0, "a reaction already there changes nothing");
    let gone = bob
        .entry(delete("team", "b3", answer.seq as i64))
        .await
        .unwrap();
    assert_eq!(
        (answer.seq, edited.seq, gone.seq),
        (2, 3, 8),
        "each event took the next seq; the repeat took none"
    );

    let (ann_live, _) = ann_watch.collect_messages(8, STEP).await;
    let (bob_live, _) = bob_watch.collect_messages(8, STEP).await;
    assert_gap_free(&ann_live, 8, "ann");
    assert_gap_free(&bob_live, 8, "bob");
    let kinds: Vec<&str> = ann_live.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "",
            "",
            "message_edited",
            "reaction_added",
            "reaction_added",
            "reaction_added",
            "reaction_removed",
            "message_deleted"
        ]
    );
    assert_eq!(ann_live[1].reply_to, 1, "the answer names its message");
    assert_eq!(ann_live[1].reply_to_id, first.message_id);
    assert_eq!(
        (ann_live[2].target_seq, ann_live[2].target_id.as_str()),
        (1, first.message_id.as_str())
    );
    assert_eq!(ann_live[3].emoji, "👍");

    let history = page(&mut ann, "team").await;
    let shown = chat_messages(&history);
    assert_eq!(shown.len(), 2);
    let (m1, m2) = (&shown[0], &shown[1]);
    assert_eq!(m1.body, "hello world");
    assert!(m1.edited_ts_ms > 0);
    assert_eq!(m1.reply_count, 1);
    assert_eq!(
        m1.reactions
            .iter()
            .map(|r| (r.emoji.as_str(), r.count, r.mine))
            .collect::<Vec<_>>(),
        [("👍", 2, true)]
    );
    assert!(m2.deleted && m2.body.is_empty());
    assert_eq!(m2.changed_seq, 8);
    assert_eq!(timeline_of("ann", &ann_live), shown, "live ends as history");
    let bob_history = chat_messages(&page(&mut bob, "team").await);
    assert_eq!(timeline_of("bob", &bob_live), bob_history);
    assert!(bob_history[0].reactions[0].mine, "bob's 👍 is his");

    // A client that replays the room from its start gets the messages as
    // they stand, then the events; it applies none twice.
    let mut cat = cluster
        .gateway(1)
        .connect_with("cat", Encoding::Proto)
        .await;
    cat.join_since("team", 0).await;
    let (replayed, _) = cat.collect_messages(8, STEP).await;
    assert_gap_free(&replayed, 8, "cat");
    let cat_history = chat_messages(&page(&mut cat, "team").await);
    assert_eq!(timeline_of("cat", &replayed), cat_history);
    assert!(!cat_history[0].reactions[0].mine);

    // The window in Redis is what Postgres holds, entry for entry.
    let stored = cluster
        .store()
        .history_page(&RoomId::parse("team").unwrap(), Seq::new(1), 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 8);
    assert_eq!(cluster.window("team").await, stored);

    // HTTP shows the same, "mine" for the asker.
    let (status, body) = cluster
        .gateway(1)
        .get(&cluster.token("ann"), "/v1/rooms/team/messages")
        .await;
    assert_eq!(status, 200);
    let first_json = &body["messages"][0];
    assert_eq!(first_json["body"], "hello world");
    assert_eq!(first_json["replyCount"], 1);
    assert_eq!(
        first_json["reactions"],
        serde_json::json!([{ "emoji": "👍", "count": 2, "mine": true }])
    );
    assert_eq!(body["messages"][1]["deleted"], true);

    // Search knows the new text only, and nothing of a deleted message.
    let search = |query: &str| {
        Ask::Search(Search {
            query: query.into(),
            room: "team".into(),
            ..Search::default()
        })
    };
    for (query, hits) in [("hello", 1), ("helo", 0), ("ann", 0)] {
        match ann.ask(search(query)).await {
            Kind::SearchResults(found) => assert_eq!(found.hits.len(), hits, "{query}"),
            other => panic!("expected searchResults, got {other:?}"),
        }
    }
}

/// A member with `can_delete_other_messages` deletes another's message;
/// without it, a member cannot; the service's moderation flag is a member
/// flag like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_anothers_message_takes_the_flag() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("mod", &["ann", "bob", "mia"]).await;
    let (status, _) = cluster
        .gateway(0)
        .call(
            ADMIN_TOKEN,
            reqwest::Method::PUT,
            "/v1/rooms/mod/members/mia/access",
            Some(serde_json::json!({ "grant": ["can_delete_other_messages"] })),
        )
        .await;
    assert_eq!(status, 204, "mia's role_changed is seq 1");
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut bob = cluster
        .gateway(0)
        .connect_with("bob", Encoding::Proto)
        .await;
    let mut mia = cluster.gateway(0).connect("mia").await;
    let spam = ann.send_and_wait("mod", "a1", "spam").await.unwrap();
    assert_eq!(spam.seq, 2);
    let refused = bob.entry(delete("mod", "b1", 2)).await.unwrap_err();
    assert_eq!(refused.code, "forbidden", "{}", refused.message);
    assert!(refused.message.contains("can_delete_other_messages"));
    let deleted = mia.entry(delete("mod", "m1", 2)).await.unwrap();
    assert_eq!(deleted.seq, 3, "bob's refusal took no seq");
    let stored = cluster.stored("mod").await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1].3, "", "the body is gone");
}

/// The `chat` CLI replies, edits, reacts and deletes, one command each,
/// and its history shows the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_replies_edits_reacts_and_deletes() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("cli", &["ann"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    ann.send_and_wait("cli", "a1", "first draft").await.unwrap();
    assert_eq!(
        cluster
            .chat("ann", &["reply", "cli", "1", "an answer"])
            .await
            .trim(),
        "stored as #2"
    );
    cluster
        .chat("ann", &["edit", "cli", "1", "final text"])
        .await;
    cluster.chat("ann", &["react", "cli", "1", "👍"]).await;
    assert_eq!(
        cluster
            .chat("ann", &["react", "cli", "1", "👍"])
            .await
            .trim(),
        "nothing to change"
    );
    cluster.chat("ann", &["delete", "cli", "2"]).await;
    let printed = cluster.chat("ann", &["history", "cli"]).await;
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines,
        [
            "#1 <ann> final text (edited) 👍1",
            "#2 <ann> [deleted]",
            "#3 <ann> [edited #1] final text",
            "#4 <ann> [👍 on #1]",
            "#5 <ann> [deleted #2]",
        ]
    );
}
