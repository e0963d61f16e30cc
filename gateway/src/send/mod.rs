//! From a socket to the workers and back. In: a socket's sends, in order
//! (`publisher`), and member commands (`commands`). Out: batches of
//! envelopes on JetStream (`ingest`) and commands on the command stream;
//! the workers' receipts and replies come back here and are answered to the
//! socket's outbox. `canary` probes that whole path on a timer.

mod batches;
pub mod canary;
pub mod commands;
pub mod ingest;
pub mod publisher;
