//! What happens to a send, a command or a notification that could not be
//! carried out this time: redelivered after a backoff that grows, by the
//! settings of its class, then parked on the dead-letter stream.

use std::time::Duration;

use async_nats::{
    jetstream::{self, AckKind},
    HeaderMap, HeaderValue,
};
use bytes::Bytes;
use chat_streams::headers as dead;

use crate::{config::RetryConfig, error::WorkerError};

/// Longest `Chat-Dead-Detail`: enough for a Postgres message, small beside the payload.
const MAX_DETAIL_BYTES: usize = 512;

/// What failed: each class has its own retry settings and dead letters.
#[derive(Clone, Copy, Debug)]
pub enum Class {
    /// A chat send (`retry`).
    Message,
    /// A command changing a room (`command_retry`).
    Command,
    /// A call of the notification webhook (`notify.retry`).
    Notification,
}

impl Class {
    fn dead_letter_subject(self, room: &str) -> String {
        match self {
            Self::Message => chat_protocol::subjects::dead_letter(room),
            Self::Command => chat_protocol::subjects::dead_command(room),
            Self::Notification => chat_protocol::subjects::dead_notification(room),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Message => "send",
            Self::Command => "command",
            Self::Notification => "notification",
        }
    }
}

/// Where a failure given up on is parked: JetStream, and how long the
/// publish of its dead letter may take.
#[derive(Clone, Copy)]
pub struct Parking<'a> {
    pub js: &'a jetstream::Context,
    pub limit: Duration,
}

/// The decision for one failed delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Redeliver after this delay.
    Retry(Duration),
    /// Park on the dead-letter stream, then ack.
    DeadLetter,
}

/// Exponential backoff with jitter by delivery count; permanent errors and exhausted
/// retries go to the dead-letter stream.
pub fn decide(config: &RetryConfig, error: &WorkerError, attempts: u32) -> Decision {
    if error.is_permanent() || attempts >= config.max_attempts.get() {
        return Decision::DeadLetter;
    }
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    let ceiling = config
        .base_delay
        .saturating_mul(factor)
        .min(config.max_delay);
    // Equal jitter: half the delay fixed, half random, so that messages
    // (and workers) that failed together do not all come back at once.
    let half = ceiling / 2;
    Decision::Retry(half + rand::random_range(Duration::ZERO..=ceiling - half))
}

/// What becomes of a send or command that failed, once its decision is
/// carried out.
#[derive(Debug, PartialEq, Eq)]
pub enum Settle {
    /// Done with: stored, answered, or safely parked as a dead letter.
    Done,
    /// To be redelivered after this delay.
    Retry(Duration),
}

impl Settle {
    pub fn ack_kind(&self) -> AckKind {
        match self {
            Self::Done => AckKind::Ack,
            Self::Retry(delay) => AckKind::Nak(Some(*delay)),
        }
    }
}

/// Decides on a failed send or command (`payload`), delivered `delivered`
/// times and tried `tried` times in place (whichever counts more), and
/// parks it on the dead-letter stream if that is the decision. It is done
/// with only once its dead letter is safely stored.
#[allow(clippy::too_many_arguments)]
pub async fn fail(
    parking: Parking<'_>,
    config: &RetryConfig,
    class: Class,
    payload: Bytes,
    delivered: u32,
    room: &str,
    error: &WorkerError,
    tried: u32,
) -> Settle {
    let class_name = class.as_str();
    let attempts = delivered.max(tried);
    match decide(config, error, attempts) {
        Decision::Retry(delay) => {
            tracing::warn!(error = %error.detail(), attempts, ?delay, class = class_name, "failed; retrying");
            match class {
                Class::Message => crate::metrics::retried(error.label()),
                Class::Command => crate::metrics::command("retried"),
                Class::Notification => crate::metrics::notification("retried"),
            }
            Settle::Retry(delay)
        }
        Decision::DeadLetter => {
            tracing::error!(error = %error.detail(), attempts, class = class_name, "dead-lettered");
            match class {
                Class::Message => crate::metrics::dead_lettered(error.label()),
                Class::Command => crate::metrics::command("dead_lettered"),
                Class::Notification => crate::metrics::notification("dead_lettered"),
            }
            let mut headers = HeaderMap::new();
            headers.insert(dead::DEAD_REASON, error.label());
            headers.insert(dead::DEAD_DETAIL, detail(error));
            headers.insert(dead::ATTEMPTS, HeaderValue::from(attempts));
            let subject = class.dead_letter_subject(room);
            let stored =
                chat_streams::stored(parking.js, subject, headers, payload, parking.limit).await;
            if stored.is_ok() {
                Settle::Done
            } else {
                Settle::Retry(config.max_delay)
            }
        }
    }
}

/// [`fail`] for a whole JetStream message (a command, or a payload that is
/// no send at all), which it then acks or naks.
pub async fn fail_message(
    parking: Parking<'_>,
    config: &RetryConfig,
    class: Class,
    msg: &jetstream::Message,
    room: &str,
    error: &WorkerError,
) {
    let delivered = msg.info().map(|i| i.delivered.max(1) as u32).unwrap_or(1);
    let payload = msg.payload.clone();
    let settle = fail(parking, config, class, payload, delivered, room, error, 1).await;
    if let Err(e) = msg.ack_with(settle.ack_kind()).await {
        tracing::warn!(error = %e, "ack failed");
    }
}

/// The error and its causes as one header line. Errors can span lines
/// (Postgres adds `DETAIL:` and `HINT:` lines) and a header value must not
/// contain CR or LF (`HeaderMap::insert` with a `&str` panics on them), so
/// line breaks become spaces; the text is cut at a character boundary to a
/// bounded size.
fn detail(error: &WorkerError) -> HeaderValue {
    let mut text = error.detail().replace(['\r', '\n'], " ");
    if text.len() > MAX_DETAIL_BYTES {
        let mut end = MAX_DETAIL_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    // Cannot fail once CR and LF are gone; an empty detail is still a dead letter.
    text.parse().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 4.try_into().unwrap(),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
        }
    }

    #[test]
    fn transient_errors_back_off_with_jitter_then_dead_letter() {
        let e = WorkerError::Nats("down".into());
        for (attempts, ceiling) in [(1, 100), (2, 200), (3, 250)] {
            let delays: Vec<u64> = (0..200)
                .map(|_| match decide(&config(), &e, attempts) {
                    Decision::Retry(d) => d.as_millis() as u64,
                    Decision::DeadLetter => panic!("retried before max_attempts"),
                })
                .collect();
            let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
            assert!(
                *min >= ceiling / 2 && *max <= ceiling,
                "{attempts}: {min}..{max}"
            );
            assert!(min < max, "attempt {attempts}: the delays are spread");
        }
        assert_eq!(decide(&config(), &e, 4), Decision::DeadLetter);
    }

    #[test]
    fn a_multi_line_error_makes_a_one_line_bounded_detail() {
        let e = WorkerError::BadEnvelope(format!("line one\r\nDETAIL: {}", "é".repeat(400)));
        let value = detail(&e);
        assert!(value
            .as_str()
            .starts_with("undecodable envelope: line one  DETAIL: é"));
        assert!(!value.as_str().contains(['\r', '\n']));
        assert!(value.as_str().len() <= MAX_DETAIL_BYTES);
    }

    #[test]
    fn permanent_errors_dead_letter_at_once() {
        assert_eq!(
            decide(&config(), &WorkerError::RoomMissing, 1),
            Decision::DeadLetter
        );
    }
}
