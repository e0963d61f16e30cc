//! `worker dlq`, run as an operator runs it, on dead letters the worker
//! made for real: listed, shown, replayed through the bulk stream (and
//! then stored once, delivered and acked), purged; bad arguments exit 2.
//! And a send that dies inside a gateway's batch is parked alone.

use chat_proto::{internal::Envelope, v1::server_frame::Kind};
use chat_protocol::subjects;
use chat_streams::headers::{self, REPLAY_OF};
use chat_tests::{
    cluster::bin, envelope, header, room_in_partition, wait_for, Cluster, ClusterOptions, Frames,
    STEP,
};
use prost::Message as _;
use serde_json::Value;

/// What one `worker dlq` run said: exit status, stdout, stderr.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Stdout as JSON objects, one a line (for `--json` runs).
    fn objects(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The objects of one kind.
    fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.objects()
            .into_iter()
            .filter(|o| o["kind"] == kind)
            .collect()
    }

    fn summary(&self) -> Value {
        self.of_kind("summary").pop().expect("a summary line")
    }
}

/// Runs `worker dlq <args>` against the cluster's NATS.
async fn dlq(cluster: &Cluster, args: &[&str]) -> Run {
    dlq_with(&[("CHAT_WORKER_NATS_URL", &cluster.nats.url())], args).await
}

