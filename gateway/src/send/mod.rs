//! From a socket to the workers and back. In: a socket's sends, in order
//! (`publisher`), member commands (`commands`), scheduled messages
//! (`scheduled`, as commands) and read marks (`marks`).
//! Out: batches of envelopes on JetStream (`ingest`), commands and marks
//! on their streams (`ask`);
//! the workers' receipts and replies come back here and are answered to the
//! socket's outbox. `canary` probes that whole path on a timer.

mod ask;
mod batches;
pub mod canary;
pub mod commands;
pub mod ingest;
pub mod marks;
pub mod publisher;
pub mod scheduled;
