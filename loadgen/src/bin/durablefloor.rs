//! `durablefloor`: the least code that keeps the product's promise, as the
//! floor to measure it against (issue 25): a message anyone sees is
//! committed, with its room's seq, and survives any crash. WebSocket in,
//! JetStream publish (file storage, on the product's nats.conf), one pull
//! consumer, one Postgres transaction per pulled batch giving per-room
//! seqs (idempotent on the client's id), then a core-NATS fan-out per room
//! and the senders' acks, WebSocket out. No limits, membership or caches.
//! It speaks the plain JSON protocol of `wsfloor` and the FastAPI peer.
//!
//! It times each send's stages as the product does (`bench/stages.py`) and
//! prints them as a table when it gets SIGTERM.
//!
//! `durablefloor <listen> <nats-url> <postgres-url>`

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use async_nats::{
    jetstream::{self, consumer::pull, stream},
    HeaderMap,
};
use chat_protocol::now_us;
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::{
    net::{TcpListener, TcpStream},
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};
use tokio_postgres::NoTls;
use tokio_tungstenite::tungstenite::Utf8Bytes;

mod floors;

const STREAM: &str = "FLOOR";
const SUBJECT: &str = "floor.in";
/// Most sends committed in one transaction.
const BATCH: usize = 256;

/// Sockets waiting for their sends' commits, by the send's id.
type Waiting = Arc<Mutex<HashMap<String, mpsc::Sender<Utf8Bytes>>>>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS floor_rooms (id TEXT PRIMARY KEY, last_seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS floor_messages (
    room_id TEXT NOT NULL, seq BIGINT NOT NULL, client_msg_id TEXT NOT NULL, body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, seq), UNIQUE (room_id, client_msg_id));
";
/// Reserves `$2` seqs of room `$1`: the last one.
const RESERVE: &str = "INSERT INTO floor_rooms (id, last_seq) VALUES ($1, $2) \
    ON CONFLICT (id) DO UPDATE SET last_seq = floor_rooms.last_seq + $2 RETURNING last_seq";
/// Stores a batch, returning the seqs stored: a resent id keeps its first
/// seq and is not fanned out again (the seq it was given this time is left
/// unused: the floor does not hand it back, and loadgen never resends).
const INSERT: &str = "INSERT INTO floor_messages (room_id, seq, client_msg_id, body) \
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[]) \
    ON CONFLICT (room_id, client_msg_id) DO NOTHING RETURNING room_id, seq";

/// A send's stages, in path order, as `bench/stages.py` names them, and
/// what each spans.
const STAGES: [(&str, &str); 5] = [
    ("publish", "took it -> JetStream holds it"),
    (
        "queued",
        "took it -> pulled (the floor's one consumer: includes the wait for the commit before)",
    ),
    ("commit", "the transaction"),
    ("fanout", "committed -> fan-out published"),
    (
        "fanout_transit",
        "fan-out published -> at a socket's subscription",
    ),
];
/// Microseconds per stage, each index of `STAGES`.
static TIMES: LazyLock<Mutex<Vec<Histogram<u64>>>> = LazyLock::new(|| {
    let histogram = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    Mutex::new(STAGES.iter().map(|_| histogram()).collect())
});
/// The header on a fan-out saying when it was published.
const PUBLISHED_US: &str = "Published-Us";

/// Records that stage `stage` took from `since_us` until now, `count` times.
fn time(stage: usize, since_us: i64, count: u64) {
    let us = (now_us() - since_us).clamp(1, 60_000_000) as u64;
    let _ = TIMES.lock().unwrap()[stage].record_n(us, count);
}

/// The stage table, in bench/stages.py's format (exact quantiles here).
fn print_stages() {
    let times = TIMES.lock().unwrap();
    println!("| stage | spans | observations | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    for ((stage, spans), h) in STAGES.iter().zip(times.iter()) {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let n = h.len();
        println!(
            "| {stage} | {spans} | {n} | {:.2} | {:.2} |",
            ms(0.5),
            ms(0.99)
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, nats_url, pg_url] = &args[..] else {
        anyhow::bail!("usage: durablefloor <listen> <nats-url> <postgres-url>");
    };
    let nats = async_nats::connect(nats_url).await?;
    let js = jetstream::new(nats.clone());
    let stream = js
        .get_or_create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec![SUBJECT.into()],
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(3600),
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .get_or_create_consumer(
            "floor",
            pull::Config {
                durable_name: Some("floor".into()),
                ack_wait: Duration::from_secs(5),
                ..Default::default()
            },
        )
        .await?;
    let (pg, connection) = tokio_postgres::connect(pg_url, NoTls).await?;
    tokio::spawn(connection);
    pg.batch_execute(SCHEMA).await?;
    let waiting: Waiting = Arc::default();
    tokio::spawn(store(consumer, pg, nats.clone(), Arc::clone(&waiting)));
    let listener = TcpListener::bind(listen).await?;
    eprintln!("durablefloor listening on {listen}");
    let mut term = signal(SignalKind::terminate())?;
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = term.recv() => {
                print_stages();
                return Ok(());
            }
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(serve(
            socket,
            js.clone(),
            nats.clone(),
            Arc::clone(&waiting),
        ));
    }
}

