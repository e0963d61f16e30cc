//! A client for the chat protocol over WebSocket, in either encoding.
//!
//! Two levels:
//! - [`connect`] opens one socket and returns raw [`Writer`]/[`Reader`]
//!   halves: no retry, no correlation. Tests use it to speak (and misspeak)
//!   the protocol exactly.
//! - [`Client`] is what an application wants: replies matched to requests,
//!   sends resent until acked (same `clientMsgId`, in the order sent),
//!   rooms resumed with `sinceSeq` on reconnect so every message is seen
//!   once and in seq order, and reconnects across a list of gateways with
//!   backoff and jitter. [`RoomApi`] creates rooms and manages members.
//! - [`Timeline`] turns a room's entries (live, replayed or paged) into its
//!   messages as they stand: edits, deletes, reactions and replies applied
//!   once each.
//!
//! ```no_run
//! # async fn demo() -> Result<(), chat_client::ClientError> {
//! use chat_client::{Client, ClientOptions, ClientEncoding};
//! let options = ClientOptions::new(
//!     ["ws://127.0.0.1:8080/v1/ws", "ws://127.0.0.1:8081/v1/ws"],
//!     "<token>",
//!     ClientEncoding::Json,
//! );
//! let (client, mut messages) = Client::connect(options);
//! client.join("lobby", None).await?;
//! let ack = client.send("lobby", "hello").await?;
//! println!("stored as seq {}", ack.seq);
//! while let Some(m) = messages.recv().await {
//!     println!("#{} <{}> {}", m.seq, m.sender, m.body);
//! }
//! # Ok(()) }
//! ```
//!
//! `cargo run -p chat-client --example chat_pair -- --url ... --token ...`
//! runs two such clients against a cluster.
//!
//! Used by the `chat` CLI, the end-to-end tests and the load generator, so
//! all of them speak exactly what a real client speaks.

mod backoff;
mod client;
mod connection;
mod driver;
mod entry;
mod error;
mod options;
mod room_api;
mod scheduled;
mod signals;
mod timeline;

pub use backoff::Backoff;
pub use client::{Client, HistoryCursor, Messages, PendingAck};
pub use connection::{connect, connect_from, ConnectOptions, Credentials, Event, Reader, Writer};
pub use entry::NewEntry;
pub use error::ClientError;
pub use options::ClientOptions;
pub use room_api::{RoomApi, RoomApiError};
pub use signals::{Signal, Signals};
pub use timeline::Timeline;

/// The room API's handle before it was named for it.
#[deprecated(note = "renamed RoomApi")]
pub type Admin = RoomApi;
/// The room API's error before it was named for it.
#[deprecated(note = "renamed RoomApiError")]
pub type AdminError = RoomApiError;

pub use chat_proto::v1::{
    Ack, DirectRoom, Feed, HistoryPage, Joined, Message, PresenceNow, ReadMarker, Reads, RoomList,
    RoomSummary, ScheduledList, ScheduledMessage, SearchHit, SearchResults, TypingNow,
    UserPresence,
};
pub use chat_protocol::codec::Encoding as ClientEncoding;
pub use tokio_tungstenite::tungstenite::Message as RawMessage;
