//! The gateway's configuration: defaults < `$CHAT_CONFIG` file < `CHAT_GATEWAY_*`.

use std::{
    net::SocketAddr,
    num::{NonZeroU32, NonZeroUsize},
    time::Duration,
};

use chat_cache::RedisConfig;
use chat_config::{
    check_backend_urls, millis, secs, BackendUrl, LogConfig, Secret, StreamConfig, Validate,
};
use chat_store::PostgresConfig;
use chat_telemetry::TracingConfig;

pub use crate::{http::web::WebConfig, presence::PresenceConfig};
use serde::{Deserialize, Serialize};

/// Prefix of the gateway's environment variables.
pub const ENV_PREFIX: &str = "CHAT_GATEWAY_";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// Address for WebSocket, admin and health traffic.
    pub listen: SocketAddr,
    /// Unique per running gateway; names its receipt subject. Empty: a random id.
    pub gateway_id: String,
    pub nats_url: BackendUrl,
    pub redis_url: BackendUrl,
    pub redis: RedisConfig,
    pub postgres: PostgresConfig,
    pub jwt: JwtConfig,
    /// Browser origins allowed to open sockets; requests without `Origin`
    /// (non-browser clients) are not affected.
    pub allowed_origins: Vec<String>,
    /// The service token of the room API (`/v1/rooms`): trusted backends
    /// may do anything the rules leave to the service. Empty: only users
    /// (with their JWT) may call it.
    pub admin_token: Secret,
    pub limits: Limits,
    pub delivery: DeliveryConfig,
    pub stream: StreamConfig,
    pub log: LogConfig,
    pub tracing: TracingConfig,
    pub canary: CanaryConfig,
    pub presence: PresenceConfig,
    /// The web chat page at `/`.
    pub web: WebConfig,
    /// After SIGTERM, how long the gateway reports not-ready (so the load
    /// balancer stops sending new sockets) before it closes its sockets.
    #[serde(rename = "drain_delay_ms", with = "millis")]
    pub drain_delay: Duration,
    /// Then the window over which its sockets are closed (1012), each at a
    /// uniformly random moment, so their reconnects reach the other
    /// gateways as a trickle rather than all at once. 0: all at once.
    #[serde(rename = "drain_spread_ms", with = "millis")]
    pub drain_spread: Duration,
    /// How long a closing socket waits for the answers to its sends in
    /// flight. The whole drain takes at most drain_delay_ms +
    /// drain_spread_ms + drain_timeout_ms + 2 s (the clients' answers to
    /// the close frames): keep the orchestrator's grace period (Kubernetes
    /// terminationGracePeriodSeconds) above that.
    #[serde(rename = "drain_timeout_ms", with = "millis::non_zero")]
    pub drain_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".parse().expect("valid address"),
            gateway_id: String::new(),
            nats_url: BackendUrl::new("nats://127.0.0.1:4222"),
            redis_url: BackendUrl::new("redis://127.0.0.1:6379"),
            redis: RedisConfig::default(),
            postgres: PostgresConfig::default(),
            jwt: JwtConfig::default(),
            allowed_origins: Vec::new(),
            admin_token: Secret::default(),
            limits: Limits::default(),
            delivery: DeliveryConfig::default(),
            stream: StreamConfig::default(),
            log: LogConfig::default(),
            tracing: TracingConfig::default(),
            canary: CanaryConfig::default(),
            presence: PresenceConfig::default(),
            web: WebConfig::default(),
            drain_delay: Duration::from_millis(5000),
            drain_spread: Duration::from_millis(10_000),
            drain_timeout: Duration::from_millis(10_000),
        }
    }
}

/// How access tokens are checked. Exactly one key must be set.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtConfig {
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Secret,
    /// PEM public key for RS256 tokens.
    pub rs256_public_key_pem: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(rename = "leeway_secs", with = "secs")]
    pub leeway: Duration,
    /// Lifetime of a one-time WebSocket ticket, in seconds.
    #[serde(rename = "ticket_ttl_secs", with = "secs::non_zero")]
    pub ticket_ttl: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret: Secret::default(),
            rs256_public_key_pem: String::new(),
            leeway: Duration::from_secs(30),
            ticket_ttl: Duration::from_secs(30),
        }
    }
}

