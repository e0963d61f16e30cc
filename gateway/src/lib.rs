//! The chat gateway: terminates WebSockets, authenticates, checks membership,
//! publishes sends to JetStream and delivers each room's stored messages to
//! its local sockets in seq order. It keeps no state another gateway needs.
//!
//! The folders follow a frame: `http` accepts connections and requests,
//! `socket` serves one upgraded WebSocket, `send` takes its sends and
//! commands to the workers and brings their answers back, `rooms` delivers
//! each room's committed messages to the sockets that joined it; `lookup`
//! answers a user's reads outside a room's sequence (their rooms, search);
//! `signals` carries what is never stored (typing, read markers, presence)
//! between gateways.

pub mod app;
pub mod config;
pub mod error;
pub mod feed;
pub mod http;
pub mod listen;
pub mod lookup;
pub mod metrics;
pub mod presence;
pub mod rooms;
pub mod send;
pub mod signals;
pub mod socket;
pub mod state;

pub use app::Application;
pub use config::GatewayConfig;
