use std::process::ExitCode;

use anyhow::Context;
use chat_store::Store;
use chat_worker::{config::ENV_PREFIX, dlq::DlqArgs, Worker, WorkerConfig};
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
    /// List, show, replay or purge dead letters (exit 1 if some failed).
    Dlq(DlqArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::ConfigFields => {
            for var in chat_config::env_vars::<WorkerConfig>(ENV_PREFIX) {
                println!("{var}");
            }
            Ok(ExitCode::SUCCESS)
        }
        // No telemetry: stdout is the command's output, JSON for scripts.
        Command::Dlq(args) => {
            let config = WorkerConfig::load_or_exit();
            Ok(chat_worker::dlq::run(&config, args).await)
        }
        Command::Migrate => {
            let config = WorkerConfig::load_or_exit();
            let _telemetry = chat_telemetry::init("chat-worker", &config.log, &config.tracing);
            Store::migrate(&config.postgres)
                .await
                .context("migrating")?;
            Ok(ExitCode::SUCCESS)
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
            // The signal is awaited here, beside the worker, not by a task
            // of its own that could die unseen.
            let run = worker.run();
            tokio::pin!(run);
            let run = tokio::select! {
                run = &mut run => run,
                () = chat_telemetry::terminated() => {
                    tracing::info!("shutting down");
                    shutdown.cancel();
                    run.await
                }
            };
            let run = run.context("consuming");
            drop(telemetry);
            run.map(|()| ExitCode::SUCCESS)
        }
    }
}

/// glibc's allocator spent a quarter of the gateway's CPU under load
/// (perf, bench `ingest`); mimalloc is faster with many small, short-lived
/// allocations across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