/// Runs `worker dlq <args>` with only `env` in its environment.
async fn dlq_with(env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = tokio::process::Command::new(bin("worker"))
        .arg("dlq")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run worker dlq");
    let run = Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!(
        "$ worker dlq {}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    run
}

/// The seq of the listed dead letter whose field `key` is `value`.
fn seq_where(letters: &[Value], key: &str, value: &str) -> u64 {
    letters
        .iter()
        .find(|l| l[key] == value)
        .and_then(|l| l["seq"].as_u64())
        .unwrap_or_else(|| panic!("no dead letter with {key} {value}: {letters:?}"))
}

// Longer than 80 lines on purpose: one operator's session read top to
// bottom, each command next to what it checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_replayed_once_and_purged() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "1000");
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("doomed", &["dora"]).await;
    cluster.create_room("other", &["olga"]).await;
    let js = cluster.jetstream().await;
    let mut dora = cluster.gateway(0).connect("dora").await;

    // Dead letters made for real: two sends whose room is deleted after
    // acceptance (one through the gateway, which is never acked), one
    // undecodable envelope and one body Postgres refuses (a NUL byte).
    cluster.workers[0].process.terminate();
    let request = dora.writer.send("doomed", "d1", "goodbye").await.unwrap();
    let partition = js.partition("doomed");
    let ingest = js
        .get_stream(subjects::ingest_stream(partition))
        .await
        .unwrap();
    wait_for("JetStream to hold the send", STEP, || async {
        ingest
            .get_last_raw_message_by_subject(&subjects::ingest_batch(
                partition,
                &cluster.gateway(0).id(),
            ))
            .await
            .ok()
    })
    .await;
    cluster.delete_room("doomed").await;
    js.publish_ingest("doomed", envelope("doomed", "dora", "d2", "second"))
        .await;
    let garbage = b"\xff\x00 not an envelope".to_vec();
    js.publish_ingest("doomed", garbage.clone()).await;
    js.publish_ingest("other", envelope("other", "olga", "o1", "nul \0"))
        .await;
    cluster.start_worker().await;
    wait_for("four dead letters", STEP, || async {
        (js.dead_letters().await.len() == 4).then_some(())
    })
    .await;
    assert!(dora.reply_to(&request).await.is_err(), "never acked");

    // list: one line each, with a count by reason; filters narrow it.
    let listed = dlq(&cluster, &["list", "--json"]).await;
    assert_eq!(listed.status, Some(0), "{}", listed.stderr);
    let letters = listed.of_kind("dead_letter");
    assert_eq!(letters.len(), 4, "{letters:?}");
    let summary = listed.summary();
    assert_eq!(summary["total"], 4);
    assert_eq!(summary["by_reason"]["room_missing"], 2);
    assert_eq!(summary["by_reason"]["bad_envelope"], 1);
    assert_eq!(summary["by_reason"]["refused_by_store"], 1);
    let d1 = seq_where(&letters, "client_msg_id", "d1");
    let d2 = seq_where(&letters, "client_msg_id", "d2");
    let undecodable = seq_where(&letters, "reason", "bad_envelope");
    let nul = seq_where(&letters, "reason", "refused_by_store");
    let first = letters.iter().find(|l| l["seq"] == d1).unwrap();
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["detail"], "room does not exist");
    let doomed = dlq(&cluster, &["list", "--room", "doomed", "--limit", "1"]).await;
    assert_eq!(doomed.status, Some(0));
    assert!(doomed.stdout.starts_with("SEQ"), "a table for people");
    assert!(doomed.stdout.contains("d1") && !doomed.stdout.contains("d2"));
    assert!(doomed
        .stdout
        .contains("2 dead letters (1 listed): room_missing 2"));

    // show: the envelope decoded, body included; raw bytes when undecodable.
    let shown = dlq(&cluster, &["show", &d1.to_string()]).await;
    assert_eq!(shown.status, Some(0));
    for expected in ["goodbye", "dora", "room_missing", "chat.receipt.gw"] {
        assert!(shown.stdout.contains(expected), "shows {expected}");
    }
    let shown = dlq(&cluster, &["show", &undecodable.to_string(), "--json"]).await;
    let shown = &shown.objects()[0];
    assert_eq!(
        shown["undecodable"]["hex"],
        "ff00206e6f7420616e20656e76656c6f7065"
    );
    assert_eq!(
        shown["undecodable"]["escaped"],
        "\\xff\\x00 not an envelope"
    );
    assert_eq!(shown["envelope"], Value::Null);
    assert_eq!(shown["headers"][headers::DEAD_REASON], "bad_envelope");

    // replay: a dry run changes nothing; then, the room back and d1 resent
    // by its sender meanwhile, the replay stores d2 once and finds d1.
    let dry = dlq(&cluster, &["replay", "--room", "doomed", "--dry-run"]).await;
    assert_eq!(dry.status, Some(0));
    assert_eq!(dry.stdout.matches("would_replay room doomed").count(), 2);
    assert_eq!(js.dead_letters().await.len(), 4);
    cluster.create_room("doomed", &["dora"]).await;
    dora.join("doomed").await;
    dora.writer.send("doomed", "d1", "goodbye").await.unwrap();
    let (messages, acks) = dora.collect(1, 1, None, STEP).await;
    assert_eq!(
        (messages[0].seq, acks[0].1.seq),
        (1, 1),
        "the resend is stored"
    );
    let replayed = dlq(&cluster, &["replay", "--room", "doomed", "--json"]).await;
    assert_eq!(replayed.status, Some(0), "{}", replayed.stderr);
    let outcomes = replayed.of_kind("replay");
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o["outcome"] == "replayed"));
    let (messages, _) = dora.collect_messages(1, STEP).await;
    assert_eq!(
        (messages[0].seq, messages[0].client_msg_id.as_str()),
        (2, "d2")
    );
    js.wait_until_drained().await;
    let stored: Vec<(i64, String)> = cluster
        .stored("doomed")
        .await
        .into_iter()
        .map(|(seq, _, id, _)| (seq, id))
        .collect();
    assert_eq!(stored, [(1, "d1".into()), (2, "d2".into())]);

    // The replay is marked on the bulk stream, and its dead letter gone.
    let d2_seq = outcomes.iter().find(|o| o["seq"] == d2).unwrap()["replayed_seq"]
        .as_u64()
        .unwrap();
    let bulk = js.get_stream("CHAT_BULK").await.unwrap();
    let republished = bulk.get_raw_message(d2_seq).await.unwrap();
    assert_eq!(
        header(&republished, "Nats-Msg-Id"),
        Some(format!("dlq:{d2}").as_str())
    );
    assert_eq!(
        header(&republished, REPLAY_OF),
        Some(d2.to_string().as_str())
    );
    let left: Vec<u64> = js.dead_letters().await.iter().map(|l| l.sequence).collect();
    assert_eq!(left, [undecodable, nul]);

    // Replaying what cannot be: undecodable (skipped), gone (failed): exit 1.
    let again = dlq(
        &cluster,
        &["replay", &undecodable.to_string(), &d1.to_string()],
    )
    .await;
    assert_eq!(again.status, Some(1));
    assert!(
        again.stdout.contains(&format!("{undecodable} skipped")),
        "{}",
        again.stdout
    );
    assert!(again
        .stdout
        .contains(&format!("{d1} failed: no dead letter with seq {d1}")));

    // A replay that fails again is dead-lettered anew, not lost.
    let refused = dlq(&cluster, &["replay", "--reason", "refused_by_store"]).await;
    assert_eq!(refused.status, Some(0), "{}", refused.stdout);
    let anew = wait_for("the refused send dead-lettered again", STEP, || async {
        js.dead_letters()
            .await
            .into_iter()
            .find(|l| l.sequence > nul)
    })
    .await;
    assert_eq!(
        header(&anew, headers::DEAD_REASON),
        Some("refused_by_store")
    );

    // purge: says what it would delete, then deletes with --yes.
    let would = dlq(&cluster, &["purge", "--reason", "bad_envelope"]).await;
    assert_eq!(would.status, Some(0));
    assert!(would.stdout.contains(&format!("{undecodable} would_purge")));
    assert_eq!(js.dead_letters().await.len(), 2);
    let purged = dlq(&cluster, &["purge", "--all", "--yes", "--json"]).await;
    assert_eq!(purged.status, Some(0));
    assert_eq!(purged.summary()["purged"], 2);
    assert!(js.dead_letters().await.is_empty());
    assert_eq!(
        dlq(&cluster, &["list", "--json"]).await.summary()["total"],
        0
    );
}

