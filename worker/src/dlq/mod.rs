//! `worker dlq`: the operator's tools for the dead-letter stream: list,
//! show, replay and purge the sends and commands the worker gave up on.
//! In: the parsed arguments and the worker's configuration (for NATS).
//! Out: results on stdout (text, or JSON lines), and an exit code.
//!
//! A replay republishes the original envelope to its room's bulk subject
//! (a command to its room's command subject), where the workers handle it
//! like any other, sends in the bulk class, behind live chat. That is safe because the store is idempotent on (room,
//! sender, client_msg_id) and on the command id: a send its sender resent
//! meanwhile is found, not stored twice, and a command is applied once. The dead letter is deleted only
//! once JetStream has acked the republish, and the republish carries a
//! `Nats-Msg-Id` of its own ([`subjects::replay_id`]), so a replay retried
//! after a lost ack is dropped by JetStream as a copy.
//!
//! [`subjects::replay_id`]: chat_protocol::subjects::replay_id

mod act;
mod args;
mod error;
mod letter;
mod list;
mod outcome;
mod purge;
mod render;
mod replay;
mod scan;
mod show;
mod stream;

use std::process::ExitCode;

pub use args::DlqArgs;
pub use error::DlqError;

use self::{
    act::{act, Action},
    args::DlqCommand,
    list::list,
    render::Out,
    show::show,
    stream::DeadLetters,
};
use crate::config::WorkerConfig;

/// Runs one `worker dlq` command: 0 when every item was handled, 1 when
/// some failed or NATS could not be used. (Bad arguments and configuration
/// exit with 2 before this runs.)
pub async fn run(config: &WorkerConfig, args: DlqArgs) -> ExitCode {
    let out = Out { json: args.json };
    let result = async {
        let dead = DeadLetters::open(config).await?;
        match args.command {
            DlqCommand::List { filter, limit } => list(&dead, &out, &filter, limit).await,
            DlqCommand::Show { seq } => show(&dead, &out, seq).await,
            DlqCommand::Replay { select, dry_run } => {
                act(&dead, &out, &select, Action::Replay { dry_run }).await
            }
            DlqCommand::Purge { select, yes } => {
                act(&dead, &out, &select, Action::Purge { dry_run: !yes }).await
            }
        }
    }
    .await;
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("worker dlq: {e}");
            ExitCode::FAILURE
        }
    }
}
