//! The chat gateway: terminates WebSockets, authenticates, checks membership,
//! publishes sends to JetStream and delivers each room's stored messages to
//! its local sockets in seq order. It keeps no state another gateway needs.

pub mod app;
pub mod auth;
pub mod canary;
pub mod command;
pub mod config;
pub mod control;
pub mod delivery;
pub mod drain;
pub mod error;
pub mod health;
pub mod history;
pub mod hub;
pub mod ingest;
pub mod limits;
pub mod membership;
pub mod metrics;
pub mod probe;
pub mod publisher;
pub mod replay;
pub mod room;
pub mod rooms;
pub mod server;
pub mod session;
pub mod state;

pub use app::Application;
pub use config::GatewayConfig;
