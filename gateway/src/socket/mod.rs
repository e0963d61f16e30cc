//! One upgraded WebSocket. In: the client's frames, read by `session`
//! under the socket's `limits`; the rooms' deliveries and the workers'
//! answers, queued in its `outbox` (ephemeral frames that found it full
//! wait in its `stash`). Out: sends and commands to `send`,
//! joins and leaves to `rooms::hub`, watching the feed to `feed`, frames
//! to the client. `drain` says
//! when the socket closes during a shutdown.

pub mod checks;
mod dispatch;
pub mod drain;
pub mod limits;
mod liveness;
pub mod outbox;
pub mod request;
mod scheduling;
pub mod session;
mod stash;
mod writer;
