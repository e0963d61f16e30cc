//! The gateway's metrics: names, help texts and label values in one place.
//! Labels are bounded sets (never room or user ids).

use std::{sync::LazyLock, time::Duration};

use chat_protocol::codec::Encoding;
use chat_store::Store;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Histogram, Unit,
};

/// Open WebSocket connections: the gauge the autoscaler reads.
pub const CONNECTIONS: &str = "chat_gateway_connections";
const CONNECTS: &str = "chat_gateway_connects_total";
const DISCONNECTS: &str = "chat_gateway_disconnects_total";
const FRAMES_IN: &str = "chat_gateway_frames_in_total";
const FRAMES_OUT: &str = "chat_gateway_frames_out_total";
const SEND_ACK: &str = "chat_gateway_send_ack_seconds";
const SENDS: &str = "chat_gateway_sends_total";
const MAX_CONNECTIONS: &str = "chat_gateway_max_connections";
const PUBLISH_BATCH: &str = "chat_gateway_publish_batch_size";
const DELIVERY: &str = "chat_gateway_delivery_seconds";
const QUEUE_DROPS: &str = "chat_gateway_queue_drops_total";
const ROOMS: &str = "chat_gateway_rooms";
const PUBLISHES_IN_FLIGHT: &str = "chat_gateway_publishes_in_flight";
const SLOW_CONSUMER: &str = "chat_gateway_nats_slow_consumer_total";
const GAP_FILLS: &str = "chat_gateway_gap_fills_total";
const PG_POOL: &str = "chat_gateway_postgres_pool_connections";
const PANICS: &str = "chat_gateway_panics_total";
const WRITE_TIMEOUTS: &str = "chat_gateway_write_timeouts_total";
const REPLAYED: &str = "chat_gateway_replayed_total";
const PROBES: &str = "chat_gateway_head_probes_total";
const PENDING_OVERFLOWS: &str = "chat_gateway_pending_overflows_total";
const LIMIT_REFUSALS: &str = "chat_gateway_limit_refusals_total";
const HISTORY_PAGES: &str = "chat_gateway_history_pages_total";
const HISTORY_PAGE_SECONDS: &str = "chat_gateway_history_page_seconds";
/// The `source` label of the history metrics: where a page was read.
pub const PAGE_SOURCES: [&str; 3] = ["redis", "replica", "primary"];

/// The `limit` label of `LIMIT_REFUSALS`: every limit in `crate::socket::limits`.
const LIMITS: [&str; 5] = [
    "send_rate_connection",
    "send_rate_user",
    "read_rate_user",
    "connections_per_user",
    "connections_per_ip",
];
const CANARY_OK: &str = "chat_gateway_canary_ok";
const CANARY_LATENCY: &str = "chat_gateway_canary_seconds";
const CANARY_FAILURES: &str = "chat_gateway_canary_failures_total";
const TASK_EXITS: &str = "chat_gateway_task_exits_total";
const PRESENCE_CHANGES: &str = "chat_gateway_presence_changes_total";
const SIGNALS_OUT: &str = "chat_gateway_signals_out_total";
const FEED_SOCKETS: &str = "chat_gateway_feed_sockets";
const FEED_ROOMS: &str = "chat_gateway_feed_rooms";
const FEED_UPDATES: &str = "chat_gateway_feed_updates_total";
const STAGE: &str = "chat_gateway_stage_seconds";

