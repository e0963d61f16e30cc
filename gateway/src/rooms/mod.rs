//! Delivery of each room's committed messages to this gateway's sockets.
//! In: joins and leaves (`hub`, which runs one `room` task per room with
//! local members), the workers' fan-out on `chat.room.<room>`, committed
//! member changes (`announcements`), the heads seen by the `tail_probe`,
//! members typing, read markers that moved and users online (`crate::signals`).
//! Out: each message once, in seq order, to every member socket's outbox,
//! with gaps filled and resuming sockets caught up (`replay`) from the
//! store (`history`). `membership` answers who may join or send; `pages`
//! serves history pages to members who ask for them.

pub mod announcements;
mod coalesce;
pub mod ephemeral;
pub mod history;
pub mod hub;
mod members;
pub mod membership;
pub mod pages;
mod reorder;
pub mod replay;
pub mod room;
pub mod tail_probe;
pub mod typing;
