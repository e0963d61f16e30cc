//! Sends that can never be stored: each goes to the dead-letter stream once,
//! with its original bytes, its reason and its delivery count, and costs no
//! other send anything. Envelopes can reach the ingest stream from anywhere,
//! so these tests publish some straight to JetStream, past the gateway.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use chat_proto::internal::Envelope;
use chat_streams::headers;
use chat_tests::{envelope, header, wait_for, Cluster, ClusterOptions, Frames, STEP};
use prost::Message as _;

/// A user's sends that were acked, checked against what is stored: every
/// acked send is stored, under the seq its ack carried.
async fn assert_acked_and_stored(
    cluster: &Cluster,
    room: &str,
    replies: &[(String, Result<chat_proto::v1::Ack, chat_proto::v1::Error>)],
) {
    let stored = cluster.stored(room).await;
    for (id, reply) in replies {
        let ack = reply
            .as_ref()
            .unwrap_or_else(|e| panic!("send {id} to {room} was not acked: {e:?}"));
        assert!(
            stored
                .iter()
                .any(|(seq, _, cmid, _)| cmid == id && *seq == ack.seq as i64),
            "acked send {id} is stored in {room} under seq {}",
            ack.seq
        );
    }
}

// Longer than 80 lines on purpose: one scenario read top to bottom, each
// step next to what it checks; split up, it would read as scattered fragments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_postgres_refuses_is_dead_lettered_once_and_its_batch_is_stored_in_order() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster
        .create_room("a", &["alice", "carol", "mallory"])
        .await;
    cluster.create_room("b", &["bob"]).await;
    let js = cluster.jetstream().await;
    let stop = Arc::new(AtomicBool::new(false));
    let alice = cluster
        .gateway(0)
        .connect("alice")
        .await
        .chat_steadily("a", &stop);
    let bob = cluster
        .gateway(0)
        .connect("bob")
        .await
        .chat_steadily("b", &stop);

    // Room a's row is locked, so its lane waits in a transaction while a
    // burst queues behind it; the burst is then stored as one batch with the
    // send Postgres refuses (a NUL byte) in its middle.
    let pg = cluster.postgres.client().await;
    pg.batch_execute("BEGIN; SELECT 1 FROM rooms WHERE id = 'a' FOR UPDATE")
        .await
        .unwrap();
    js.publish_ingest("a", envelope("a", "carol", "c0", "first"))
        .await;
    js.wait_until_workers_hold(1).await;
    let refused = envelope("a", "mallory", "m0", "nul \0 byte");
    for (id, body) in [("c1", "one"), ("c2", "two")] {
        js.publish_ingest("a", envelope("a", "carol", id, body))
            .await;
    }
    js.publish_ingest("a", refused.clone()).await;
    for (id, body) in [("c3", "three"), ("c4", "four")] {
        js.publish_ingest("a", envelope("a", "carol", id, body))
            .await;
    }
    let undecodable = b"\xff\xff not an envelope".to_vec();
    js.publish_ingest("b", undecodable.clone()).await;
    js.wait_until_workers_hold(6).await;
    pg.batch_execute("COMMIT").await.unwrap();

    wait_for("two dead letters", STEP, || async {
        (js.dead_letters().await.len() >= 2).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (alice, bob) = (alice.await.unwrap(), bob.await.unwrap());
    js.wait_until_drained().await;

    // Nobody else paid for it: every steady send acked and stored, carol's
    // burst stored in the order it was published, mallory's not at all.
    assert_acked_and_stored(&cluster, "a", &alice).await;
    assert_acked_and_stored(&cluster, "b", &bob).await;
    let stored_a = cluster.stored("a").await;
    let carol: Vec<&str> = stored_a
        .iter()
        .filter(|(_, sender, _, _)| sender == "carol")
        .map(|(_, _, id, _)| id.as_str())
        .collect();
    assert_eq!(carol, ["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(stored_a.len(), alice.len() + 5);
    assert!(stored_a.iter().all(|(_, sender, _, _)| sender != "mallory"));
    assert_eq!(cluster.stored("b").await.len(), bob.len());

    // Each bad send is on the dead-letter stream exactly once (nothing is
    // left to deliver or ack), as published, after one delivery.
    let letters = js.dead_letters().await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let nul = letters
        .iter()
        .find(|l| l.subject.as_str() == "chat.dead.a")
        .expect("the refused send's dead letter");
    assert_eq!(nul.payload.as_ref(), refused.as_slice());
    assert_eq!(header(nul, headers::DEAD_REASON), Some("refused_by_store"));
    let detail = header(nul, headers::DEAD_DETAIL).unwrap_or_default();
    assert!(detail.contains("0x00"), "readable reason: {detail}");
    assert_eq!(header(nul, headers::ATTEMPTS), Some("1"));
    let garbage = letters
        .iter()
        .find(|l| l.subject.as_str() == "chat.dead.undecodable")
        .expect("the undecodable send's dead letter");
    assert_eq!(garbage.payload.as_ref(), undecodable.as_slice());
    assert_eq!(header(garbage, headers::DEAD_REASON), Some("bad_envelope"));
    assert_eq!(header(garbage, headers::ATTEMPTS), Some("1"));

    // The worker split the batch rather than retry it.
    let worker = cluster.worker(0).metrics().await;
    println!(
        "batches {} holding {} sends, {} splits",
        worker.total("chat_worker_batch_size", &[]),
        worker.total("chat_worker_batch_size_sum", &[]),
        worker.total("chat_worker_batch_splits_total", &[])
    );
    assert_eq!(worker.total("chat_worker_retries_total", &[]), 0.0);
    assert_eq!(worker.total("chat_worker_redeliveries_total", &[]), 0.0);
    assert!(worker.total("chat_worker_batch_splits_total", &[]) >= 1.0);
    for reason in ["refused_by_store", "bad_envelope"] {
        assert_eq!(
            worker.total("chat_worker_dead_letters_total", &[("reason", reason)]),
            1.0,
            "{reason}"
        );
    }
}

/// The gateway accepted the send, then the room was deleted before the
/// worker got to it: the send is dead-lettered, and never acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_room_is_deleted_after_acceptance_is_dead_lettered_with_its_reason() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "1000");
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("doomed", &["dora"]).await;
    let js = cluster.jetstream().await;
    let mut dora = cluster.gateway(0).connect("dora").await;

    cluster.workers[0].process.terminate();
    let request = dora
        .writer
        .send("doomed", "last-words", "goodbye")
        .await
        .unwrap();
    wait_for("JetStream to hold the send", STEP, || async {
        (js.consumer_state().await.0 == 1).then_some(())
    })
    .await;
    cluster.delete_room("doomed").await;
    let worker = cluster.start_worker().await;

    let letter = wait_for("the dead letter", STEP, || async {
        js.dead_letters().await.pop()
    })
    .await;
    assert_eq!(letter.subject.as_str(), "chat.dead.doomed");
    assert_eq!(header(&letter, headers::DEAD_REASON), Some("room_missing"));
    assert_eq!(
        header(&letter, headers::DEAD_DETAIL),
        Some("room does not exist")
    );
    assert_eq!(header(&letter, headers::ATTEMPTS), Some("1"));
    let envelope = Envelope::decode(letter.payload.clone()).unwrap();
    assert_eq!(
        (
            envelope.sender.as_str(),
            envelope.client_msg_id.as_str(),
            envelope.body.as_str()
        ),
        ("dora", "last-words", "goodbye")
    );
    let reply = dora.reply_to(&request).await;
    assert!(reply.is_err(), "a dead-lettered send is never acked");

    js.wait_until_drained().await;
    assert_eq!(js.dead_letters().await.len(), 1);
    let metrics = cluster.worker(worker).metrics().await;
    assert_eq!(metrics.total("chat_worker_retries_total", &[]), 0.0);
}
