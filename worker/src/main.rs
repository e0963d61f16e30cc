use anyhow::Context;
use chat_store::Store;
use chat_worker::{config::ENV_PREFIX, Worker, WorkerConfig};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "Chat worker: stores sends and fans them out")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate, then consume (the default).
    Run,
    /// Apply pending schema migrations and exit.
    Migrate,
    /// Print every environment variable the configuration reads, one a line.
    ConfigFields,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::ConfigFields => {
            for var in chat_config::env_vars::<WorkerConfig>(ENV_PREFIX) {
                println!("{var}");
            }
            Ok(())
        }
        Command::Migrate => {
            let config = WorkerConfig::load_or_exit();
            let _telemetry = chat_telemetry::init("chat-worker", &config.log, &config.tracing);
            Store::migrate(&config.postgres).await.context("migrating")
        }
        Command::Run => {
            let config = WorkerConfig::load_or_exit();
            let telemetry = chat_telemetry::init("chat-worker", &config.log, &config.tracing);
            // Test builds only (feature `failpoints`): faults named in $FAILPOINTS.
            let _failpoints = fail::FailScenario::setup();
            let shutdown = CancellationToken::new();
            let worker = Worker::build(config, shutdown.clone(), telemetry.metrics.clone())
                .await
                .context("starting worker")?;
            tokio::spawn(async move {
                chat_telemetry::terminated().await;
                tracing::info!("shutting down");
                shutdown.cancel();
            });
            let run = worker.run().await.context("consuming");
            drop(telemetry);
            run
        }
    }
}

/// glibc's allocator spent a quarter of the gateway's CPU under load
/// (perf, bench `ingest`); mimalloc is faster with many small, short-lived
/// allocations across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