pub fn describe() {
    describe_histogram!(
        STAGE,
        Unit::Seconds,
        "Where a send's time goes on the gateways, by stage: publish (taken from its socket -> JetStream holds it), fanout_transit (a worker published its fan-out -> it reached this gateway)."
    );
    describe_histogram!(
        PUBLISH_BATCH,
        "Sends per JetStream message the gateway published (one batch)."
    );
    zero_event_counters();
    describe_gauge!(CONNECTIONS, "Open WebSocket connections.");
    describe_counter!(
        CONNECTS,
        "Connection attempts by result (accepted, unauthorized, forbidden, limit_exceeded, unavailable, at_capacity, handshake_timeout)."
    );
    describe_counter!(DISCONNECTS, "Closed connections by reason.");
    describe_counter!(
        PRESENCE_CHANGES,
        "Users this gateway announced online or offline to their rooms (state: online, offline)."
    );
    describe_counter!(
        SIGNALS_OUT,
        "Signals (typing, online) this gateway queued for its next batch, and those dropped because its queue was full (outcome: queued, dropped)."
    );
    describe_counter!(FRAMES_IN, "Frames received by type and encoding.");
    describe_counter!(FRAMES_OUT, "Frames sent by type and encoding.");
    describe_histogram!(
        SEND_ACK,
        Unit::Seconds,
        "From a send frame's arrival to its ack being queued."
    );
    describe_counter!(
        SENDS,
        "Sends past the checks, by how each was answered: acked, or the error code (timeout, unavailable, internal): the send SLO's events."
    );
    describe_histogram!(
        DELIVERY,
        Unit::Seconds,
        "From a message's commit to its write to a socket."
    );
    describe_counter!(
        QUEUE_DROPS,
        "What a full socket queue cost, by what: ephemeral (a frame kept in the stash as latest state), resync (a socket told to resync a room), closed (a socket closed as a slow consumer)."
    );
    describe_gauge!(
        ROOMS,
        "Rooms with members here, each with a fan-out subscription."
    );
    describe_counter!(
        SLOW_CONSUMER,
        "NATS slow-consumer events (fan-out messages dropped by the client library)."
    );
    describe_counter!(
        GAP_FILLS,
        "Messages filled into a room's order from the store, by source."
    );
    describe_gauge!(PG_POOL, "Postgres pool connections by state.");
    describe_gauge!(
        PUBLISHES_IN_FLIGHT,
        "Server publishes awaiting their commit (at most limits.max_inflight_publishes)."
    );
    describe_counter!(
        HISTORY_PAGES,
        "History pages served, by source (redis, replica, primary)."
    );
    describe_histogram!(
        HISTORY_PAGE_SECONDS,
        Unit::Seconds,
        "Time to read one history page, by source."
    );
    describe_counter!(
        REPLAYED,
        "Messages replayed to resuming sockets, by source."
    );
    describe_health();
    describe_feeds();
}

/// The feed of users' rooms (`feed`).
fn describe_feeds() {
    describe_gauge!(FEED_SOCKETS, "Sockets watching their user's feed here.");
    describe_gauge!(
        FEED_ROOMS,
        "Rooms this gateway follows for feeds (one fan-out subscription each)."
    );
    describe_counter!(
        FEED_UPDATES,
        "feed frames pushed to sockets (after the answer to watchFeed)."
    );
}

/// What tells an operator the gateway is sick: its own bugs, refusals,
/// lost tails and overflows, and the delivery canary.
fn describe_health() {
    describe_counter!(
        PROBES,
        "Room heads probed for lost tails, by where the head was read."
    );
    describe_counter!(
        PENDING_OVERFLOWS,
        "Times a room's reorder buffer overflowed and was refilled from the store."
    );
    describe_counter!(
        WRITE_TIMEOUTS,
        "Sockets closed because a write blocked past limits.write_timeout_ms."
    );
    describe_counter!(
        LIMIT_REFUSALS,
        "Sends and connections refused by a per-socket, per-user or per-address limit, by limit."
    );
    describe_counter!(
        PANICS,
        "Panics caught while serving a socket, by task (each one a bug)."
    );
    describe_counter!(
        TASK_EXITS,
        "Background tasks that died (panicked, or ended before shutdown), by task; a critical one drains and stops the gateway, limiter_prune restarts."
    );
    describe_gauge!(
        CANARY_OK,
        "1 if the last delivery canary (ingest stream -> worker -> back) was answered in time, else 0."
    );
    describe_histogram!(
        CANARY_LATENCY,
        Unit::Seconds,
        "Round trip of answered delivery canaries."
    );
    describe_counter!(
        CANARY_FAILURES,
        "Delivery canaries not answered, by reason (publish, timeout)."
    );
    // 0 until the first canary comes back: a gateway that never hears one
    // shows as failing, not as missing.
    gauge!(CANARY_OK).set(0.0);
}

