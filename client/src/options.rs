//! How a [`crate::Client`] connects and behaves when things fail.

use std::time::Duration;

use chat_protocol::codec::Encoding;

use crate::Credentials;

/// What a [`Client`] connects to and how it behaves when things fail.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Gateway URLs (`ws://host:port/v1/ws`), tried in turn: a reconnect
    /// goes to the next one.
    pub urls: Vec<String>,
    /// A bearer token (a ticket works once, so it cannot survive a reconnect).
    pub credentials: Credentials,
    pub encoding: Encoding,
    /// Sends written and not yet answered, at most. Keep it at or below the
    /// gateway's `limits.max_inflight_sends`: a send refused with
    /// `rate_limited` is resent, but sends written after it may already
    /// have been accepted, which breaks the order of the socket's sends.
    pub max_inflight_sends: usize,
    /// How many times one send may be refused with `rate_limited` (resent
    /// after a jittered, growing delay) before it fails with
    /// `ClientError::RateLimited`, so that a client over its rate hears of
    /// it instead of retrying forever.
    pub rate_limited_attempts: u32,
    /// First reconnect delay ceiling; doubles per failed attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Consecutive failed connection attempts before giving up (`None`: never).
    pub max_reconnect_attempts: Option<u32>,
    /// How long one handshake may take before the next gateway is tried.
    pub connect_timeout: Duration,
    /// With requests awaiting replies, how long the socket may stay silent
    /// before it is presumed dead (a hung gateway, a half-open TCP
    /// connection) and dropped. Above the gateway's `ack_timeout_ms`, which
    /// answers a slow send with `timeout` well before.
    pub silence_timeout: Duration,
}

impl ClientOptions {
    pub fn new(
        urls: impl IntoIterator<Item = impl Into<String>>,
        token: impl Into<String>,
        encoding: Encoding,
    ) -> Self {
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            credentials: Credentials::Bearer(token.into()),
            encoding,
            max_inflight_sends: 64,
            rate_limited_attempts: 8,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_reconnect_attempts: None,
            connect_timeout: Duration::from_secs(10),
            silence_timeout: Duration::from_secs(20),
        }
    }

    pub fn max_inflight_sends(mut self, n: usize) -> Self {
        self.max_inflight_sends = n.max(1);
        self
    }

    pub fn rate_limited_attempts(mut self, n: u32) -> Self {
        self.rate_limited_attempts = n.max(1);
        self
    }

    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    pub fn max_reconnect_attempts(mut self, n: u32) -> Self {
        self.max_reconnect_attempts = Some(n);
        self
    }

    pub fn silence_timeout(mut self, timeout: Duration) -> Self {
        self.silence_timeout = timeout;
        self
    }
}
