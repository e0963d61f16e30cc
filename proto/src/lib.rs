//! The chat protocol as Rust types, generated from `chat/**/*.proto`.
//!
//! [`v1`] is what clients speak; [`internal`] travels between gateways and
//! workers over NATS. Every type has serde impls that follow the proto3
//! canonical JSON mapping, which is the `chat.v1.json` encoding.

/// Generated modules, nested as the proto packages are.
mod chat {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/chat.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/chat.v1.serde.rs"));
    }
    pub mod internal {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/chat.internal.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/chat.internal.v1.serde.rs"));
        }
    }
}

/// Gateway ↔ worker messages.
pub use chat::internal::v1 as internal;
/// Client-facing protocol, version 1.
pub use chat::v1;
pub use prost::Message as ProstMessage;

impl v1::Left {
    /// The server made the socket leave: no longer a member.
    pub const REMOVED: &'static str = "removed";
    /// The server made the socket leave: the room is deleted.
    pub const DELETED: &'static str = "deleted";
}
