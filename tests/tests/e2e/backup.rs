//! Backup and restore with `scripts/backup.sh` and `scripts/restore.sh`,
//! as deploy/README.md's runbook does them: a backup taken under steady
//! traffic on two gateways and two workers, the disks lost (the database,
//! JetStream's streams, Redis's keys), the backup restored into a new
//! empty database, the system started again. Every message acked before
//! the backup began is there, at its seq, in order, with no gap; clients
//! resume, those holding seqs the backup lacks included, and new messages
//! take seqs past a gap that no seq handed out before can fall beyond.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chat_client::{Client, ClientEncoding, ClientOptions};
use chat_proto::v1::server_frame::Kind;
use chat_tests::{wait_for, Cluster, ClusterOptions, Frames, Session, STEP};
use futures::StreamExt;
use tokio::{task::JoinHandle, time::Instant};

const ROOMS: usize = 3;
/// The seqs a restore skips in each room (scripts/restore.sh's default).
const GAP: u64 = 1_000_000_000;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

async fn run(script_name: &str, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new("bash")
        .arg(script(script_name))
        .args(args)
        .output()
        .await
        .expect("run the script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Sends one message at a time until `stop`: each acked one with its seq
/// and the moment its ack arrived.
fn send_steadily(
    mut session: Session,
    room: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<(String, u64, Instant)>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = format!("{room}-{n}");
            n += 1;
            if let Ok(ack) = session.send_and_wait(&room, &id, "steady").await {
                acked.push((id, ack.seq, Instant::now()));
            }
        }
        acked
    })
}

/// (seq, client_msg_id) of the room's entries, by seq.
async fn stored(cluster: &Cluster, room: &str) -> Vec<(u64, String)> {
    (cluster.stored(room).await.into_iter())
        .map(|(seq, _, id, _)| (seq as u64, id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_traffic_restores_into_a_new_system_and_clients_resume() {
    let mut cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("r{i}")).collect();
    for (i, room) in rooms.iter().enumerate() {
        cluster.create_room(room, &[&format!("s{i}"), "lee"]).await;
    }
    // Lee's client follows r0 throughout, as an application would.
    let urls = vec![cluster.gateway(0).ws_url(), cluster.gateway(1).ws_url()];
    let options = ClientOptions::new(urls, cluster.token("lee"), ClientEncoding::Proto)
        .backoff(Duration::from_millis(50), Duration::from_millis(500));
    let (lee, lee_messages) = Client::connect(options);
    lee.join("r0", None).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let watching = {
        let seen = Arc::clone(&seen);
        let mut lee_messages = lee_messages;
        tokio::spawn(async move {
            while let Some(m) = lee_messages.recv().await {
                seen.lock().unwrap().push((m.seq, m.client_msg_id));
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        let session = cluster.gateway(i % 2).connect(&format!("s{i}")).await;
        senders.push(send_steadily(session, room.clone(), Arc::clone(&stop)));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let file = cluster.dir.path().join("chat.backup");
    let file = file.to_str().unwrap();
    let began = Instant::now();
    let (code, out) = run("backup.sh", &[&cluster.postgres.url(), file]).await;
    assert_eq!(code, 0, "{out}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for sender in senders {
        acked.push(sender.await.unwrap());
    }
    let after_backup: usize = (acked.iter().flatten())
        .filter(|(_, _, at)| *at > began)
        .count();
    assert!(after_backup > 0, "traffic went on past the backup");
    let lee_last = wait_for("lee to see r0's last message", STEP, || async {
        let last = acked[0].last().map(|(_, seq, _)| *seq);
        let seen = seen.lock().unwrap().last().map(|(seq, _)| *seq);
        (seen == last).then_some(seen)
    })
    .await
    .unwrap();

    // A restore into a database that is not empty is refused, and changes
    // nothing.
    let before = stored(&cluster, "r0").await;
    let (code, out) = run("restore.sh", &[file, &cluster.postgres.url()]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not empty"), "{out}");
    assert_eq!(stored(&cluster, "r0").await, before);

    // The disks are lost: every process stopped, the database made anew,
    // JetStream's streams gone, Redis's keys with them (the script).
    for worker in &mut cluster.workers {
        worker.process.kill();
    }
    for gateway in &mut cluster.gateways {
        gateway.process.kill();
    }
    let admin = cluster.postgres.url().replace("/chat", "/postgres");
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for statement in ["DROP DATABASE chat WITH (FORCE)", "CREATE DATABASE chat"] {
        client.batch_execute(statement).await.unwrap();
    }
    let js = async_nats::jetstream::new(cluster.nats.client().await);
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    assert!(!names.is_empty());
    for name in names {
        js.delete_stream(&name).await.unwrap();
    }
    let (code, out) = run(
        "restore.sh",
        &[file, &cluster.postgres.url(), &cluster.redis_url()],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    for i in 0..cluster.workers.len() {
        cluster.restart_worker(i).await;
    }
    for i in 0..cluster.gateways.len() {
        cluster.restart_gateway(i).await;
    }

    // Every message acked before the backup began is there at its seq;
    // each room's seqs run from 1 with no gap and no message twice.
    let mut heads = Vec::new();
    for (room, acked) in rooms.iter().zip(&acked) {
        let restored = stored(&cluster, room).await;
        for (i, (seq, _)) in restored.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1, "{room}: no gap");
        }
        let ids: std::collections::HashSet<&String> = restored.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), restored.len(), "{room}: each message once");
        for (id, seq, at) in acked.iter().filter(|(_, _, at)| *at < began) {
            let kept = restored.get(*seq as usize - 1).map(|(_, id)| id);
            assert_eq!(kept, Some(id), "{room}: acked before the backup at {at:?}");
        }
        heads.push(restored.len() as u64);
    }
    assert!(
        heads[0] < lee_last,
        "r0 lost what was acked after the backup"
    );

    // A socket resuming from before the restored head gets the rest,
    // then what follows the gap the restore left (seqs the lost system may
    // have handed out are never used again).
    let next = |room: usize| heads[room] + GAP + 1;
    let mut s1 = cluster.gateway(1).connect("s1").await;
    let ack = s1.send_and_wait("r1", "r1-anew", "after the restore").await;
    assert_eq!(ack.unwrap().seq, next(1));
    let mut reader = cluster.gateway(0).connect("lee").await;
    reader.join_since("r1", heads[1] - 5).await;
    let (messages, _) = reader.collect_messages(6, STEP).await;
    let replayed: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let mut expected: Vec<u64> = (heads[1] - 4..=heads[1]).collect();
    expected.push(next(1));
    assert_eq!(replayed, expected);

    // A socket resuming past even the gap (a restore made by hand, without
    // the script's gap) hears `resync` from the stored head's next seq.
    reader.join_since("r2", next(2) + 1000).await;
    let from = loop {
        let frame = tokio::time::timeout(STEP, reader.next_frame())
            .await
            .expect("told to resync in time");
        if let Some(Kind::Resync(resync)) = frame.kind {
            break resync.from_seq;
        }
    };
    assert_eq!(from, next(2));

    // Lee's client resumed by itself from a seq past the restored head,
    // inside the gap, and is handed the next message.
    let mut s0 = cluster.gateway(0).connect("s0").await;
    let ack = s0.send_and_wait("r0", "r0-anew", "after the restore").await;
    assert_eq!(ack.unwrap().seq, next(0));
    wait_for("lee's client to hand on the new message", STEP, || async {
        let seen = seen.lock().unwrap();
        seen.iter()
            .any(|(seq, id)| *seq == next(0) && id == "r0-anew")
            .then_some(())
    })
    .await;
    lee.close();
    watching.abort();
}
