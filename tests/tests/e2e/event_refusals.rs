//! Bad message events, in both encodings: each gets its code and stores
//! nothing. Some are refused by the gateway (malformed fields, a room one
//! has left), the rest by the store under the room's lock (whose message,
//! which flag, what the target is); either way no seq is taken.

use std::sync::atomic::{AtomicUsize, Ordering};

use chat_proto::v1::client_frame::Kind as Ask;
use chat_protocol::codec::Encoding;
use chat_tests::{entries, Cluster, ClusterOptions, ADMIN_TOKEN};

/// A client_msg_id not used before in this run.
fn fresh_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("e{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn edit(room: &str, seq: i64, body: &str) -> Ask {
    entries::edit(room, &fresh_id(), seq, body)
}

fn delete(room: &str, seq: i64) -> Ask {
    entries::delete(room, &fresh_id(), seq)
}

fn react(room: &str, seq: i64, emoji: &str) -> Ask {
    entries::react(room, &fresh_id(), seq, emoji, false)
}

fn reply(room: &str, to: i64) -> Ask {
    entries::reply(room, &fresh_id(), "re", to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_get_their_code_and_store_nothing() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    for encoding in [Encoding::Json, Encoding::Proto] {
        let room = format!("bad-{encoding:?}").to_lowercase();
        let r = room.as_str();
        cluster.create_room(r, &["ann", "bob", "lea"]).await;
        let gateway = cluster.gateway(0);
        let mut ann = gateway.connect_with("ann", encoding).await;
        let mut bob = gateway.connect_with("bob", encoding).await;
        let lea = gateway.connect_with("lea", encoding).await;
        // 1 ann's, 2 bob's, 3 ann's (deleted at 4), 5 lea leaves.
        ann.send_and_wait(r, "a1", "kept as it is").await.unwrap();
        bob.send_and_wait(r, "b1", "bob's").await.unwrap();
        ann.send_and_wait(r, "a2", "regret").await.unwrap();
        assert_eq!(ann.entry(delete(r, 3)).await.unwrap().seq, 4);
        let path = format!("/v1/rooms/{r}/members/lea");
        let (status, _) = gateway
            .call(ADMIN_TOKEN, reqwest::Method::DELETE, &path, None)
            .await;
        assert_eq!(status, 204, "lea's member_left is seq 5");
        let before = cluster.stored(r).await;
        assert_eq!(before.len(), 5);

        let too_long = "x".repeat(16 * 1024 + 1);
        let long_emoji = "e".repeat(65);
        const ANN: usize = 0;
        const BOB: usize = 1;
        const LEA: usize = 2;
        let cases = [
            (
                BOB,
                edit(r, 1, "mine now"),
                "forbidden",
                "another's message",
            ),
            (BOB, delete(r, 1), "forbidden", "without the flag"),
            (ANN, edit(r, 3, "undo"), "not_found", "a deleted message"),
            (
                BOB,
                react(r, 3, "👍"),
                "not_found",
                "react to a deleted one",
            ),
            (ANN, reply(r, 3), "not_found", "reply to a deleted one"),
            (LEA, react(r, 1, "👍"), "forbidden", "a room she left"),
            (ANN, reply(r, 99), "not_found", "replyTo a seq not there"),
            (ANN, reply(r, 4), "invalid_argument", "replyTo an event"),
            (ANN, edit(r, 4, "x"), "invalid_argument", "edit an event"),
            (
                ANN,
                edit(r, 1, &too_long),
                "invalid_argument",
                "over the limit",
            ),
            (ANN, edit(r, 1, "nul\0"), "invalid_argument", "a NUL"),
            (ANN, edit(r, 0, "x"), "invalid_argument", "seq 0"),
            (ANN, delete(r, -7), "invalid_argument", "a negative seq"),
            (ANN, reply(r, 0), "invalid_argument", "replyTo 0"),
            (ANN, react(r, 1, ""), "invalid_argument", "no emoji"),
            (ANN, react(r, 1, "a b"), "invalid_argument", "a space"),
            (
                ANN,
                react(r, 1, &long_emoji),
                "invalid_argument",
                "65 bytes",
            ),
        ];
        let mut people = [ann, bob, lea];
        for (who, frame, code, what) in cases {
            let refused = people[who].entry(frame).await.unwrap_err();
            assert_eq!(
                refused.code, code,
                "{encoding:?} {what}: {}",
                refused.message
            );
        }
        assert_eq!(
            cluster.stored(r).await,
            before,
            "{encoding:?}: nothing stored, nothing changed"
        );
        // The room goes on: the next entry takes the next seq.
        let next = people[ANN]
            .entry(edit(r, 1, "edited at last"))
            .await
            .unwrap();
        assert_eq!(next.seq, 6);
    }
}
