//! Purging one dead letter: deleted for good, whatever it holds.

use super::{letter::DeadLetter, outcome::Outcome, stream::DeadLetters};

/// Deletes one dead letter, or with `dry_run` only says it would.
pub(super) async fn purge(dead: &DeadLetters, letter: &DeadLetter, dry_run: bool) -> Outcome {
    let done = match dry_run {
        true => Ok("would_purge"),
        false => dead.delete(letter.msg.sequence).await.map(|()| "purged"),
    };
    Outcome::of(letter).finished(done)
}