/// The consumer: each batch pulled is committed in one transaction, then
/// fanned out per room and acked to its senders, then acked to JetStream.
async fn store(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    mut pg: tokio_postgres::Client,
    nats: async_nats::Client,
    waiting: Waiting,
) {
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .messages()
        .await
        .expect("pull");
    while let Some(Ok(first)) = messages.next().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => batch.push(m),
                _ => break,
            }
        }
        let sends: Vec<Value> = (batch.iter())
            .filter_map(|m| serde_json::from_slice(&m.payload).ok())
            .collect();
        let took = |send: &Value| send["t0"].as_i64().unwrap_or_else(now_us);
        sends.iter().for_each(|send| time(1, took(send), 1));
        let began = now_us();
        let committed = commit(&mut pg, &sends).await;
        time(2, began, sends.len() as u64);
        match committed {
            Ok(stored) => {
                let committed = now_us();
                for (room, messages) in stored {
                    let payload = serde_json::to_vec(&messages).expect("json");
                    let mut headers = HeaderMap::new();
                    headers.insert(PUBLISHED_US, now_us().to_string().as_str());
                    let subject = format!("floor.room.{room}");
                    let _ = nats
                        .publish_with_headers(subject, headers, payload.into())
                        .await;
                    time(3, committed, messages.len() as u64);
                }
                for send in &sends {
                    let id = send["id"].as_str().unwrap_or_default();
                    let socket = waiting.lock().unwrap().remove(id);
                    if let Some(socket) = socket {
                        let ack = json!({"type": "ack", "id": id}).to_string();
                        let _ = socket.send(ack.into()).await;
                    }
                }
                for m in batch {
                    let _ = m.ack().await;
                }
            }
            // Not acked: JetStream redelivers after ack_wait.
            Err(e) => eprintln!("commit failed: {e}"),
        }
    }
}

/// Commits the sends with per-room seqs; each room's stored messages.
async fn commit(
    pg: &mut tokio_postgres::Client,
    sends: &[Value],
) -> Result<HashMap<String, Vec<Value>>, tokio_postgres::Error> {
    let mut by_room: HashMap<String, Vec<&Value>> = HashMap::new();
    for send in sends {
        let room = send["room"].as_str().unwrap_or_default().to_owned();
        by_room.entry(room).or_default().push(send);
    }
    let tx = pg.transaction().await?;
    let reserve = tx.prepare(RESERVE).await?;
    let mut columns: (Vec<String>, Vec<i64>, Vec<String>, Vec<String>) = Default::default();
    let mut stored = HashMap::new();
    for (room, sends) in &by_room {
        let n = sends.len() as i64;
        let last: i64 = tx.query_one(&reserve, &[room, &n]).await?.get(0);
        let out: &mut Vec<Value> = stored.entry(room.clone()).or_default();
        for (i, send) in sends.iter().enumerate() {
            let seq = last - n + 1 + i as i64;
            let (id, body) = (send["id"].as_str(), send["body"].as_str());
            let (id, body) = (id.unwrap_or_default(), body.unwrap_or_default());
            columns.0.push(room.clone());
            columns.1.push(seq);
            columns.2.push(id.to_owned());
            columns.3.push(body.to_owned());
            out.push(json!({"type": "message", "room": room, "id": id, "body": body, "seq": seq}));
        }
    }
    let inserted: std::collections::HashSet<(String, i64)> = (tx
        .query(INSERT, &[&columns.0, &columns.1, &columns.2, &columns.3])
        .await?
        .iter())
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    tx.commit().await?;
    for (room, messages) in stored.iter_mut() {
        messages.retain(|m| inserted.contains(&(room.clone(), m["seq"].as_i64().unwrap_or(0))));
    }
    Ok(stored)
}

/// One socket: sends go to JetStream (acked once committed), joined rooms'
/// fan-outs come back.
async fn serve(
    socket: TcpStream,
    js: jetstream::Context,
    nats: async_nats::Client,
    waiting: Waiting,
) {
    let Some((mut source, out_tx, writer)) = floors::accept(socket).await else {
        return;
    };
    let mut rooms = Vec::new();
    while let Some((frame, room)) = floors::next_frame(&mut source).await {
        match frame["type"].as_str() {
            Some("join") => {
                let Ok(mut sub) = nats.subscribe(format!("floor.room.{room}")).await else {
                    continue;
                };
                let out = out_tx.clone();
                rooms.push(tokio::spawn(async move {
                    while let Some(msg) = sub.next().await {
                        let published = (msg.headers.as_ref())
                            .and_then(|h| h.get(PUBLISHED_US))
                            .and_then(|v| v.as_str().parse().ok());
                        if let Some(published) = published {
                            time(4, published, 1);
                        }
                        let Ok(batch) = serde_json::from_slice::<Vec<Value>>(&msg.payload) else {
                            continue;
                        };
                        for message in batch {
                            if out.send(message.to_string().into()).await.is_err() {
                                return;
                            }
                        }
                    }
                }));
                let joined = json!({"type": "joined", "room": room}).to_string();
                let _ = out_tx.send(joined.into()).await;
            }
            Some("send") => {
                let id = frame["id"].as_str().unwrap_or_default().to_owned();
                waiting.lock().unwrap().insert(id, out_tx.clone());
                let t0 = now_us();
                let mut frame = frame;
                frame["t0"] = t0.into();
                let payload = serde_json::to_vec(&frame).expect("json");
                // The publish's ack is awaited on a task of its own, so the
                // socket's next send is read at once.
                if let Ok(ack) = js.publish(SUBJECT, payload.into()).await {
                    tokio::spawn(async move {
                        if ack.await.is_ok() {
                            time(0, t0, 1);
                        }
                    });
                }
            }
            _ => {}
        }
    }
    for room in rooms {
        room.abort();
    }
    writer.abort();
}
