//! The storing statement itself, against a real Postgres: seqs, idempotency
//! inside one batch and across batches, rooms that do not exist, senders who
//! may not send, and which failures are worth retrying.

use chat_config::Secret;
use chat_protocol::{kind::EntryKind, RoomId};
use chat_store::{
    Limits, PostgresConfig, {NewMessage, Persisted, Refusal, Store, StoreError, AT_ONCE_FROM},
};
use chat_tests::{Cluster, ClusterOptions};
use tokio_postgres::error::SqlState;

fn send(room: &str, sender: &str, id: &str) -> NewMessage {
    NewMessage {
        room: RoomId::parse(room).unwrap(),
        sender: sender.into(),
        client_msg_id: id.into(),
        body: format!("{sender}:{id}"),
        kind: EntryKind::Message,
        target: None,
        id: None,
    }
}

/// A store on the cluster's Postgres, as a worker holds one.
fn store_of(cluster: &Cluster, pool_size: usize) -> Store {
    Store::new(&PostgresConfig {
        url: Secret::new(cluster.postgres.url()),
        pool_size: pool_size.try_into().expect("a pool of one or more"),
        read_url: None,
        ..PostgresConfig::default()
    })
    .unwrap()
}

/// Checks that each room's counter is its last stored seq: a seq reserved
/// for a resend or a refused send was handed back, so the next is not a gap.
async fn assert_heads_match(cluster: &Cluster, store: &Store, rooms: &[&str]) {
    for &room in rooms {
        let head = store
            .room_head(&RoomId::parse(room).unwrap())
            .await
            .unwrap();
        let last = cluster.stored(room).await.last().map(|m| m.0 as u64);
        assert_eq!(
            head.map(|s| s.get()),
            Some(last.unwrap_or(0)),
            "room {room}"
        );
    }
}

fn seq_of(p: &Persisted) -> (u64, bool) {
    match p {
        Persisted::Stored { message, fresh } => (message.seq, *fresh),
        other => panic!("not stored: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_gets_consecutive_seqs_per_room_and_stores_each_key_once() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("a", &["u1", "u3"]).await;
    cluster.create_room("b", &["u1", "u2"]).await;
    let store = store_of(&cluster, 2);
    let out = store
        .persist(&[
            send("b", "u1", "x"),
            send("a", "u1", "x"),
            send("b", "u2", "x"),
            send("b", "u1", "x"), // the same key again, in the same batch
            send("nope", "u1", "x"),
            send("a", "u1", "y"),
        ])
        .await
        .unwrap();
    assert_eq!(seq_of(&out[0]), (1, true));
    assert_eq!(seq_of(&out[1]), (1, true));
    assert_eq!(seq_of(&out[2]), (2, true));
    assert_eq!(seq_of(&out[3]), (1, false));
    assert_eq!(out[4], Persisted::RoomMissing);
    assert_eq!(seq_of(&out[5]), (2, true));
    // b reserved three seqs and used two; a, one of each.
    assert_heads_match(&cluster, &store, &["a", "b"]).await;

    // A later batch: a resend finds its row (with the stored body), new keys continue the count.
    let mut resend = send("a", "u1", "y");
    resend.body = "changed".into();
    let again = store
        .persist(&[resend, send("a", "u3", "z")])
        .await
        .unwrap();
    match &again[0] {
        Persisted::Stored { message, fresh } => {
            assert_eq!(
                (message.seq, *fresh, message.body.as_str()),
                (2, false, "u1:y")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seq_of(&again[1]), (3, true));
    assert_eq!(cluster.stored("a").await.len(), 3);
    assert_eq!(cluster.stored("b").await.len(), 2);
}

/// A batch of `AT_ONCE_FROM` chat messages or more is one INSERT
/// (migration V17); a resend among new sends makes that INSERT fail on the
/// idempotency key, and the batch is answered entry by entry instead, with
/// no seq lost. Answers and heads are as for a small batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_of_new_sends_is_stored_at_once_and_a_resend_among_them_still_lands_once() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("a", &["u1", "u2"]).await;
    cluster.create_room("b", &["u1"]).await;
    let store = store_of(&cluster, 2);
    // a, b, a, b, ... with one send to a room that does not exist.
    let mut first: Vec<NewMessage> = (0..AT_ONCE_FROM)
        .map(|i| {
            send(
                ["a", "b"][i % 2],
                ["u1", "u1", "u2", "u1"][i % 4],
                &format!("m{i}"),
            )
        })
        .collect();
    first.insert(5, send("nope", "u1", "lost"));
    let out = store.persist(&first).await.unwrap();
    assert_eq!(out[5], Persisted::RoomMissing);
    let seqs: Vec<(u64, bool)> = out
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, p)| seq_of(p))
        .collect();
    let expected: Vec<(u64, bool)> = (0..AT_ONCE_FROM as u64)
        .map(|i| (i / 2 + 1, true))
        .collect();
    assert_eq!(seqs, expected, "each room counts on in batch order");
    assert_heads_match(&cluster, &store, &["a", "b"]).await;

    let half = AT_ONCE_FROM as u64 / 2;
    let mut again: Vec<NewMessage> = (0..AT_ONCE_FROM)
        .map(|i| send("a", "u1", &format!("n{i}")))
        .collect();
    again.insert(3, send("a", "u2", "m2")); // stored by the batch above, as a's seq 2
    let out = store.persist(&again).await.unwrap();
    assert_eq!(seq_of(&out[3]), (2, false));
    let fresh: Vec<u64> = out
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, p)| match seq_of(p) {
            (seq, true) => seq,
            other => panic!("a new send answered as {other:?}"),
        })
        .collect();
    let expected: Vec<u64> = (half + 1..=half + AT_ONCE_FROM as u64).collect();
    assert_eq!(fresh, expected, "no seq lost to the undone INSERT");
    assert_heads_match(&cluster, &store, &["a", "b"]).await;
    assert_eq!(
        cluster.stored("a").await.len() as u64,
        half + AT_ONCE_FROM as u64
    );
    assert_eq!(cluster.stored("b").await.len() as u64, half);
}

