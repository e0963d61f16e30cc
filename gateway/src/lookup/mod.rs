//! What a user looks up outside a room's sequence: the rooms they belong
//! to (`my_rooms`) and full-text search (`search`). In: a socket's frame
//! (`socket::dispatch`) or an HTTP request (`http::lookups`), both parsed
//! here with the same checks. Out: one page, read by one statement, with
//! an opaque cursor (`cursor`) to the next.

pub mod cursor;
pub mod my_rooms;
pub mod search;

use crate::error::GatewayError;

/// A page's size when the request names none.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page a request may ask for.
pub const MAX_LIMIT: u32 = 200;

/// The page size asked for: absent is [`DEFAULT_LIMIT`]; 0 and anything
/// over [`MAX_LIMIT`] are refused.
pub fn page_limit(limit: Option<u32>) -> Result<usize, GatewayError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n as usize),
        n => Err(GatewayError::InvalidArgument(format!(
            "limit is {n}; it must be 1..={MAX_LIMIT}"
        ))),
    }
}