/// Bad arguments or configuration exit with 2 before NATS is asked
/// anything (there is none here); unreachable NATS is a failure, 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2() {
    let nowhere = ("CHAT_WORKER_NATS_URL", "nats://127.0.0.1:1");
    for args in [
        &["replay"][..],
        &["purge", "3", "--all"],
        &["replay", "--all", "--room", "a"],
        &["list", "--reason", "no_such_reason"],
        &["list", "--room", "not a room"],
        &["show", "seven"],
    ] {
        let run = dlq_with(&[nowhere], args).await;
        assert_eq!(run.status, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty() && !run.stderr.is_empty(), "{args:?}");
    }
    let typo = dlq_with(&[nowhere, ("CHAT_WORKER_NATS_ULR", "x")], &["list"]).await;
    assert_eq!(typo.status, Some(2), "{}", typo.stderr);
    let unreachable = dlq_with(&[nowhere], &["list"]).await;
    assert_eq!(unreachable.status, Some(1));
    assert!(
        unreachable.stderr.contains("cannot reach NATS"),
        "{}",
        unreachable.stderr
    );
}

/// A command that keeps failing (Postgres down past its class's retry
/// budget) is dead-lettered, not lost: `worker dlq` lists it as a command
/// and replays it through the command stream, where it is applied once,
/// however often it is replayed or asked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_command_is_replayed_and_applied_once() {
    use chat_tests::cluster::{Role, ADMIN_TOKEN};
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "1000")
        .env(
            Role::Workers,
            "CHAT_WORKER_COMMAND_RETRY__MAX_ATTEMPTS",
            "3",
        )
        .env(
            Role::Workers,
            "CHAT_WORKER_COMMAND_RETRY__BASE_DELAY_MS",
            "50",
        )
        .env(
            Role::Workers,
            "CHAT_WORKER_COMMAND_RETRY__MAX_DELAY_MS",
            "100",
        );
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("ops", &["ada"]).await;
    let js = cluster.jetstream().await;
    cluster.postgres.crash();
    let url = cluster.gateway(0).url("/v1/rooms/ops/members/bob");
    let add = || {
        reqwest::Client::new()
            .put(&url)
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", "add-bob")
            .send()
    };
    assert_eq!(add().await.unwrap().status(), 504, "not confirmed in time");
    wait_for("the command's dead letter", STEP, || async {
        (js.dead_letters().await.len() == 1).then_some(())
    })
    .await;
    cluster.postgres.restart().await;

    let listed = dlq(&cluster, &["list", "--json"]).await;
    let letters = listed.of_kind("dead_letter");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["holds"], "command");
    assert_eq!(letters[0]["room"], "ops");
    assert_eq!(letters[0]["client_msg_id"], "add-bob");
    assert_eq!(letters[0]["attempts"], 3);
    let shown = dlq(&cluster, &["show", &letters[0]["seq"].to_string()]).await;
    assert!(shown.stdout.contains("AddMember"), "shows the change");

    let replayed = dlq(&cluster, &["replay", "--all", "--json"]).await;
    assert_eq!(replayed.status, Some(0), "{}", replayed.stderr);
    wait_for("the replayed command applied", STEP, || async {
        (!cluster.stored("ops").await.is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        add().await.unwrap().status(),
        204,
        "asked again: found applied"
    );
    let stored = cluster.stored("ops").await;
    assert_eq!(stored.len(), 1, "applied once: {stored:?}");
    assert_eq!(
        (stored[0].2.as_str(), stored[0].3.as_str()),
        ("add-bob", "bob")
    );
    assert!(js.dead_letters().await.is_empty());
}

/// A gateway publishes sends of different rooms of one partition in one
/// JetStream message;
/// one of them that cannot be stored (its room is gone) is dead-lettered
/// alone, as its own envelope, and its batch mates are stored and acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_send_in_a_gateway_batch_is_parked_alone_and_its_batch_mates_are_stored() {
    // The sends wait for the worker's return, however long it takes here;
    // a batch waits half a second before it gathers, so sends sent together
    // share one.
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "60000")
        .gateway_env("FAILPOINTS", "gateway-batch-linger=return(500)");
    let mut cluster = Cluster::start(options).await;
    let js = cluster.jetstream().await;
    let fine_room = room_in_partition(js.partition("doomed"), "fine", js.partitions);
    cluster.create_room("doomed", &["dora"]).await;
    cluster.create_room(&fine_room, &["fred"]).await;
    let mut dora = cluster.gateway(0).connect("dora").await;
    let mut fred = cluster.gateway(0).connect("fred").await;
    cluster.workers[0].process.terminate();

    let (d, f) = tokio::join!(
        dora.writer.send("doomed", "d0", "lost"),
        fred.writer.send(&fine_room, "f0", "kept")
    );
    let (doomed, fine) = (vec![d.unwrap()], vec![f.unwrap()]);
    let batches = wait_for("JetStream to hold the sends", STEP, || async {
        let batches = js.gateway_batches(&cluster.gateway(0).id()).await;
        (batches.iter().map(Vec::len).sum::<usize>() == 2).then_some(batches)
    })
    .await;
    let rooms: Vec<Vec<&str>> = batches
        .iter()
        .map(|b| b.iter().map(|e| e.room.as_str()).collect())
        .collect();
    assert_eq!(rooms.len(), 1, "one batch: {rooms:?}");

    cluster.delete_room("doomed").await;
    cluster.start_worker().await;
    // The acks come as the commits do, not in request order.
    let mut acks = std::collections::HashMap::new();
    while acks.len() < fine.len() {
        let frame = fred.next_frame().await;
        match frame.kind {
            Some(Kind::Ack(ack)) => acks.insert(frame.request_id, ack.seq),
            other => panic!("fine's send not acked: {other:?}"),
        };
    }
    let seqs: Vec<u64> = fine.iter().map(|request| acks[request]).collect();
    let expected: Vec<u64> = (1..=fine.len() as u64).collect();
    assert_eq!(seqs, expected, "stored once each, in the order sent");
    let letters = wait_for("a dead letter per doomed send", STEP, || async {
        let letters = js.dead_letters().await;
        (letters.len() == doomed.len()).then_some(letters)
    })
    .await;
    let mut parked: Vec<String> = letters
        .iter()
        .map(|l| {
            assert_eq!(l.subject.as_str(), subjects::dead_letter("doomed"));
            assert_eq!(header(l, headers::DEAD_REASON), Some("room_missing"));
            let envelope = Envelope::decode(l.payload.clone()).expect("the send's own envelope");
            assert_eq!(envelope.room, "doomed");
            envelope.client_msg_id
        })
        .collect();
    parked.sort();
    let mut sent: Vec<String> = (0..doomed.len()).map(|n| format!("d{n}")).collect();
    sent.sort();
    assert_eq!(parked, sent);
}