/// The store has the last word on who may send: a stranger's send and the
/// send of a member whose `can_send_messages` was revoked are refused and
/// take no seq, while a resend of what that member stored before is still
/// answered as stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_who_may_send_are_stored() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("a", &["u1", "u2"]).await;
    let store = store_of(&cluster, 1);
    let out = store
        .persist(&[send("a", "u1", "x"), send("a", "u2", "x")])
        .await
        .unwrap();
    assert_eq!((seq_of(&out[0]), seq_of(&out[1])), ((1, true), (2, true)));
    cluster
        .postgres
        .client()
        .await
        .execute(
            "UPDATE members SET permissions = 0 WHERE room_id = 'a' AND user_id = 'u2'",
            &[],
        )
        .await
        .unwrap();
    let out = store
        .persist(&[
            send("a", "stranger", "s"),
            send("a", "u2", "y"),
            send("a", "u2", "x"),
            send("a", "u1", "y"),
        ])
        .await
        .unwrap();
    assert_eq!(out[0], Persisted::Refused(Refusal::CannotSend));
    assert_eq!(out[1], Persisted::Refused(Refusal::CannotSend));
    assert_eq!(seq_of(&out[2]), (2, false), "stored before the revoke");
    assert_eq!(seq_of(&out[3]), (3, true), "no seq was taken by a refusal");
    assert_heads_match(&cluster, &store, &["a"]).await;
    let next = store.persist(&[send("a", "u1", "z")]).await.unwrap();
    assert_eq!(seq_of(&next[0]), (4, true), "the room's count has no gap");
    assert_eq!(cluster.stored("a").await.len(), 4);
}

