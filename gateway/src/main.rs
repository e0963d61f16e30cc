use anyhow::Context;
use chat_gateway::{config::ENV_PREFIX, Application, GatewayConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Chat gateway: WebSocket front door of the chat system")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve WebSockets (the default).
    Serve,
    /// Print an HS256 access token for a user, signed with the configured secret.
    DevToken {
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 24 * 3600)]
        ttl: u64,
    },
    /// Print every environment variable the configuration reads, one a line.
    ConfigFields,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::ConfigFields => {
            for var in chat_config::env_vars::<GatewayConfig>(ENV_PREFIX) {
                println!("{var}");
            }
            Ok(())
        }
        Command::DevToken { user, ttl } => {
            let config = GatewayConfig::load_or_exit();
            anyhow::ensure!(
                !config.jwt.hs256_secret.is_empty(),
                "dev-token needs jwt.hs256_secret"
            );
            println!(
                "{}",
                chat_auth::mint_hs256(config.jwt.hs256_secret.expose(), &user, ttl)
            );
            Ok(())
        }
        Command::Serve => {
            let config = GatewayConfig::load_or_exit();
            // Test builds only (feature `failpoints`): faults named in $FAILPOINTS.
            let _failpoints = fail::FailScenario::setup();
            let telemetry = chat_telemetry::init("chat-gateway", &config.log, &config.tracing);
            let app = Application::build(config, telemetry.metrics.clone())
                .await
                .context("starting gateway")?;
            let ran = app.run(chat_telemetry::terminated()).await;
            drop(telemetry);
            Ok(ran?)
        }
    }
}

/// glibc's allocator spent a quarter of the gateway's CPU under load
/// (perf, bench `ingest`); mimalloc is faster with many small, short-lived
/// allocations across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
