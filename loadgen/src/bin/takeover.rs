//! `takeover`: how long a dead worker's ingest partitions go without an
//! owner (`bench/run.sh takeover`). Reads which JetStream pin each of the
//! worker's partitions has, SIGKILLs the worker, then polls the partitions'
//! consumers until every one of them is pinned to another worker (pinned
//! on a delivery, so sends are flowing to it), and prints the time taken.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream::{self, consumer::PullConsumer};
use chat_protocol::subjects;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[arg(long)]
    nats: String,
    /// The worker to kill.
    #[arg(long)]
    kill: u32,
    /// The partitions it owns (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    partitions: Vec<u32>,
}

const POLL: Duration = Duration::from_millis(20);
const GIVE_UP: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let js = jetstream::new(async_nats::connect(chat_streams::servers(&cli.nats)).await?);
    let mut consumers = Vec::new();
    for &p in &cli.partitions {
        let consumer: PullConsumer = js
            .get_stream(subjects::ingest_stream(p))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .get_consumer(&subjects::ingest_consumer(p))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let before = pin(&consumer)
            .await?
            .context("an owned partition has a pin")?;
        consumers.push((consumer, before));
    }
    let status = std::process::Command::new("kill")
        .args(["-9", &cli.kill.to_string()])
        .status()?;
    let killed = Instant::now();
    if !status.success() {
        bail!("could not kill {}", cli.kill);
    }
    while !consumers.is_empty() {
        if killed.elapsed() > GIVE_UP {
            bail!("{} partitions still without a new owner", consumers.len());
        }
        tokio::time::sleep(POLL).await;
        let mut left = Vec::new();
        for (consumer, before) in consumers {
            match pin(&consumer).await? {
                Some(now) if now != before => {}
                _ => left.push((consumer, before)),
            }
        }
        consumers = left;
    }
    println!("{}", killed.elapsed().as_millis());
    Ok(())
}

/// The partition's pinned client now, if any.
async fn pin(consumer: &PullConsumer) -> anyhow::Result<Option<String>> {
    let info = consumer.get_info().await?;
    Ok(info
        .priority_groups
        .into_iter()
        .find(|g| g.group == subjects::INGEST_GROUP)
        .and_then(|g| g.pinned_client_id))
}
