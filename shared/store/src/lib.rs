//! Postgres: the schema migrations and every SQL statement of the system.
//!
//! Gateways read (membership, heads, history, a user's rooms, search, read
//! markers); workers write (`persist`, `markers`, `scheduled`);
//! the admin seam creates rooms and members; `users` exports and erases
//! one user's data.

mod apply;
mod command;
mod config;
mod decide;
mod error;
mod feed;
mod markers;
mod migrate;
mod my_rooms;
mod persist;
mod pool;
mod reads;
mod retention;
mod rows;
mod scheduled;
mod search;
pub mod sql;
mod users;

pub use command::{Applied, Change, Limits, MemberChange, NewCommand, Refused};
pub use config::PostgresConfig;
pub use error::StoreError;
pub use markers::{Mark, Marked};
pub use my_rooms::{RoomsPage, RoomsPosition};
pub use persist::{NewMessage, Persisted, Refusal, AT_ONCE_FROM};
pub use pool::Store;
pub use retention::Due;
pub use scheduled::{ScheduleRefused, Scheduled, SentDue, ToSchedule, MAX_PENDING};
pub use search::{HitPosition, HitsPage, Searched};
pub use users::{EntryCursor, Exported};
