//! Ephemeral signals about the members of rooms: never stored and not in
//! any room's sequence. A user typing (from their socket's gateway), a
//! read marker that moved (from the worker that stored it), a user online
//! or offline (from the gateway that saw it, `presence`).
//!
//! They travel in batches over core NATS on one subject, `chat.signals`:
//! a gateway gathers what its sockets and presence say for [`LINGER`] and
//! publishes it as one message (`publish`), and every gateway hands each
//! signal of a batch to the room's task, if the room has one here, which
//! tells its sockets (`listen`; `rooms::ephemeral`). One message per batch,
//! not per signal: 10,000 members typing every 3 s are about 40 NATS
//! messages a second, not 3,333 published and 3,333 received per gateway.

mod listen;
mod publish;

use std::time::Duration;

pub use listen::listen;
pub use publish::Signals;

/// How long a gateway gathers signals before publishing them as one
/// message: a typing indicator or a presence dot a twentieth of a second
/// late is not seen as late.
pub const LINGER: Duration = Duration::from_millis(50);
