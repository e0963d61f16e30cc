//! What `worker dlq` is asked to do: the subcommands and their selections.

use chat_protocol::RoomId;
use clap::{builder::PossibleValuesParser, ArgGroup, Args, Subcommand};

use crate::error::WorkerError;

/// `worker dlq`: what to do with the dead-letter stream, and how to say it.
#[derive(Args)]
pub struct DlqArgs {
    /// One JSON object per line (for scripts) instead of text for people.
    #[arg(long, global = true)]
    pub(super) json: bool,
    #[command(subcommand)]
    pub(super) command: DlqCommand,
}

#[derive(Subcommand)]
pub(super) enum DlqCommand {
    /// One line per dead letter, oldest first, then a count by reason.
    List {
        #[command(flatten)]
        filter: Filter,
        /// Most dead letters listed (the count by reason covers all that match).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Everything about one dead letter, its envelope decoded (body included).
    Show {
        /// The dead letter's sequence in the dead-letter stream.
        seq: u64,
    },
    /// Republishes dead letters to their rooms' ingest subjects, then deletes
    /// each once JetStream has it; undecodable ones are skipped.
    Replay {
        #[command(flatten)]
        select: Selection,
        /// Only say what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Deletes dead letters; without --yes only says what it would delete.
    Purge {
        #[command(flatten)]
        select: Selection,
        /// Really delete.
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters a scan keeps; both filters must hold.
#[derive(Args)]
#[group(skip)]
pub(super) struct Filter {
    /// Only this room's (undecodable ones have no room).
    #[arg(long, value_parser = parse_room)]
    pub(super) room: Option<RoomId>,
    /// Only those dead-lettered for this reason (`Chat-Dead-Reason`).
    #[arg(long, value_parser = PossibleValuesParser::new(WorkerError::SEND_FAILURE_LABELS))]
    pub(super) reason: Option<String>,
}

/// The dead letters a replay or purge acts on: by seq, all, or by filter.
#[derive(Args)]
#[group(skip)]
#[command(group(ArgGroup::new("selection").required(true).multiple(true)
    .args(["seqs", "all", "room", "reason"])))]
pub(super) struct Selection {
    /// Dead letters by their sequence in the dead-letter stream.
    #[arg(conflicts_with_all = ["all", "room", "reason"])]
    pub(super) seqs: Vec<u64>,
    /// Every dead letter.
    #[arg(long, conflicts_with_all = ["room", "reason"])]
    all: bool,
    #[command(flatten)]
    pub(super) filter: Filter,
}

fn parse_room(s: &str) -> Result<RoomId, chat_protocol::ids::IdError> {
    RoomId::parse(s)
}