/// Limits: what one socket, user or client address may cost the gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest WebSocket frame or message accepted; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Largest message body accepted in a `send`.
    pub max_body_bytes: NonZeroUsize,
    /// Frames queued for one socket before it counts as a slow consumer:
    /// its stored messages stop (it is told to resync the room), its
    /// ephemeral frames wait as their latest state.
    pub socket_queue: NonZeroUsize,
    /// Bytes of stored messages queued for one socket, likewise.
    pub socket_queue_bytes: NonZeroUsize,
    /// Sends of one socket awaiting their commit at once.
    pub max_inflight_sends: NonZeroUsize,
    /// Server publishes (`POST /v1/rooms/{room}/messages`) awaiting their
    /// commit at once on this gateway; more are refused with 429. Bots are
    /// not held to the send rates, but a flood must not queue unbounded work.
    pub max_inflight_publishes: NonZeroUsize,
    /// WebSocket read and write buffer sizes. Small buffers keep idle sockets
    /// cheap (bench `connections`: 13.3 KiB RSS per socket at 4 KiB, 11.3 at
    /// 2 KiB, 10.4 at 1 KiB); chat frames are mostly well under 2 KiB and
    /// larger ones just take more reads.
    pub ws_buffer_bytes: NonZeroUsize,
    /// How long a send may wait for its commit before the client gets `timeout`.
    #[serde(rename = "ack_timeout_ms", with = "millis::non_zero")]
    pub ack_timeout: Duration,
    /// How long a new TCP connection may take to send its complete HTTP
    /// request (the upgrade) before it is dropped.
    #[serde(rename = "handshake_timeout_ms", with = "millis::non_zero")]
    pub handshake_timeout: Duration,
    /// A socket heard nothing from for a whole interval of this length is
    /// pinged.
    #[serde(rename = "ping_interval_ms", with = "millis::non_zero")]
    pub ping_interval: Duration,
    /// A pinged socket from which nothing (not even the pong) arrives within
    /// this is closed (4000, `timeout`).
    #[serde(rename = "pong_timeout_ms", with = "millis::non_zero")]
    pub pong_timeout: Duration,
    /// How long one write to a socket may block before the socket is closed
    /// (a peer that stopped reading at the TCP level).
    #[serde(rename = "write_timeout_ms", with = "millis::non_zero")]
    pub write_timeout: Duration,
    /// Open sockets per gateway; the next upgrade is refused with 503.
    pub max_connections: NonZeroUsize,
    /// Rooms one socket may have joined at once (`limit_exceeded` beyond).
    pub max_rooms_per_connection: NonZeroUsize,
    /// Sends per second one socket may make, sustained (a token bucket);
    /// a send beyond it gets `rate_limited` and is not published.
    pub send_rate_per_connection: NonZeroU32,
    /// Sends one socket may make at once after a quiet spell (bucket size).
    pub send_burst_per_connection: NonZeroU32,
    /// Sends per second one user may make over all their sockets on this
    /// gateway, sustained: more sockets buy no more throughput.
    pub send_rate_per_user: NonZeroU32,
    /// Sends one user may make at once after a quiet spell (bucket size).
    pub send_burst_per_user: NonZeroU32,
    /// Reads (history pages, searches, room lists; socket or HTTP) per
    /// second one user may make on this gateway, sustained: readers paging
    /// flat out would otherwise take the servers from every writer.
    pub read_rate_per_user: NonZeroU32,
    /// Reads one user may make at once after a quiet spell (bucket size).
    pub read_burst_per_user: NonZeroU32,
    /// Consecutive sends of one socket refused by a send rate before the
    /// socket is closed (1008, `rate_limited`): a client that ignores the
    /// refusals is flooding.
    pub rate_limited_close_after: NonZeroU32,
    /// Open sockets per user on this gateway; the next upgrade is refused
    /// with 429 (`limit_exceeded`).
    pub max_connections_per_user: NonZeroUsize,
    /// Open sockets per client IP address on this gateway; the next upgrade
    /// is refused with 429 (`limit_exceeded`). Generous: offices and mobile
    /// carriers put many users behind one address. Behind a proxy every
    /// socket comes from the proxy's address: set `trust_forwarded_for`.
    pub max_connections_per_ip: NonZeroUsize,
    /// Take the client's address from the last `X-Forwarded-For` entry
    /// rather than the TCP peer. Only behind a proxy that appends it:
    /// otherwise any client can claim any address and dodge the per-IP cap.
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_body_bytes: count(16 * 1024),
            socket_queue: count(4096),
            socket_queue_bytes: count(4 << 20),
            max_inflight_sends: count(256),
            max_inflight_publishes: count(1024),
            ws_buffer_bytes: count(2048),
            ack_timeout: Duration::from_millis(10_000),
            handshake_timeout: Duration::from_millis(10_000),
            ping_interval: Duration::from_millis(30_000),
            pong_timeout: Duration::from_millis(10_000),
            write_timeout: Duration::from_millis(10_000),
            max_connections: count(50_000),
            max_rooms_per_connection: count(100),
            send_rate_per_connection: rate(20),
            send_burst_per_connection: rate(40),
            send_rate_per_user: rate(50),
            send_burst_per_user: rate(100),
            read_rate_per_user: rate(20),
            read_burst_per_user: rate(40),
            rate_limited_close_after: rate(50),
            max_connections_per_user: count(20),
            max_connections_per_ip: count(1000),
            trust_forwarded_for: false,
        }
    }
}

