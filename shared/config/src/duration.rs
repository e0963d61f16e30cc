//! Durations as integers in config files and environment variables.
//!
//! A field stays `ack_timeout_ms = 10000` on the outside and is a
//! `Duration` inside: `#[serde(with = "chat_config::millis")]`, or
//! `chat_config::millis::non_zero` where zero would be meaningless (a zero
//! is then refused while parsing, naming the field). Same for `secs`.

use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serializer};

/// A duration as a whole number of milliseconds.
pub mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let ms = u64::try_from(d.as_millis()).map_err(serde::ser::Error::custom)?;
        s.serialize_u64(ms)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }

    /// Milliseconds, refusing zero.
    pub mod non_zero {
        use super::*;

        pub use super::serialize;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            refuse_zero(super::deserialize(d)?, "a number of milliseconds > 0")
        }
    }
}

/// A duration as a whole number of seconds.
pub mod secs {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }

    /// Seconds, refusing zero.
    pub mod non_zero {
        use super::*;

        pub use super::serialize;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            refuse_zero(super::deserialize(d)?, "a number of seconds > 0")
        }
    }
}

fn refuse_zero<E: de::Error>(d: Duration, expected: &'static str) -> Result<Duration, E> {
    if d.is_zero() {
        Err(E::invalid_value(de::Unexpected::Unsigned(0), &expected))
    } else {
        Ok(d)
    }
}
