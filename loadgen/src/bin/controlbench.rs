//! `controlbench`: how soon a member's removal takes effect on every gateway
//! while a backlog of chat messages waits for the workers
//! (`bench/run.sh control-backlog`).
//!
//! Publishes `--backlog` sends straight to the ingest stream (room
//! `cb-backlog`), then `--tries` times: adds user `cb-target` to room
//! `cb-room` (its socket on each gateway joins), removes them, and times
//! the removal's commit (the admin API's answer) and its effect (`left` on
//! the target's socket on every gateway). Prints percentiles of both and
//! how many sends were still queued at the first and the last try.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream;
use chat_client::{connect, ConnectOptions, Event, Reader, RoomApi, Writer};
use chat_proto::{internal::Envelope, v1::server_frame::Kind};
use chat_protocol::{codec::Encoding, subjects, RoomId};
use clap::Parser;
use hdrhistogram::Histogram;
use prost::Message as _;

#[derive(Parser)]
struct Cli {
    /// Gateway WebSocket URLs: the target has a socket on each.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    #[arg(long)]
    admin_url: String,
    #[arg(long)]
    admin_token: String,
    #[arg(long)]
    jwt_secret: String,
    #[arg(long)]
    nats: String,
    /// Sends queued on the ingest stream before the first try.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    #[arg(long, default_value_t = 100)]
    tries: usize,
}

const ROOM: &str = "cb-room";
const BACKLOG_ROOM: &str = "cb-backlog";
const TARGET: &str = "cb-target";
const STEP: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let admin = RoomApi::new(cli.admin_url.clone(), cli.admin_token.clone());
    admin.create_room(ROOM, &["cb-watch"]).await?;
    admin.create_room(BACKLOG_ROOM, &["cb-loud"]).await?;
    let token = chat_auth::mint_hs256(&cli.jwt_secret, TARGET, 3600);
    let mut sockets = Vec::new();
    for url in &cli.urls {
        sockets.push(
            connect(&ConnectOptions::new(
                url.clone(),
                token.clone(),
                Encoding::Proto,
            ))
            .await?,
        );
    }

    let js = jetstream::new(async_nats::connect(&cli.nats).await?);
    queue_backlog(&js, cli.backlog).await?;

    let mut committed = Histogram::<u64>::new(3)?;
    let mut in_effect = Histogram::<u64>::new(3)?;
    let mut queued = Vec::new();
    for _ in 0..cli.tries {
        admin.add_member(ROOM, TARGET).await?;
        for (w, r) in &mut sockets {
            rejoin(w, r).await?;
        }
        let asked = Instant::now();
        admin.remove_member(ROOM, TARGET).await?;
        committed.record(asked.elapsed().as_micros() as u64)?;
        for (_, r) in &mut sockets {
            await_left(r).await?;
        }
        in_effect.record(asked.elapsed().as_micros() as u64)?;
        queued.push(pending(&js).await?);
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "control-backlog: {} removals on {} gateways with {} sends queued at the first and {} at the last: \
         committed p50/p99/max {:.1}/{:.1}/{:.1} ms, in effect on every gateway p50/p99/max {:.1}/{:.1}/{:.1} ms",
        cli.tries,
        cli.urls.len(),
        queued.first().copied().unwrap_or(0),
        queued.last().copied().unwrap_or(0),
        ms(&committed, 0.5),
        ms(&committed, 0.99),
        ms(&committed, 1.0),
        ms(&in_effect, 0.5),
        ms(&in_effect, 0.99),
        ms(&in_effect, 1.0),
    );
    Ok(())
}

/// Publishes `backlog` sends of one room straight to the ingest stream, so
/// that removals queue behind them.
async fn queue_backlog(js: &jetstream::Context, backlog: usize) -> anyhow::Result<()> {
    let backlog_room = RoomId::parse(BACKLOG_ROOM)?;
    let partitions = chat_streams::partitions(js).await?;
    let started = Instant::now();
    for chunk in (0..backlog).collect::<Vec<_>>().chunks(1000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for n in chunk {
            let envelope = Envelope {
                room: BACKLOG_ROOM.into(),
                sender: "cb-loud".into(),
                client_msg_id: format!("cb-{n}"),
                body: "queued behind the control plane".into(),
                received_ts_ms: chat_protocol::now_ms(),
                ..Envelope::default()
            };
            acks.push(
                js.publish(
                    subjects::ingest_one(&backlog_room, partitions),
                    envelope.encode_to_vec().into(),
                )
                .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
    }
    println!(
        "backlog: {} sends published in {:.1?}",
        backlog,
        started.elapsed()
    );
    Ok(())
}

/// Joins the room again (the target was just added back).
async fn rejoin(w: &mut Writer, r: &mut Reader) -> anyhow::Result<()> {
    let request = w.join(ROOM, None).await?;
    loop {
        match next(r).await? {
            Kind::Joined(_) => return Ok(()),
            Kind::Error(e) => bail!("join {request}: {}", e.code),
            _ => {}
        }
    }
}

/// Waits for the pushed `left` of the removal (skipping its event).
async fn await_left(r: &mut Reader) -> anyhow::Result<()> {
    loop {
        if let Kind::Left(_) = next(r).await? {
            return Ok(());
        }
    }
}

async fn next(r: &mut Reader) -> anyhow::Result<Kind> {
    match tokio::time::timeout(STEP, r.next())
        .await
        .context("silence")?
    {
        Some(Ok(Event::Frame(frame))) => frame.kind.context("frame without a kind"),
        other => bail!("socket: {other:?}"),
    }
}

/// Sends the workers have not acked yet.
async fn pending(js: &jetstream::Context) -> anyhow::Result<u64> {
    let partitions = chat_streams::partitions(js).await?;
    let backlog = chat_streams::backlog(js, partitions).await?;
    Ok(backlog.waiting + backlog.unacked)
}