/// How rooms deliver in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// How long a message that arrived ahead of a missing one waits before
    /// the gap is filled from the store.
    #[serde(rename = "gap_fill_after_ms", with = "millis::non_zero")]
    pub gap_fill_after: Duration,
    /// How soon after its last message a room checks the store for a lost
    /// tail (messages published but never received, with nothing after them
    /// to reveal the gap). Quiet rooms are checked at doubling intervals.
    #[serde(rename = "head_probe_ms", with = "millis::non_zero")]
    pub head_probe: Duration,
    /// Longest interval between lost-tail checks of a quiet room. NATS
    /// slow-consumer and reconnect events check every room at once.
    #[serde(rename = "idle_probe_max_ms", with = "millis")]
    pub idle_probe_max: Duration,
    /// Messages a room buffers while waiting for a missing one; beyond it
    /// the room drops the newest and refills from the store.
    pub max_pending: NonZeroUsize,
    /// Messages a resuming socket's replay reads per page, and the most it
    /// has queued for the socket at once: its memory bound.
    pub replay_page: NonZeroUsize,
    /// How long a membership answer stays in Redis.
    #[serde(rename = "membership_ttl_secs", with = "secs::non_zero")]
    pub membership_ttl: Duration,
    /// How long a socket told to resync a room may take to join it again
    /// (or leave it) while the room goes on, before it is closed as a slow
    /// consumer (4008).
    #[serde(rename = "resync_timeout_ms", with = "millis::non_zero")]
    pub resync_timeout: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            gap_fill_after: Duration::from_millis(100),
            head_probe: Duration::from_millis(1000),
            idle_probe_max: Duration::from_millis(30_000),
            max_pending: count(10_000),
            replay_page: count(64),
            membership_ttl: Duration::from_secs(60),
            resync_timeout: Duration::from_secs(10),
        }
    }
}

/// The delivery canary: a probe through ingest stream, worker and back.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryConfig {
    /// How often a probe is sent; one not answered within this counts as failed.
    #[serde(rename = "interval_ms", with = "millis::non_zero")]
    pub interval: Duration,
    /// Consecutive failed probes after which `/readyz` fails; 0: the canary
    /// never fails readiness. Off by default on purpose: with every worker
    /// down, every gateway's canary fails at once, and readiness tied to it
    /// would take all gateways out of the load balancer, turning "new
    /// messages are late" (JetStream keeps them) into "nobody can connect,
    /// not even to read". Turn it on where a gateway alone losing its path
    /// to the workers is the likelier failure; alert on
    /// `chat_gateway_canary_ok` either way.
    pub fail_readiness_after: u32,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(5000),
            fail_readiness_after: 0,
        }
    }
}

/// A default count or rate, never zero.
fn count(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("defaults are not zero")
}

fn rate(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("defaults are not zero")
}

/// What the types cannot say: a zero count or timeout is already refused
/// while parsing; left are formats and relations between fields.
impl Validate for GatewayConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        check_backend_urls(&self.nats_url, &self.redis_url, problems);
        self.postgres.validate(problems);
        self.stream.validate(problems);
        self.tracing.validate(problems);
        self.jwt.validate(problems);
        self.web.validate(problems);
        if !self
            .gateway_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problems.push("gateway_id may only contain ASCII letters, digits, '-' and '_'".into());
        }
        let l = &self.limits;
        if l.max_frame_bytes < 1024 {
            problems.push("limits.max_frame_bytes must be >= 1024".into());
        }
        if l.max_body_bytes.get() >= l.max_frame_bytes {
            problems.push("limits.max_body_bytes must be < limits.max_frame_bytes".into());
        }
        let d = &self.delivery;
        if d.idle_probe_max < d.head_probe {
            problems.push("delivery.idle_probe_max_ms must be >= delivery.head_probe_ms".into());
        }
        let p = &self.presence;
        if p.gateway_ttl < 2 * p.heartbeat {
            problems.push(
                "presence.gateway_ttl_ms must be at least twice presence.heartbeat_ms".into(),
            );
        }
    }
}

