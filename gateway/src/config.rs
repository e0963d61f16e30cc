//! The gateway's configuration: defaults < `$CHAT_CONFIG` file < `CHAT_GATEWAY_*`.

use std::net::SocketAddr;

use chat_config::{check_backend_urls, BackendUrl, LogConfig, Secret, StreamConfig, Validate};
use chat_store::PostgresConfig;
use chat_telemetry::TracingConfig;
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
    /// After SIGTERM, how long the gateway reports not-ready (so the load
    /// balancer stops sending new sockets) before it closes its sockets.
    pub drain_delay_ms: u64,
    /// Then the window over which its sockets are closed (1012), each at a
    /// uniformly random moment, so their reconnects reach the other
    /// gateways as a trickle rather than all at once. 0: all at once.
    pub drain_spread_ms: u64,
    /// How long a closing socket waits for the answers to its sends in
    /// flight. The whole drain takes at most drain_delay_ms +
    /// drain_spread_ms + drain_timeout_ms: keep the orchestrator's grace
    /// period (Kubernetes terminationGracePeriodSeconds) above that.
    pub drain_timeout_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".parse().expect("valid address"),
            gateway_id: String::new(),
            nats_url: BackendUrl::new("nats://127.0.0.1:4222"),
            redis_url: BackendUrl::new("redis://127.0.0.1:6379"),
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
            drain_delay_ms: 5000,
            drain_spread_ms: 10_000,
            drain_timeout_ms: 10_000,
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
    pub leeway_secs: u64,
    /// Lifetime of a one-time WebSocket ticket, in seconds.
    pub ticket_ttl_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret: Secret::default(),
            rs256_public_key_pem: String::new(),
            leeway_secs: 30,
            ticket_ttl_secs: 30,
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
    pub max_body_bytes: usize,
    /// Frames queued for one socket before it counts as a slow consumer.
    pub socket_queue: usize,
    /// Sends of one socket awaiting their commit at once.
    pub max_inflight_sends: usize,
    /// WebSocket read and write buffer sizes. Small buffers keep idle sockets
    /// cheap (bench `connections`: 13.3 KiB RSS per socket at 4 KiB, 11.3 at
    /// 2 KiB, 10.4 at 1 KiB); chat frames are mostly well under 2 KiB and
    /// larger ones just take more reads.
    pub ws_buffer_bytes: usize,
    /// How long a send may wait for its commit before the client gets `timeout`.
    pub ack_timeout_ms: u64,
    /// How long a new TCP connection may take to send its complete HTTP
    /// request (the upgrade) before it is dropped.
    pub handshake_timeout_ms: u64,
    /// A socket heard nothing from for a whole interval of this length is
    /// pinged.
    pub ping_interval_ms: u64,
    /// A pinged socket from which nothing (not even the pong) arrives within
    /// this is closed (4000, `timeout`).
    pub pong_timeout_ms: u64,
    /// How long one write to a socket may block before the socket is closed
    /// (a peer that stopped reading at the TCP level).
    pub write_timeout_ms: u64,
    /// Open sockets per gateway; the next upgrade is refused with 503.
    pub max_connections: usize,
    /// Rooms one socket may have joined at once (`limit_exceeded` beyond).
    pub max_rooms_per_connection: usize,
    /// Sends per second one socket may make, sustained (a token bucket);
    /// a send beyond it gets `rate_limited` and is not published.
    pub send_rate_per_connection: u32,
    /// Sends one socket may make at once after a quiet spell (bucket size).
    pub send_burst_per_connection: u32,
    /// Sends per second one user may make over all their sockets on this
    /// gateway, sustained: more sockets buy no more throughput.
    pub send_rate_per_user: u32,
    /// Sends one user may make at once after a quiet spell (bucket size).
    pub send_burst_per_user: u32,
    /// Consecutive sends of one socket refused by a send rate before the
    /// socket is closed (1008, `rate_limited`): a client that ignores the
    /// refusals is flooding.
    pub rate_limited_close_after: u32,
    /// Open sockets per user on this gateway; the next upgrade is refused
    /// with 429 (`limit_exceeded`).
    pub max_connections_per_user: usize,
    /// Open sockets per client IP address on this gateway; the next upgrade
    /// is refused with 429 (`limit_exceeded`). Generous: offices and mobile
    /// carriers put many users behind one address. Behind a proxy every
    /// socket comes from the proxy's address: set `trust_forwarded_for`.
    pub max_connections_per_ip: usize,
    /// Take the client's address from the last `X-Forwarded-For` entry
    /// rather than the TCP peer. Only behind a proxy that appends it:
    /// otherwise any client can claim any address and dodge the per-IP cap.
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 16 * 1024,
            socket_queue: 4096,
            max_inflight_sends: 256,
            ws_buffer_bytes: 2048,
            ack_timeout_ms: 10_000,
            handshake_timeout_ms: 10_000,
            ping_interval_ms: 30_000,
            pong_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
            max_connections: 50_000,
            max_rooms_per_connection: 100,
            send_rate_per_connection: 20,
            send_burst_per_connection: 40,
            send_rate_per_user: 50,
            send_burst_per_user: 100,
            rate_limited_close_after: 50,
            max_connections_per_user: 20,
            max_connections_per_ip: 1000,
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
    pub gap_fill_after_ms: u64,
    /// How soon after its last message a room checks the store for a lost
    /// tail (messages published but never received, with nothing after them
    /// to reveal the gap). Quiet rooms are checked at doubling intervals.
    pub head_probe_ms: u64,
    /// Longest interval between lost-tail checks of a quiet room. NATS
    /// slow-consumer and reconnect events check every room at once.
    pub idle_probe_max_ms: u64,
    /// Messages a room buffers while waiting for a missing one; beyond it
    /// the room drops the newest and refills from the store.
    pub max_pending: usize,
    /// Messages a resuming socket's replay reads per page, and the most it
    /// has queued for the socket at once: its memory bound.
    pub replay_page: usize,
    /// How long a membership answer stays in Redis.
    pub membership_ttl_secs: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            gap_fill_after_ms: 100,
            head_probe_ms: 1000,
            idle_probe_max_ms: 30_000,
            max_pending: 10_000,
            replay_page: 64,
            membership_ttl_secs: 60,
        }
    }
}

