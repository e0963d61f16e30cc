//! The worker's metrics: names, help texts and label values in one place.

use std::{sync::LazyLock, time::Duration};

use chat_store::Store;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Histogram,
    Unit,
};

use crate::error::WorkerError;

const ENVELOPES: &str = "chat_worker_envelopes_total";
const BATCH_SIZE: &str = "chat_worker_batch_size";
const PERSIST: &str = "chat_worker_persist_seconds";
const RETRIES: &str = "chat_worker_retries_total";
const REDELIVERIES: &str = "chat_worker_redeliveries_total";
const SPLITS: &str = "chat_worker_batch_splits_total";
const IN_PROGRESS: &str = "chat_worker_in_progress_acks_total";
const DEAD_LETTERS: &str = "chat_worker_dead_letters_total";
const PENDING: &str = "chat_worker_consumer_pending";
const PG_POOL: &str = "chat_worker_postgres_pool_connections";
const CANARIES: &str = "chat_worker_canaries_total";
const COMMANDS: &str = "chat_worker_commands_total";
const MARKS: &str = "chat_worker_marks_total";
const SCHEDULED: &str = "chat_worker_scheduled_total";
const NOTIFICATIONS: &str = "chat_worker_notifications_total";
const TASK_EXITS: &str = "chat_worker_task_exits_total";
const PARTITION_OWNED: &str = "chat_worker_partition_owned";
const PARTITIONS_TARGET: &str = "chat_worker_partitions_target";
const GATE_HOLDS: &str = "chat_worker_gate_holds_total";
const PARTITION_RELEASES: &str = "chat_worker_partition_releases_total";
const EXPIRED: &str = "chat_worker_retention_deleted_total";
const STAGE: &str = "chat_worker_stage_seconds";

/// The ingest partitions' metrics (`partitions`).
fn describe_partitions() {
    describe_gauge!(
        PARTITION_OWNED,
        "1 for each ingest partition this worker is the pinned owner of, else 0."
    );
    describe_gauge!(
        PARTITIONS_TARGET,
        "Partitions this worker aims to own: P over the workers alive, rounded up."
    );
    describe_counter!(
        GATE_HOLDS,
        "Sends held back because a lower seq of their partition was neither stored here nor acked (a takeover, a lost pull)."
    );
    describe_counter!(
        PARTITION_RELEASES,
        "Partitions this worker gave up for another to own (above its share, or shutting down)."
    );
}

/// The work beside the sends: read marks, scheduled messages, notifications.
fn describe_beside() {
    describe_counter!(
        SCHEDULED,
        "Scheduled messages, by what happened (scheduled, cancelled, refused_request, sent, refused_at_time)."
    );
    describe_counter!(
        NOTIFICATIONS,
        "Offline notifications, by outcome (delivered, nobody_offline, retried, dead_lettered)."
    );
    describe_counter!(
        MARKS,
        "Read marks handled, by outcome (stored, retried, given_up, undecodable)."
    );
    describe_counter!(
        EXPIRED,
        "Rows deleted by retention, by what (entries: rooms' entries; scheduled: scheduled messages done with a week ago)."
    );
}

/// Where a send's time goes (bench/stages.py reads them).
fn describe_stages() {
    describe_histogram!(
        STAGE,
        Unit::Seconds,
        "Where a send's time goes on the workers, by stage: queued (taken by its gateway -> pulled here: the gateway's publish and JetStream's queue), lane (pulled -> its batch's transaction began: the partition's gate, the room's lane, the batch forming), commit (the transaction, retries in place included), fanout (committed -> its fan-out and receipts published)."
    );
}

pub fn describe() {
    describe_partitions();
    describe_beside();
    describe_stages();
    describe_counter!(
        ENVELOPES,
        "Sends handled, by outcome (stored, duplicate, forbidden, retried, dead_lettered)."
    );
    describe_histogram!(
        BATCH_SIZE,
        "Sends per storing transaction (parts of a split batch each count)."
    );
    describe_histogram!(
        PERSIST,
        Unit::Seconds,
        "Duration of one storing transaction."
    );
    describe_counter!(RETRIES, "Redeliveries asked for, by reason.");
    describe_counter!(
        REDELIVERIES,
        "Sends pulled that JetStream had delivered before (nak'd, or not acked within ack_wait)."
    );
    describe_counter!(
        SPLITS,
        "Batches split in halves because Postgres refused a send in them."
    );
    describe_counter!(
        IN_PROGRESS,
        "In-progress acks sent for sends held (queued or being stored) for half of ack_wait."
    );
    describe_counter!(
        DEAD_LETTERS,
        "Sends parked on the dead-letter stream, by reason."
    );
    describe_gauge!(
        PENDING,
        "Sends in the ingest stream not yet delivered or acked (consumer lag)."
    );
    describe_gauge!(PG_POOL, "Postgres pool connections by state.");
    describe_counter!(
        CANARIES,
        "Gateways' delivery canaries answered (nothing stored)."
    );
    describe_counter!(
        COMMANDS,
        "Commands (changes to rooms) by outcome: applied, unchanged, refused (by a rule, or no such room), retried (failed this time), dead_lettered (undecodable or out of retries)."
    );
    describe_counter!(
        TASK_EXITS,
        "Background tasks that died (panicked, or ended before shutdown), by task; each was restarted or stopped the worker."
    );
    for outcome in [
        "applied",
        "unchanged",
        "refused",
        "retried",
        "dead_lettered",
    ] {
        counter!(COMMANDS, "outcome" => outcome).absolute(0);
    }
    // Event counters start at zero, so dashboards and alerts see a series
    // (and a rate of 0) before the first event instead of nothing.
    for name in [
        REDELIVERIES,
        SPLITS,
        IN_PROGRESS,
        CANARIES,
        GATE_HOLDS,
        PARTITION_RELEASES,
    ] {
        counter!(name).absolute(0);
    }
    for reason in WorkerError::SEND_FAILURE_LABELS {
        counter!(RETRIES, "reason" => reason).absolute(0);
        counter!(DEAD_LETTERS, "reason" => reason).absolute(0);
    }
}