impl Validate for JwtConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        match (
            self.hs256_secret.is_empty(),
            self.rs256_public_key_pem.is_empty(),
        ) {
            (true, true) => {
                problems.push("jwt.hs256_secret or jwt.rs256_public_key_pem must be set".into())
            }
            (false, false) => problems
                .push("set only one of jwt.hs256_secret and jwt.rs256_public_key_pem".into()),
            (false, true) if self.hs256_secret.expose().len() < 32 => {
                problems.push("jwt.hs256_secret must be at least 32 bytes".into())
            }
            _ => {}
        }
    }
}

impl GatewayConfig {
    /// Loads and validates the configuration, or exits (status 2) saying
    /// what is wrong on one line.
    pub fn load_or_exit() -> Self {
        let mut config: Self = chat_config::load_or_exit("gateway", ENV_PREFIX);
        if config.gateway_id.is_empty() {
            config.gateway_id = uuid::Uuid::new_v4().simple().to_string();
        }
        config
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_zero_timeout_or_count_is_refused_naming_its_field() {
        for (var, field) in [
            ("LIMITS__ACK_TIMEOUT_MS", "limits.ack_timeout_ms"),
            ("LIMITS__MAX_CONNECTIONS", "limits.max_connections"),
            ("LIMITS__SEND_RATE_PER_USER", "limits.send_rate_per_user"),
            ("DELIVERY__REPLAY_PAGE", "delivery.replay_page"),
            ("DRAIN_TIMEOUT_MS", "drain_timeout_ms"),
            ("CANARY__INTERVAL_MS", "canary.interval_ms"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env("CHAT_GATEWAY_JWT__HS256_SECRET", SECRET);
                jail.set_env(format!("{ENV_PREFIX}{var}"), "0");
                let err = chat_config::load::<GatewayConfig>(ENV_PREFIX).expect_err(var);
                let text = err.to_string();
                assert!(text.contains(&format!("{field}: ")), "{text}");
                assert!(text.contains(&format!("{ENV_PREFIX}{var}")), "{text}");
                Ok(())
            });
        }
    }

    #[test]
    fn relations_between_fields_are_still_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHAT_GATEWAY_JWT__HS256_SECRET", SECRET);
            jail.set_env("CHAT_GATEWAY_LIMITS__MAX_BODY_BYTES", "65536");
            jail.set_env("CHAT_GATEWAY_DELIVERY__IDLE_PROBE_MAX_MS", "10");
            let text = chat_config::load::<GatewayConfig>(ENV_PREFIX)
                .expect_err("invalid")
                .to_string();
            assert!(text.contains("limits.max_body_bytes must be <"), "{text}");
            assert!(
                text.contains("delivery.idle_probe_max_ms must be >="),
                "{text}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_file_and_the_environment_load_into_durations() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "gateway.toml",
                "drain_delay_ms = 0\n[limits]\nack_timeout_ms = 2500\n\
                 [jwt]\nticket_ttl_secs = 90\n",
            )?;
            jail.set_env(chat_config::CONFIG_FILE_ENV, "gateway.toml");
            jail.set_env("CHAT_GATEWAY_JWT__HS256_SECRET", SECRET);
            jail.set_env("CHAT_GATEWAY_LIMITS__PING_INTERVAL_MS", "1500");
            jail.set_env("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS", "7");
            let config = chat_config::load::<GatewayConfig>(ENV_PREFIX).expect("valid");
            assert_eq!(config.drain_delay, Duration::ZERO);
            assert_eq!(config.limits.ack_timeout, Duration::from_millis(2500));
            assert_eq!(config.limits.ping_interval, Duration::from_millis(1500));
            assert_eq!(config.limits.max_connections.get(), 7);
            assert_eq!(config.jwt.ticket_ttl, Duration::from_secs(90));
            assert_eq!(config.delivery.gap_fill_after, Duration::from_millis(100));
            Ok(())
        });
    }

    #[test]
    fn variable_names_keep_their_units() {
        let vars = chat_config::env_vars::<GatewayConfig>(ENV_PREFIX);
        for var in [
            "CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS",
            "CHAT_GATEWAY_DRAIN_SPREAD_MS",
            "CHAT_GATEWAY_JWT__LEEWAY_SECS",
            "CHAT_GATEWAY_DELIVERY__MEMBERSHIP_TTL_SECS",
            "CHAT_GATEWAY_CANARY__INTERVAL_MS",
            "CHAT_GATEWAY_STREAM__DUPLICATE_WINDOW_SECS",
        ] {
            assert!(vars.iter().any(|v| v == var), "{var} missing: {vars:?}");
        }
    }
}
