//! Scheduled messages on two gateways and two workers: kept at once, sent
//! once at their time with their scheduled id, cancelled by their sender
//! only, and every bad request refused with its code, storing nothing.

use std::time::Duration;

use chat_proto::v1::{
    client_frame::Kind as Ask, server_frame::Kind, CancelScheduled, ListScheduled, ScheduledMessage,
};
use chat_protocol::{codec::Encoding, now_ms};
use chat_tests::{entries, frames::STEP, Cluster, ClusterOptions, Frames, Session};

/// Schedules `body` at `at` and returns the answer, or the error code.
async fn schedule(
    who: &mut Session,
    room: &str,
    id: &str,
    body: &str,
    at: i64,
) -> Result<ScheduledMessage, String> {
    answered(who.ask(entries::scheduled(room, id, body, at)).await)
}

async fn cancel(who: &mut Session, room: &str, id: &str) -> Result<ScheduledMessage, String> {
    let ask = Ask::CancelScheduled(CancelScheduled {
        room: room.into(),
        id: id.into(),
    });
    answered(who.ask(ask).await)
}

async fn pending(who: &mut Session, room: &str) -> Vec<ScheduledMessage> {
    let ask = Ask::ListScheduled(ListScheduled { room: room.into() });
    match who.ask(ask).await {
        Kind::ScheduledList(list) => list.messages,
        other => panic!("expected scheduledList, got {other:?}"),
    }
}