/// The delivery canary: a probe through ingest stream, worker and back.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryConfig {
    /// How often a probe is sent; one not answered within this counts as failed.
    pub interval_ms: u64,
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
            interval_ms: 5000,
            fail_readiness_after: 0,
        }
    }
}

impl Validate for GatewayConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        check_backend_urls(&self.nats_url, &self.redis_url, problems);
        self.postgres.validate(problems);
        self.stream.validate(problems);
        self.tracing.validate(problems);
        if !self
            .gateway_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problems.push("gateway_id may only contain ASCII letters, digits, '-' and '_'".into());
        }
        match (
            self.jwt.hs256_secret.is_empty(),
            self.jwt.rs256_public_key_pem.is_empty(),
        ) {
            (true, true) => {
                problems.push("jwt.hs256_secret or jwt.rs256_public_key_pem must be set".into())
            }
            (false, false) => problems
                .push("set only one of jwt.hs256_secret and jwt.rs256_public_key_pem".into()),
            (false, true) if self.jwt.hs256_secret.expose().len() < 32 => {
                problems.push("jwt.hs256_secret must be at least 32 bytes".into())
            }
            _ => {}
        }
        if self.jwt.ticket_ttl_secs == 0 {
            problems.push("jwt.ticket_ttl_secs must be > 0".into());
        }
        let l = &self.limits;
        if l.max_frame_bytes < 1024 {
            problems.push("limits.max_frame_bytes must be >= 1024".into());
        }
        if l.max_body_bytes == 0 || l.max_body_bytes >= l.max_frame_bytes {
            problems.push("limits.max_body_bytes must be > 0 and < limits.max_frame_bytes".into());
        }
        for (name, value) in [
            ("limits.socket_queue", l.socket_queue as u64),
            ("limits.max_inflight_sends", l.max_inflight_sends as u64),
            ("limits.ws_buffer_bytes", l.ws_buffer_bytes as u64),
            ("limits.ack_timeout_ms", l.ack_timeout_ms),
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms),
            ("limits.ping_interval_ms", l.ping_interval_ms),
            ("limits.pong_timeout_ms", l.pong_timeout_ms),
            ("limits.write_timeout_ms", l.write_timeout_ms),
            ("limits.max_connections", l.max_connections as u64),
            (
                "limits.max_rooms_per_connection",
                l.max_rooms_per_connection as u64,
            ),
            (
                "limits.send_rate_per_connection",
                l.send_rate_per_connection.into(),
            ),
            (
                "limits.send_burst_per_connection",
                l.send_burst_per_connection.into(),
            ),
            ("limits.send_rate_per_user", l.send_rate_per_user.into()),
            ("limits.send_burst_per_user", l.send_burst_per_user.into()),
            (
                "limits.rate_limited_close_after",
                l.rate_limited_close_after.into(),
            ),
            (
                "limits.max_connections_per_user",
                l.max_connections_per_user as u64,
            ),
            (
                "limits.max_connections_per_ip",
                l.max_connections_per_ip as u64,
            ),
            ("drain_timeout_ms", self.drain_timeout_ms),
            ("canary.interval_ms", self.canary.interval_ms),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be > 0"));
            }
        }
        let d = &self.delivery;
        for (name, value) in [
            ("delivery.gap_fill_after_ms", d.gap_fill_after_ms),
            ("delivery.head_probe_ms", d.head_probe_ms),
            ("delivery.max_pending", d.max_pending as u64),
            ("delivery.replay_page", d.replay_page as u64),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be > 0"));
            }
        }
        if d.idle_probe_max_ms < d.head_probe_ms {
            problems.push("delivery.idle_probe_max_ms must be >= delivery.head_probe_ms".into());
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