/// Two workers storing into the same rooms at once (one naming them in
/// reverse order, each batch with a resend and a refused send) neither
/// deadlock nor leave a gap: every room's seqs run 1..n, each key once, and
/// its counter is its last seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_over_the_same_rooms_neither_deadlock_nor_leave_a_gap() {
    const ROUNDS: usize = 40;
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    let rooms = ["a", "b", "c", "d"];
    for room in rooms {
        cluster.create_room(room, &["u1", "u2"]).await;
    }
    let store = store_of(&cluster, 4);
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let mut batch: Vec<NewMessage> = rooms
                        .iter()
                        .map(|room| send(room, "u1", &format!("{w}-{round}")))
                        .collect();
                    if w == 1 {
                        batch.reverse();
                    }
                    if round > 0 {
                        batch.push(send(rooms[round % 4], "u1", &format!("{w}-{}", round - 1)));
                    }
                    batch.push(send(rooms[(round + w) % 4], "stranger", "s"));
                    store.persist(&batch).await.expect("no deadlock, no clash");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    for room in rooms {
        let stored = cluster.stored(room).await;
        let seqs: Vec<i64> = stored.iter().map(|m| m.0).collect();
        assert_eq!(
            seqs,
            (1..=2 * ROUNDS as i64).collect::<Vec<_>>(),
            "room {room}"
        );
        let keys: std::collections::HashSet<&str> = stored.iter().map(|m| m.2.as_str()).collect();
        assert_eq!(keys.len(), 2 * ROUNDS, "room {room}: each key once");
    }
    assert_heads_match(&cluster, &store, &rooms).await;
}

/// Deleting a room (an operator's act: the system never does it) deletes
/// its messages, so a room made again under the same id starts a fresh
/// sequence and its old keys are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_room_takes_its_messages_with_it() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("a", &["u1"]).await;
    let store = store_of(&cluster, 1);
    let out = store
        .persist(&[send("a", "u1", "x"), send("a", "u1", "y")])
        .await
        .unwrap();
    assert_eq!(seq_of(&out[1]), (2, true));
    let pg = cluster.postgres.client().await;
    pg.execute("DELETE FROM rooms WHERE id = 'a'", &[])
        .await
        .unwrap();
    assert!(cluster.stored("a").await.is_empty());
    let out = store.persist(&[send("a", "u1", "z")]).await.unwrap();
    assert_eq!(out[0], Persisted::RoomMissing);

    pg.batch_execute(
        "INSERT INTO rooms (id) VALUES ('a'); INSERT INTO members (room_id, user_id) VALUES ('a', 'u1')",
    )
    .await
    .unwrap();
    let out = store.persist(&[send("a", "u1", "x")]).await.unwrap();
    assert_eq!(
        seq_of(&out[0]),
        (1, true),
        "a fresh sequence; the old key is gone"
    );
}

/// What Postgres refuses as input (here a NUL byte, SQLSTATE 22021) fails
/// the whole batch, stores none of it, and is not worth retrying; a store
/// that cannot be reached is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_input_is_not_retryable_and_an_unreachable_store_is() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("a", &["u1"]).await;
    let store = store_of(&cluster, 1);
    let mut refused = send("a", "u1", "nul");
    refused.body = "before \0 after".into();
    let e = store
        .persist(&[send("a", "u1", "fine"), refused])
        .await
        .expect_err("Postgres refuses a NUL byte in text");
    let code = match &e {
        StoreError::Db(db) => db.code().cloned(),
        other => panic!("{other:?}"),
    };
    assert_eq!(code, Some(SqlState::CHARACTER_NOT_IN_REPERTOIRE));
    assert!(!e.is_retryable());
    assert!(
        cluster.stored("a").await.is_empty(),
        "nothing of the batch is stored"
    );

    let closed_port = chat_tests::free_port();
    let unreachable = Store::new(&PostgresConfig {
        url: Secret::new(format!("postgres://postgres@127.0.0.1:{closed_port}/chat")),
        pool_size: std::num::NonZeroUsize::MIN,
        read_url: None,
        ..PostgresConfig::default()
    })
    .unwrap();
    let e = unreachable
        .persist(&[send("a", "u1", "later")])
        .await
        .expect_err("nothing listens there");
    assert!(e.is_retryable(), "{e:?}");
}