/// Event counters start at zero, so dashboards and alerts see a series
/// (and a rate of 0) before the first event instead of nothing.
pub fn zero_event_counters() {
    for what in ["ephemeral", "resync", "closed"] {
        counter!(QUEUE_DROPS, "what" => what).absolute(0);
    }
    for name in [SLOW_CONSUMER, WRITE_TIMEOUTS, PENDING_OVERFLOWS] {
        counter!(name).absolute(0);
    }
    for source in ["redis", "postgres"] {
        counter!(GAP_FILLS, "source" => source).absolute(0);
        counter!(REPLAYED, "source" => source).absolute(0);
        counter!(PROBES, "source" => source).absolute(0);
    }
    for source in PAGE_SOURCES {
        counter!(HISTORY_PAGES, "source" => source).absolute(0);
    }
    for task in ["session", "send"] {
        counter!(PANICS, "task" => task).absolute(0);
    }
    for limit in LIMITS {
        counter!(LIMIT_REFUSALS, "limit" => limit).absolute(0);
    }
    for reason in ["publish", "timeout"] {
        counter!(CANARY_FAILURES, "reason" => reason).absolute(0);
    }
    counter!(DISCONNECTS, "reason" => "normal").absolute(0);
}

pub fn encoding_label(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "json",
        Encoding::Proto => "proto",
    }
}

pub fn connect(result: &'static str) {
    counter!(CONNECTS, "result" => result).increment(1);
}

pub fn opened() {
    gauge!(CONNECTIONS).increment(1.0);
}

pub fn closed(reason: &'static str) {
    gauge!(CONNECTIONS).decrement(1.0);
    counter!(DISCONNECTS, "reason" => reason).increment(1);
}

pub fn frame_in(kind: &'static str, encoding: Encoding) {
    counter!(FRAMES_IN, "type" => kind, "encoding" => encoding_label(encoding)).increment(1);
}

/// Handle for a socket's outgoing frames of one type, fetched once per socket.
pub fn frames_out(kind: &'static str, encoding: Encoding) -> Counter {
    counter!(FRAMES_OUT, "type" => kind, "encoding" => encoding_label(encoding))
}

pub fn publish_batch(sends: usize) {
    histogram!(PUBLISH_BATCH).record(sends as f64);
}

/// The sockets this gateway may hold (`limits.max_connections`), beside
/// `chat_gateway_connections`, for alerts on how full it is.
pub fn max_connections(max: usize) {
    gauge!(MAX_CONNECTIONS).set(max as f64);
}

/// A send past the checks was answered: `acked` or an error code.
pub fn send_answered(outcome: &'static str) {
    counter!(SENDS, "outcome" => outcome).increment(1);
}

/// A stage of sends' way through this gateway (`STAGE`).
#[derive(Clone, Copy)]
pub enum Stage {
    Publish,
    FanoutTransit,
}

/// The stages' handles, fetched once: they are recorded per send and per
/// fan-out. (From a fan-out to the sockets is `DELIVERY`, per socket.)
static STAGES: LazyLock<[Histogram; 2]> = LazyLock::new(|| {
    ["publish", "fanout_transit"].map(|stage| histogram!(STAGE, "stage" => stage))
});

/// One observation of a stage, in seconds.
pub fn stage(stage: Stage, secs: f64) {
    STAGES[stage as usize].record(secs);
}

pub fn send_acked(elapsed: Duration) {
    histogram!(SEND_ACK).record(elapsed.as_secs_f64());
}

