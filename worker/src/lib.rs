//! The chat worker: consumes accepted sends from JetStream (each ingest
//! partition pinned to one worker at a time), stores them in Postgres with a
//! gap-free per-room seq, keeps the Redis cache, fans out, and only then acks.

pub mod app;
pub mod canary;
pub mod commands;
pub mod config;
pub mod ctx;
pub mod dlq;
pub mod error;
pub mod fanout;
pub mod gate;
pub mod health;
pub mod intake;
pub mod lanes;
pub mod marks;
pub mod metrics;
pub mod notify;
pub mod partitions;
pub mod persist;
pub mod pulled;
pub mod retention;
pub mod retry;
pub mod scheduled;

pub use app::Worker;
pub use config::WorkerConfig;
