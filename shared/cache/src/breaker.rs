//! The circuit breaker in front of Redis. Closed, it counts calls that
//! fail on the connection in a row; at `failures` it opens, and calls fail
//! at once, without touching the network, for `open_for`. Then the next
//! call goes through as a probe (the others still fail at once): an answer
//! closes the breaker, a failure opens it again. A probe whose caller gave
//! up before its answer leaves the breaker open; another goes after
//! `open_for`. A command Redis refuses (a wrong type, say) is an answer.

use std::{
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{RedisError, RedisResult};

const SHORT_CIRCUITED: &str = "chat_redis_short_circuited_total";
const TRIPS: &str = "chat_redis_breaker_trips_total";
const FAILED: &str = "chat_redis_failed_calls_total";
const OPEN: &str = "chat_redis_breaker_open";

#[derive(Clone, Copy)]
enum State {
    Closed {
        failed: u32,
    },
    /// Calls fail at once until `until`; the first after it is a probe.
    Open {
        until: Instant,
    },
}

pub(crate) struct Breaker {
    failures: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub(crate) fn new(failures: NonZeroU32, open_for: Duration) -> Self {
        Self {
            failures: failures.get(),
            open_for,
            state: Mutex::new(State::Closed { failed: 0 }),
        }
    }

    /// Whether a call may go to Redis now; the error to fail it with if not.
    pub(crate) fn admit(&self) -> RedisResult<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if Instant::now() >= until => {
                *state = State::Open {
                    until: Instant::now() + self.open_for,
                };
                Ok(())
            }
            State::Open { .. } => {
                metrics::counter!(SHORT_CIRCUITED).increment(1);
                Err(RedisError::from(std::io::Error::other(
                    "Redis is not answering (circuit breaker open)",
                )))
            }
        }
    }

    /// Counts a call's outcome and hands it back.
    pub(crate) fn settle<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        let failed = result.as_ref().is_err_and(on_the_connection);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match (*state, failed) {
            (State::Closed { failed: 0 }, false) => {}
            (State::Closed { .. }, false) => *state = State::Closed { failed: 0 },
            (State::Open { .. }, false) => {
                *state = State::Closed { failed: 0 };
                metrics::gauge!(OPEN).set(0.0);
                tracing::info!("Redis answers again: circuit breaker closed");
            }
            (State::Closed { failed }, true) if failed + 1 < self.failures => {
                metrics::counter!(FAILED).increment(1);
                *state = State::Closed { failed: failed + 1 };
            }
            (_, true) => {
                metrics::counter!(FAILED).increment(1);
                let was_closed = matches!(*state, State::Closed { .. });
                *state = State::Open {
                    until: Instant::now() + self.open_for,
                };
                if was_closed {
                    metrics::counter!(TRIPS).increment(1);
                    metrics::gauge!(OPEN).set(1.0);
                    tracing::warn!(open_for = ?self.open_for, "Redis not answering: circuit breaker open, calls fail at once");
                }
            }
        }
        result
    }
}

/// A failure of the link rather than an answer.
fn on_the_connection(e: &RedisError) -> bool {
    e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}