fn answered(kind: Kind) -> Result<ScheduledMessage, String> {
    match kind {
        Kind::Scheduled(s) => Ok(s),
        Kind::Error(e) => Err(e.code),
        other => panic!("expected scheduled or error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_message_is_sent_once_at_its_time() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let r = "later";
    cluster.create_room(r, &["ann", "bob"]).await;
    let mut ann = cluster.gateway(0).connect_with("ann", Encoding::Json).await;
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    bob.join(r).await;
    ann.send_and_wait(r, "now", "first").await.unwrap();

    let at = now_ms() + 2_500;
    let kept = schedule(&mut ann, r, "s1", "at its time", at)
        .await
        .unwrap();
    assert_eq!(
        (
            kept.state.as_str(),
            kept.seq,
            kept.deliver_at_ms,
            kept.body.as_str()
        ),
        ("pending", 0, at, "at its time")
    );
    let again = schedule(&mut ann, r, "s1", "at its time", at)
        .await
        .unwrap();
    assert_eq!(again.id, kept.id, "a resend is the same scheduled message");
    assert_eq!(pending(&mut ann, r).await, vec![kept.clone()]);
    assert_eq!(
        cluster.stored(r).await.len(),
        1,
        "nothing stored before its time"
    );

    let (messages, _) = bob.collect_messages(2, STEP).await;
    let arrived = now_ms();
    let sent = &messages[1];
    assert_eq!(messages[0].body, "first");
    assert_eq!(
        (
            sent.seq,
            sent.id.as_str(),
            sent.client_msg_id.as_str(),
            sent.body.as_str()
        ),
        (2, kept.id.as_str(), "s1", "at its time")
    );
    assert!(arrived >= at, "delivered {} ms early", at - arrived);
    assert!(sent.ts_ms >= at, "stored before its time");

    let stored = cluster.stored(r).await;
    assert_eq!(stored.len(), 2, "stored once: {stored:?}");
    assert!(pending(&mut ann, r).await.is_empty());
    let resent = schedule(&mut ann, r, "s1", "at its time", at)
        .await
        .unwrap();
    assert_eq!((resent.state.as_str(), resent.seq), ("sent", 2));
    // Another send, and no copy of the scheduled one followed.
    ann.send_and_wait(r, "after", "last").await.unwrap();
    let (messages, _) = bob.collect_messages(1, STEP).await;
    assert_eq!((messages[0].seq, messages[0].body.as_str()), (3, "last"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_sender_cancels_a_scheduled_message_before_its_time() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let r = "cancel";
    cluster.create_room(r, &["ann", "bob"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut bob = cluster.gateway(1).connect("bob").await;
    bob.join(r).await;

    let doomed = schedule(&mut ann, r, "c1", "never", now_ms() + 2_000)
        .await
        .unwrap();
    assert_eq!(
        cancel(&mut bob, r, &doomed.id).await,
        Err("forbidden".into())
    );
    let cancelled = cancel(&mut ann, r, &doomed.id).await.unwrap();
    assert_eq!(cancelled.state, "cancelled");
    assert_eq!(cancel(&mut ann, r, &doomed.id).await, Ok(cancelled));
    assert!(pending(&mut ann, r).await.is_empty());

    let kept = schedule(&mut ann, r, "c2", "sent", now_ms() + 1_000)
        .await
        .unwrap();
    let (messages, _) = bob.collect_messages(1, STEP).await;
    assert_eq!((messages[0].seq, messages[0].body.as_str()), (1, "sent"));
    assert_eq!(cancel(&mut ann, r, &kept.id).await, Err("conflict".into()));
    // Past the cancelled one's time: only the one sent is stored.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let stored = cluster.stored(r).await;
    assert_eq!(stored.len(), 1, "{stored:?}");

    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(cancel(&mut ann, r, &unknown).await, Err("not_found".into()));
    assert_eq!(
        cancel(&mut ann, r, "xyz").await,
        Err("invalid_argument".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_get_their_code_and_keep_nothing() {
    // Room for a hundred schedules in a row.
    let mut options = ClusterOptions::new(1, 1);
    for limit in ["SEND_RATE_PER", "SEND_BURST_PER"] {
        for whose in ["CONNECTION", "USER"] {
            let key = format!("CHAT_GATEWAY_LIMITS__{limit}_{whose}");
            options = options.gateway_env(&key, "1000");
        }
    }
    let cluster = Cluster::start(options).await;
    let r = "refusals";
    cluster.create_room(r, &["ann"]).await;
    cluster.create_room("elsewhere", &["carl"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let day = 24 * 3600 * 1000;
    let cases = [
        (now_ms() - 1_000, "in the past"),
        (now_ms() + 31 * day, "more than 30 days ahead"),
        (-1, "negative"),
    ];
    for (i, (at, what)) in cases.into_iter().enumerate() {
        let refused = schedule(&mut ann, r, &format!("bad{i}"), "x", at).await;
        assert_eq!(refused, Err("invalid_argument".into()), "{what}");
    }
    let nul = schedule(&mut ann, r, "nul", "a\0b", now_ms() + 60_000).await;
    assert_eq!(nul, Err("invalid_argument".into()), "a NUL in its body");
    let mut carl = cluster.gateway(0).connect("carl").await;
    let outsider = schedule(&mut carl, r, "c", "x", now_ms() + 60_000).await;
    assert_eq!(outsider, Err("forbidden".into()), "a room one is not in");

    let at = now_ms() + 3_600_000;
    for i in 0..chat_store::MAX_PENDING {
        schedule(&mut ann, r, &format!("p{i}"), "x", at)
            .await
            .unwrap();
    }
    let over = schedule(&mut ann, r, "one-too-many", "x", at).await;
    assert_eq!(over, Err("limit_exceeded".into()));
    let listed = pending(&mut ann, r).await;
    assert_eq!(listed.len(), chat_store::MAX_PENDING as usize);
    assert!(listed.iter().all(|s| s.client_msg_id.starts_with('p')));
    assert!(cluster.stored(r).await.is_empty());
}

/// The `chat` CLI schedules, lists and cancels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_schedules_lists_and_cancels() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("cli", &["ann"]).await;
    let printed = cluster
        .chat("ann", &["schedule", "cli", "3600", "see you in an hour"])
        .await;
    let id = printed.split('\t').next().unwrap().to_owned();
    assert!(
        printed.trim_end().ends_with("see you in an hour"),
        "{printed}"
    );
    let listed = cluster.chat("ann", &["scheduled", "cli"]).await;
    assert!(listed.starts_with(&format!("{id}\t")), "{listed}");
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let cancelled = cluster.chat("ann", &["unschedule", "cli", &id]).await;
    assert_eq!(cancelled.trim(), format!("{id}\tcancelled"));
    assert_eq!(cluster.chat("ann", &["scheduled", "cli"]).await, "");
}