/// The road past one Postgres (docs/scaling.md) needs every hot table keyed
/// by room, and every statement on one to name its room: distributed by
/// room (or by its partition), each then runs on one shard. Checks the
/// schema's primary keys, then every statement Postgres saw while two
/// gateways and a worker carried sends, events, history and membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_tables_are_keyed_by_room() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    let pg = cluster.postgres.client().await;
    pg.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .unwrap();
    let keys = pg
        .query(
            "SELECT c.relname::text, a.attname::text
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indrelid
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
              WHERE i.indisprimary AND c.relname = ANY($1)",
            &[&vec!["rooms", "members", "messages", "reactions"]],
        )
        .await
        .unwrap();
    assert_eq!(keys.len(), 4, "every hot table has a primary key");
    for row in &keys {
        let (table, first): (String, String) = (row.get(0), row.get(1));
        let room = if table == "rooms" { "id" } else { "room_id" };
        assert_eq!(first, room, "{table}'s primary key starts with the room");
    }
    pg.batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .unwrap();
    cluster.create_room("hot", &["ann", "bob"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    ann.join("hot").await;
    let first = ann.send_and_wait("hot", "h1", "one").await.unwrap();
    let seq = first.seq as i64;
    let reply = chat_tests::entries::reply("hot", "h2", "two", seq);
    ann.entry(reply).await.unwrap();
    let react = chat_tests::entries::react("hot", "h3", seq, "👍", false);
    ann.entry(react).await.unwrap();
    let (status, _) = cluster
        .gateway(0)
        .get(&cluster.token("bob"), "/v1/rooms/hot/messages?limit=10")
        .await;
    assert_eq!(status, 200);
    let statements = pg
        .query(
            "SELECT query FROM pg_stat_statements
              WHERE query ~* '\\m(rooms|members|messages|reactions)\\M'
                AND query ~* '^\\s*(select|insert|update|delete|with)'
                AND query !~* 'pg_stat_statements|pg_index'",
            &[],
        )
        .await
        .unwrap();
    assert!(statements.len() > 3, "the traffic's statements were seen");
    for row in statements {
        let query: String = row.get(0);
        let names_room = query.contains("room_id") || rooms_by_id(&query);
        assert!(names_room, "a hot statement without its room:\n{query}");
    }
}

/// The rooms table read or written by its own id (`WHERE id = …`,
/// `r.id`, `rooms.id`).
fn rooms_by_id(query: &str) -> bool {
    let q = query.to_lowercase().replace(char::is_whitespace, " ");
    [
        "where id =",
        "where \"id\" operator",
        "r.id",
        "rooms.id",
        "rooms (id",
    ]
    .iter()
    .any(|k| q.contains(k))
}

/// Without default limits, a sweep finds only the rooms with limits of
/// their own that are past them; with defaults, the others too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_past_their_retention_are_found_with_and_without_defaults() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    for room in ["own", "plain"] {
        cluster.create_room(room, &["ann"]).await;
    }
    let store = store_of(&cluster, 2);
    let sends: Vec<NewMessage> = (0..3)
        .flat_map(|i| {
            [
                send("own", "ann", &format!("o{i}")),
                send("plain", "ann", &format!("p{i}")),
            ]
        })
        .collect();
    store.persist(&sends).await.unwrap();
    let client = cluster.postgres.client().await;
    client
        .execute("UPDATE rooms SET retain_count = 1 WHERE id = 'own'", &[])
        .await
        .unwrap();
    let due = |limits| {
        let store = store.clone();
        async move {
            let mut rooms: Vec<String> = (store.retention_due(limits, 10).await.unwrap())
                .into_iter()
                .map(|d| d.room.to_string())
                .collect();
            rooms.sort();
            rooms
        }
    };
    assert_eq!(due(Limits::default()).await, ["own"]);
    let defaults = Limits {
        count: Some(2),
        max_age_secs: None,
    };
    assert_eq!(due(defaults).await, ["own", "plain"]);
    let ages = Limits {
        count: None,
        max_age_secs: Some(3600),
    };
    assert_eq!(due(ages).await, ["own"], "nothing is an hour old");
}