/// A send's fate: `stored` (new row), `duplicate` (row already there),
/// `refused` (the store's checks said no), `unchanged` (a reaction that
/// changed nothing).
pub fn envelope(outcome: &'static str) {
    counter!(ENVELOPES, "outcome" => outcome).increment(1);
}

pub fn batch(size: usize, took: Duration) {
    histogram!(BATCH_SIZE).record(size as f64);
    histogram!(PERSIST).record(took.as_secs_f64());
}

pub fn retried(reason: &'static str) {
    envelope("retried");
    counter!(RETRIES, "reason" => reason).increment(1);
}

pub fn redelivered() {
    counter!(REDELIVERIES).increment(1);
}

pub fn split() {
    counter!(SPLITS).increment(1);
}

pub fn in_progress_ack() {
    counter!(IN_PROGRESS).increment(1);
}

pub fn dead_lettered(reason: &'static str) {
    envelope("dead_lettered");
    counter!(DEAD_LETTERS, "reason" => reason).increment(1);
}

pub fn command(outcome: &'static str) {
    counter!(COMMANDS, "outcome" => outcome).increment(1);
}

pub fn marks(outcome: &'static str, count: usize) {
    counter!(MARKS, "outcome" => outcome).increment(count as u64);
}

pub fn scheduled(outcome: &'static str, count: usize) {
    counter!(SCHEDULED, "outcome" => outcome).increment(count as u64);
}

pub fn expired(what: &'static str, count: u64) {
    counter!(EXPIRED, "what" => what).increment(count);
}

/// A stage of sends' way through this worker (`STAGE`).
#[derive(Clone, Copy)]
pub enum Stage {
    Queued,
    Lane,
    Commit,
    Fanout,
}

/// The stages' handles, fetched once: they are recorded per send.
static STAGES: LazyLock<[Histogram; 4]> = LazyLock::new(|| {
    ["queued", "lane", "commit", "fanout"].map(|stage| histogram!(STAGE, "stage" => stage))
});

/// One observation of a stage, in seconds.
pub fn stage(stage: Stage, secs: f64) {
    STAGES[stage as usize].record(secs);
}

/// The same observation for `count` sends (a batch's commit, say).
pub fn stage_many(stage: Stage, secs: f64, count: usize) {
    STAGES[stage as usize].record_many(secs, count);
}

pub fn notification(outcome: &'static str) {
    counter!(NOTIFICATIONS, "outcome" => outcome).increment(1);
}

pub fn pending(count: u64) {
    gauge!(PENDING).set(count as f64);
}

pub fn partition_owned(partition: u32, owned: bool) {
    gauge!(PARTITION_OWNED, "partition" => partition.to_string()).set(f64::from(u8::from(owned)));
}

pub fn partitions_target(target: usize) {
    gauge!(PARTITIONS_TARGET).set(target as f64);
}

pub fn gate_held() {
    counter!(GATE_HOLDS).increment(1);
}

pub fn partition_released() {
    counter!(PARTITION_RELEASES).increment(1);
}

pub fn pool(store: &Store) {
    let (size, idle) = store.pool_status();
    gauge!(PG_POOL, "state" => "idle").set(idle as f64);
    gauge!(PG_POOL, "state" => "in_use").set(size.saturating_sub(idle) as f64);
}

pub fn canary() {
    counter!(CANARIES).increment(1);
}

/// How the worker's supervised tasks are counted: each one's series shows
/// 0 from its start until it dies (a restarted task keeps its count).
pub const TASKS: chat_tasks::Counted = chat_tasks::Counted {
    supervised: task_supervised,
    died: task_exit,
};

fn task_supervised(task: &'static str) {
    counter!(TASK_EXITS, "task" => task).increment(0);
}

fn task_exit(task: &'static str) {
    counter!(TASK_EXITS, "task" => task).increment(1);
}
