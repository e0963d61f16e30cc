//! What became of one dead letter a replay or purge selected, as reported.

use std::fmt::Write as _;

use serde::Serialize;

use super::{error::DlqError, letter::DeadLetter, render::printable};

/// What became of one selected dead letter.
#[derive(Serialize)]
pub(super) struct Outcome {
    seq: u64,
    room: Option<String>,
    /// `replayed`, `would_replay`, `skipped`, `purged`, `would_purge`, `failed`.
    pub(super) outcome: &'static str,
    /// Seq of the republished letter in the stream it went to (bulk sends
    /// or commands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) replayed_seq: Option<u64>,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

impl Outcome {
    /// A failure, until the handling of `letter` says otherwise.
    pub(super) fn of(letter: &DeadLetter) -> Self {
        Self {
            seq: letter.msg.sequence,
            room: letter.decoded.as_ref().ok().map(|d| d.room.to_string()),
            outcome: "failed",
            replayed_seq: None,
            error: None,
        }
    }

    /// A dead letter that could not even be read.
    pub(super) fn failed(seq: u64, error: &DlqError) -> Self {
        Self {
            seq,
            room: None,
            outcome: "failed",
            replayed_seq: None,
            error: Some(error.to_string()),
        }
    }

    /// The outcome `done` names, or a failure with its error.
    pub(super) fn finished(mut self, done: Result<&'static str, DlqError>) -> Self {
        match done {
            Ok(done) => self.outcome = done,
            Err(e) => self.error = Some(e.to_string()),
        }
        self
    }

    pub(super) fn text(&self) -> String {
        let mut text = format!("{} {}", self.seq, self.outcome);
        if let Some(room) = &self.room {
            let _ = write!(text, " room {room}");
        }
        if let Some(replayed_seq) = self.replayed_seq {
            let _ = write!(text, " as seq {replayed_seq}");
        }
        if let Some(error) = &self.error {
            let _ = write!(text, ": {}", printable(error));
        }
        text
    }
}