/// Handle on the commit-to-socket latency histogram, fetched once per socket.
pub fn delivery_latency() -> Histogram {
    histogram!(DELIVERY)
}

/// Records commit-to-socket latency from the message's commit timestamp.
pub fn record_delivery(histogram: &Histogram, committed_ms: i64) {
    let ms = (chat_protocol::now_ms() - committed_ms).max(0);
    histogram.record(ms as f64 / 1000.0);
}

/// A full socket queue: `what` it cost (see the help text).
pub fn queue_drop(what: &'static str) {
    counter!(QUEUE_DROPS, "what" => what).increment(1);
}

pub fn rooms(count: usize) {
    gauge!(ROOMS).set(count as f64);
}

pub fn publishes_in_flight(count: usize) {
    gauge!(PUBLISHES_IN_FLIGHT).set(count as f64);
}

pub fn nats_slow_consumer() {
    counter!(SLOW_CONSUMER).increment(1);
}

pub fn gap_filled(source: &'static str, messages: usize) {
    counter!(GAP_FILLS, "source" => source).increment(messages as u64);
}

/// One history page served from `source` (one of `PAGE_SOURCES`).
pub fn history_page(source: &'static str, took: Duration) {
    counter!(HISTORY_PAGES, "source" => source).increment(1);
    histogram!(HISTORY_PAGE_SECONDS, "source" => source).record(took.as_secs_f64());
}

pub fn pool(store: &Store) {
    let (size, idle) = store.pool_status();
    gauge!(PG_POOL, "state" => "idle").set(idle as f64);
    gauge!(PG_POOL, "state" => "in_use").set(size.saturating_sub(idle) as f64);
}

/// How the gateway's supervised background tasks are counted.
pub const TASKS: chat_tasks::Counted = chat_tasks::Counted {
    supervised: |task| counter!(TASK_EXITS, "task" => task).increment(0),
    died: |task| counter!(TASK_EXITS, "task" => task).increment(1),
};

pub fn panicked(task: &'static str) {
    tracing::error!(task, "panic while serving a socket");
    counter!(PANICS, "task" => task).increment(1);
}

pub fn replayed(source: &'static str, messages: usize) {
    counter!(REPLAYED, "source" => source).increment(messages as u64);
}

/// One probe round: `rooms` heads read, `from_postgres` of them from Postgres.
pub fn probed(rooms: usize, from_postgres: usize) {
    counter!(PROBES, "source" => "redis").increment((rooms - from_postgres) as u64);
    counter!(PROBES, "source" => "postgres").increment(from_postgres as u64);
}

pub fn pending_overflow() {
    counter!(PENDING_OVERFLOWS).increment(1);
}

pub fn write_timeout() {
    counter!(WRITE_TIMEOUTS).increment(1);
}

/// A send or a connection refused by `limit` (one of `LIMITS`).
pub fn limit_refused(limit: &'static str) {
    counter!(LIMIT_REFUSALS, "limit" => limit).increment(1);
}

pub fn presence_change(online: bool) {
    let state = if online { "online" } else { "offline" };
    counter!(PRESENCE_CHANGES, "state" => state).increment(1);
}

pub fn signal_out(queued: bool) {
    let outcome = if queued { "queued" } else { "dropped" };
    counter!(SIGNALS_OUT, "outcome" => outcome).increment(1);
}

pub fn feeds(sockets: usize, rooms: usize) {
    gauge!(FEED_SOCKETS).set(sockets as f64);
    gauge!(FEED_ROOMS).set(rooms as f64);
}

pub fn feed_update() {
    counter!(FEED_UPDATES).increment(1);
}

pub fn canary_ok(round_trip: Duration) {
    gauge!(CANARY_OK).set(1.0);
    histogram!(CANARY_LATENCY).record(round_trip.as_secs_f64());
}

pub fn canary_failed(reason: &'static str) {
    gauge!(CANARY_OK).set(0.0);
    counter!(CANARY_FAILURES, "reason" => reason).increment(1);
}
