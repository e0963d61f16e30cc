//! A walk through the dead-letter stream for the dead letters a filter
//! keeps, one request per dead letter.

use async_nats::jetstream::stream::RawMessageErrorKind;
use chat_protocol::subjects;

use super::{args::Filter, error::DlqError, letter::DeadLetter, stream::DeadLetters};

impl DeadLetters {
    /// The dead letters that match `filter`, oldest first. The scan stops
    /// at the newest one when it started, so that a replay that fails again
    /// (and is dead-lettered anew) is not met again by the same run.
    pub(super) fn scan<'a>(&'a self, filter: &'a Filter) -> Scan<'a> {
        Scan {
            dead: self,
            filter,
            seq: 1,
            last: self.stream.cached_info().state.last_sequence,
        }
    }
}

/// A walk through the dead-letter stream, one request per dead letter.
pub(super) struct Scan<'a> {
    dead: &'a DeadLetters,
    filter: &'a Filter,
    /// Where the next request starts.
    seq: u64,
    /// The newest dead letter when the scan started.
    last: u64,
}

impl Scan<'_> {
    pub(super) async fn next(&mut self) -> Result<Option<DeadLetter>, DlqError> {
        while self.seq <= self.last {
            let found = self
                .dead
                .stream
                .get_first_raw_message_by_subject(subjects::dead_letter_all(), self.seq)
                .await;
            let msg = match found {
                Ok(msg) if msg.sequence <= self.last => msg,
                Ok(_) => break,
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
                Err(source) => {
                    return Err(DlqError::Read {
                        seq: self.seq,
                        source,
                    })
                }
            };
            self.seq = msg.sequence + 1;
            let letter = DeadLetter::new(msg);
            if letter.matches(self.filter) {
                return Ok(Some(letter));
            }
        }
        Ok(None)
    }
}
