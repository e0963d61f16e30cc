//! Postgres: the schema migrations and every SQL statement of the system.
//!
//! Gateways read (membership, heads, history); workers write (`persist`);
//! the admin seam creates rooms and members.

mod apply;
mod command;
mod config;
mod decide;
mod error;
mod migrate;
mod persist;
mod pool;
mod reads;
mod rows;
pub mod sql;

pub use command::{Applied, Change, MemberChange, NewCommand, Refused};
pub use config::PostgresConfig;
pub use error::StoreError;
pub use persist::{NewMessage, Persisted};
pub use pool::Store;
