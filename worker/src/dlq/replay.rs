//! Replaying one dead letter: republished to its room's bulk (or command)
//! subject, then deleted.

use super::{letter::DeadLetter, outcome::Outcome, stream::DeadLetters};

/// Replays one dead letter, or with `dry_run` only says it would. The dead
/// letter is deleted only after JetStream acked the republish: a failure
/// in between leaves both, and running the replay again is harmless.
pub(super) async fn replay(dead: &DeadLetters, letter: &DeadLetter, dry_run: bool) -> Outcome {
    let mut outcome = Outcome::of(letter);
    let decoded = match &letter.decoded {
        Ok(decoded) => decoded,
        Err(e) => {
            outcome.outcome = "skipped";
            outcome.error = Some(format!("undecodable, cannot be replayed: {e}"));
            return outcome;
        }
    };
    if dry_run {
        return outcome.finished(Ok("would_replay"));
    }
    let done = match dead.republish(letter, decoded).await {
        Ok(replayed_seq) => {
            outcome.replayed_seq = Some(replayed_seq);
            dead.delete(letter.msg.sequence).await.map(|()| "replayed")
        }
        Err(e) => Err(e),
    };
    outcome.finished(done)
}
