//! Every NATS subject, stream and consumer name, built in one place.

use crate::ids::RoomId;

/// The single ingest stream of releases before partitions (decision 15):
/// narrowed at upgrade and drained by the workers' `LEGACY_CONSUMER`.
pub const LEGACY_INGEST_STREAM: &str = "CHAT_INGEST";
/// The durable pull consumer of `LEGACY_INGEST_STREAM`.
pub const LEGACY_CONSUMER: &str = "workers";
/// The priority group whose pinned client owns an ingest partition.
pub const INGEST_GROUP: &str = "ingest";
/// Stream metadata key that records P, so a binary set to another P refuses
/// to start rather than send rooms to the wrong partition.
pub const PARTITIONS_METADATA: &str = "chat.partitions";
/// JetStream stream of commands (changes to rooms): its own stream and
/// consumer, so that a backlog of sends never delays a change.
pub const COMMAND_STREAM: &str = "CHAT_COMMANDS";
/// Durable pull consumer of commands shared by all workers.
pub const COMMAND_CONSUMER: &str = "workers-commands";
/// JetStream stream of bulk sends (dead-letter replays, server-published
/// bulk): stored like sends, pulled only while no send waits.
pub const BULK_STREAM: &str = "CHAT_BULK";
/// Durable pull consumer of bulk sends shared by all workers.
pub const BULK_CONSUMER: &str = "workers-bulk";
/// JetStream stream of members' read marks, stored by the workers in
/// batches in the bulk class.
pub const MARK_STREAM: &str = "CHAT_MARKS";
/// Durable pull consumer of read marks shared by all workers.
pub const MARK_CONSUMER: &str = "workers-marks";
/// JetStream stream of offline notifications to call the webhook with,
/// worked through by the workers in the bulk class.
pub const NOTIFY_STREAM: &str = "CHAT_NOTIFY";
/// Durable pull consumer of notifications shared by all workers.
pub const NOTIFY_CONSUMER: &str = "workers-notify";
/// JetStream stream that keeps messages that could not be stored.
pub const DEAD_LETTER_STREAM: &str = "CHAT_DEAD";

const INGEST_PREFIX: &str = "chat.in";
const BULK_PREFIX: &str = "chat.bulk";
const FANOUT_PREFIX: &str = "chat.room";
const RECEIPT_PREFIX: &str = "chat.receipt";
const DEAD_PREFIX: &str = "chat.dead";
const CANARY_PREFIX: &str = "chat.canary";
const ANNOUNCEMENT_PREFIX: &str = "chat.announce";
const SIGNALS: &str = "chat.signals";
const MARK_PREFIX: &str = "chat.mark";
const COMMAND_PREFIX: &str = "chat.cmd";
const NOTIFY_PREFIX: &str = "chat.notify";
/// Second token of a dead notification's subject.
const DEAD_NOTIFY_TOKEN: &str = "notify";
/// Second token of a dead command's subject.
const DEAD_COMMAND_TOKEN: &str = "cmd";
/// The same, on commands dead-lettered before 2026-12-06 (kept in
/// `CHAT_DEAD` for 30 days): `worker dlq` still reads them as commands.
const DEAD_COMMAND_TOKEN_BEFORE: &str = "ctl";
/// Where NATS request replies go (`Client::new_inbox`).
const INBOX_PREFIX: &str = "_INBOX.";
/// Token of a canary's ingest subject.
const CANARY_TOKEN: &str = "canary";
/// Token of a gateway's batch subject.
const BATCH_TOKEN: &str = "batch";
/// Token of a lone envelope's subject.
const ROOM_TOKEN: &str = "room";

/// `chat.bulk.<room>`: a send of the bulk class (a lone envelope), e.g. a
/// dead letter replayed.
pub fn bulk(room: &RoomId) -> String {
    format!("{BULK_PREFIX}.{room}")
}

/// Wildcard the bulk stream captures.
pub fn bulk_all() -> String {
    format!("{BULK_PREFIX}.>")
}

/// The ingest partition of a room: FNV-1a 32 of its id's bytes, mod P. The
/// same function as NATS's own `{{partition(P, …)}}` subject mapping, so it
/// never changes with a Rust release and can be checked against a server.
pub fn partition(room: &RoomId, partitions: u32) -> u32 {
    let hash = room.as_str().bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash % partitions.max(1)
}

/// `CHAT_INGEST_<p>`: the stream of partition p's accepted sends, one per
/// partition so that its seqs have no holes (the worker's gate needs that).
pub fn ingest_stream(partition: u32) -> String {
    format!("{LEGACY_INGEST_STREAM}_{partition}")
}

/// `workers-<p>`: the durable consumer of partition p, pinned to one worker.
pub fn ingest_consumer(partition: u32) -> String {
    format!("{LEGACY_CONSUMER}-{partition}")
}

/// `chat.in.<p>.>`: what partition p's stream captures.
pub fn ingest_partition_all(partition: u32) -> String {
    format!("{INGEST_PREFIX}.{partition}.>")
}

/// What the legacy stream keeps capturing after the upgrade: the old
/// gateways' subjects, none of which a partition's stream captures.
pub fn legacy_ingest_subjects() -> Vec<String> {
    vec![
        format!("{INGEST_PREFIX}.{BATCH_TOKEN}.>"),
        format!("{INGEST_PREFIX}.{CANARY_TOKEN}.>"),
        format!("{INGEST_PREFIX}.*"),
    ]
}

/// `chat.in.<p>.batch.<gateway>`: a gateway's sends to rooms of partition p,
/// many per message (`EnvelopeBatch`).
pub fn ingest_batch(partition: u32, gateway_id: &str) -> String {
    format!("{INGEST_PREFIX}.{partition}.{BATCH_TOKEN}.{gateway_id}")
}

/// `chat.in.<p>.canary.<gateway>`: a gateway's delivery canary, through
/// partition p's stream and owner like a send.
pub fn canary_ingest(partition: u32, gateway_id: &str) -> String {
    format!("{INGEST_PREFIX}.{partition}.{CANARY_TOKEN}.{gateway_id}")
}

/// `chat.in.<p>.room.<room>`: one envelope alone (tools; gateways publish
/// batches), stored exactly like a batch of one.
pub fn ingest_one(room: &RoomId, partitions: u32) -> String {
    let partition = partition(room, partitions);
    format!("{INGEST_PREFIX}.{partition}.{ROOM_TOKEN}.{room}")
}

/// What an ingest message carries, told by its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingest {
    /// A gateway's `EnvelopeBatch`.
    Batch,
    /// A gateway's canary: answered, never stored.
    Canary,
    /// One `Envelope` alone (tools, and gateways before partitions).
    One,
}

/// Reads an ingest subject, partitioned (`chat.in.<p>.<kind>.<id>`) or of
/// the legacy stream (`chat.in.<kind>.<gateway>`, `chat.in.<room>`).
pub fn ingest_kind(subject: &str) -> Ingest {
    let Some(rest) = subject
        .strip_prefix(INGEST_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return Ingest::One;
    };
    let rest = match rest.split_once('.') {
        Some((partition, rest)) if partition.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => rest,
    };
    if is_gateway_subject(rest, BATCH_TOKEN) {
        Ingest::Batch
    } else if is_gateway_subject(rest, CANARY_TOKEN) {
        Ingest::Canary
    } else {
        Ingest::One
    }
}

/// `chat.room.<room>`: a worker publishes each stored message here (core NATS);
/// gateways with members of the room subscribe.
pub fn fanout(room: &RoomId) -> String {
    format!("{FANOUT_PREFIX}.{room}")
}

/// `chat.receipt.<gateway>`: commit receipts for sends a gateway accepted.
pub fn receipts(gateway_id: &str) -> String {
    format!("{RECEIPT_PREFIX}.{gateway_id}")
}

/// Whether a subject is a gateway's receipt subject (workers reply only there).
pub fn is_receipts(subject: &str) -> bool {
    is_gateway_subject(subject, RECEIPT_PREFIX)
}

/// `chat.canary.<gateway>`: where workers answer a gateway's canaries (core NATS).
pub fn canary_answers(gateway_id: &str) -> String {
    format!("{CANARY_PREFIX}.{gateway_id}")
}

/// Whether a subject is a gateway's canary-answer subject (workers answer only there).
pub fn is_canary_answers(subject: &str) -> bool {
    is_gateway_subject(subject, CANARY_PREFIX)
}

/// `<prefix>.<gateway id>`, the id one plain token.
fn is_gateway_subject(subject: &str, prefix: &str) -> bool {
    subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|id| !id.is_empty() && !id.contains(['.', '*', '>', ' ']))
}

/// `chat.cmd.<room>`: a gateway publishes a command for the room here
/// (JetStream, stream `COMMAND_STREAM`).
pub fn command(room: &RoomId) -> String {
    format!("{COMMAND_PREFIX}.{room}")
}

/// Wildcard the command stream captures.
pub fn command_all() -> String {
    format!("{COMMAND_PREFIX}.>")
}

/// Whether a command's `reply_to` is an inbox: a worker answers nowhere
/// else, since anything can publish to the command stream.
pub fn is_inbox(subject: &str) -> bool {
    subject.len() > INBOX_PREFIX.len()
        && subject.starts_with(INBOX_PREFIX)
        && !subject.contains(['*', '>', ' '])
}

/// `chat.announce.<room>`: announcements of committed changes to a room's
/// members (one removed, one's access changed) that every gateway applies
/// to its sockets at once (core NATS).
pub fn announcement(room: &RoomId) -> String {
    format!("{ANNOUNCEMENT_PREFIX}.{room}")
}

/// `chat.signals`: ephemeral signals about members of rooms (typing, read
/// up to, online), published in batches by gateways and workers, for every
/// gateway (core NATS). One subject, not one per room: a batch carries
/// many rooms' signals in one message.
pub fn signals() -> String {
    SIGNALS.to_owned()
}

/// `chat.mark.<room>`: a member's read mark, for the workers (JetStream,
/// stream `MARK_STREAM`).
pub fn mark(room: &RoomId) -> String {
    format!("{MARK_PREFIX}.{room}")
}

/// Wildcard the mark stream captures.
pub fn mark_all() -> String {
    format!("{MARK_PREFIX}.>")
}

/// Wildcard each gateway listens on for every room's announcements.
pub fn announcement_all() -> String {
    format!("{ANNOUNCEMENT_PREFIX}.>")
}

/// `chat.dead.<room>`: where a worker parks a message it gave up on.
pub fn dead_letter(room: &str) -> String {
    format!("{DEAD_PREFIX}.{room}")
}

/// `chat.dead.cmd.<room>`: where a worker parks a command it gave up on
/// (room ids have no dots, so this never names a room's send letters).
pub fn dead_command(room: &str) -> String {
    format!("{DEAD_PREFIX}.{DEAD_COMMAND_TOKEN}.{room}")
}

/// `chat.notify.<room>`: a stored message that may need offline
/// notifications (a `chat.v1.Message`).
pub fn notify(room: &RoomId) -> String {
    format!("{NOTIFY_PREFIX}.{room}")
}

/// Wildcard the notification stream captures.
pub fn notify_all() -> String {
    format!("{NOTIFY_PREFIX}.*")
}

/// JetStream de-duplication id of a message's notification job: a
/// redelivered send, found stored, enqueues it again within the window.
pub fn notify_id(message_id: &str) -> String {
    format!("notify:{message_id}")
}

/// `chat.dead.notify.<room>`: where a worker parks a notification it gave
/// up on (never a room's send letters: room ids have no dots).
pub fn dead_notification(room: &str) -> String {
    format!("{DEAD_PREFIX}.{DEAD_NOTIFY_TOKEN}.{room}")
}

/// Whether a dead letter is a notification.
pub fn is_dead_notification(subject: &str) -> bool {
    subject
        .strip_prefix(DEAD_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_prefix(DEAD_NOTIFY_TOKEN))
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Whether a dead letter is a command (else a send).
pub fn is_dead_command(subject: &str) -> bool {
    subject
        .strip_prefix(DEAD_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| {
            rest.strip_prefix(DEAD_COMMAND_TOKEN)
                .or_else(|| rest.strip_prefix(DEAD_COMMAND_TOKEN_BEFORE))
        })
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Wildcard the dead-letter stream captures.
pub fn dead_letter_all() -> String {
    format!("{DEAD_PREFIX}.>")
}

/// JetStream de-duplication id of one batch of accepted sends: the gateway
/// and the batch's number, so that only the gateway's own publish retries
/// are dropped as copies. A client's resend goes in a new batch, so a send
/// that was dead-lettered is stored when resent; the store, not JetStream,
/// keeps a send stored once (unique on room, sender, client_msg_id).
pub fn publish_id(gateway_id: &str, ticket: u64) -> String {
    format!("{gateway_id}/{ticket}")
}

/// JetStream de-duplication id of a dead letter's replay to the ingest
/// stream: `dlq:<dead-letter seq>`, so that a replay retried after a lost
/// publish ack is dropped as a copy. It has no '/', so it never equals a
/// gateway's [`publish_id`].
pub fn replay_id(dead_letter_seq: u64) -> String {
    format!("dlq:{dead_letter_seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_per_room() {
        let room = RoomId::parse("lobby").unwrap();
        assert_eq!(fanout(&room), "chat.room.lobby");
        assert_eq!(receipts("gw-1"), "chat.receipt.gw-1");
        assert!(is_receipts(&receipts("gw-1")));
        assert!(!is_receipts("chat.receipt.>"));
        assert!(!is_receipts("chat.room.lobby"));
    }

    /// FNV-1a 32 of the bytes, mod P: the published test vectors of FNV-1a
    /// ("" → 0x811c9dc5, "a" → 0xe40c292c, "foobar" → 0xbf9cf968).
    #[test]
    fn partitions_are_fnv1a_of_the_room_mod_p() {
        let p = |room: &str, n| partition(&RoomId::parse(room).unwrap(), n);
        assert_eq!(p("a", u32::MAX), 0xe40c_292c);
        assert_eq!(p("foobar", u32::MAX), 0xbf9c_f968);
        assert_eq!(p("foobar", 16), 0xbf9c_f968 % 16);
        assert_eq!(p("lobby", 1), 0);
        assert_eq!(ingest_stream(3), "CHAT_INGEST_3");
        assert_eq!(ingest_consumer(3), "workers-3");
        assert_eq!(ingest_partition_all(3), "chat.in.3.>");
    }

    #[test]
    fn an_ingest_subject_tells_what_it_carries() {
        let room = RoomId::parse("canary").unwrap();
        assert_eq!(ingest_batch(3, "gw-1"), "chat.in.3.batch.gw-1");
        assert_eq!(canary_ingest(3, "gw-1"), "chat.in.3.canary.gw-1");
        assert_eq!(
            ingest_one(&room, 16),
            format!("chat.in.{}.room.canary", partition(&room, 16))
        );
        assert_eq!(ingest_kind(&ingest_batch(3, "gw-1")), Ingest::Batch);
        assert_eq!(ingest_kind(&canary_ingest(3, "gw-1")), Ingest::Canary);
        assert_eq!(ingest_kind(&ingest_one(&room, 16)), Ingest::One);
        assert_eq!(ingest_kind("chat.in.3.canary.a.b"), Ingest::One);
        assert_eq!(ingest_kind("chat.in.batch.gw-1"), Ingest::Batch);
        assert_eq!(ingest_kind("chat.in.canary.gw-1"), Ingest::Canary);
        assert_eq!(ingest_kind("chat.in.canary"), Ingest::One);
        assert!(is_canary_answers(&canary_answers("gw-1")));
        assert!(!is_canary_answers(&receipts("gw-1")));
        assert!(!is_receipts(&canary_answers("gw-1")));
    }

    #[test]
    fn commands_and_announcements_are_per_room_under_one_wildcard_each() {
        let room = RoomId::parse("lobby").unwrap();
        assert_eq!(announcement(&room), "chat.announce.lobby");
        assert_eq!(announcement_all(), "chat.announce.>");
        assert_eq!(signals(), "chat.signals");
        assert_eq!(mark(&room), "chat.mark.lobby");
        assert_eq!(mark_all(), "chat.mark.>");
        assert_eq!(command(&room), "chat.cmd.lobby");
        assert_eq!(command_all(), "chat.cmd.>");
        assert_eq!(dead_command("lobby"), "chat.dead.cmd.lobby");
        assert!(is_dead_command(&dead_command("lobby")));
        assert!(!is_dead_command(&dead_letter("lobby")));
        assert!(!is_dead_command(&dead_letter("cmdroom")));
        assert!(
            is_dead_command("chat.dead.ctl.lobby"),
            "dead before the rename"
        );
        assert!(is_inbox("_INBOX.abc.def"));
        assert!(!is_inbox("_INBOX."));
        assert!(!is_inbox("chat.room.lobby"));
        assert!(!is_inbox("_INBOX.>"));
    }

    #[test]
    fn publish_ids_differ_per_gateway_and_ticket() {
        assert_ne!(publish_id("gw-1", 7), publish_id("gw-2", 7));
        assert_ne!(publish_id("gw-1", 7), publish_id("gw-1", 8));
    }

    #[test]
    fn replay_ids_differ_per_dead_letter_and_from_publish_ids() {
        assert_eq!(replay_id(7), "dlq:7");
        assert_ne!(replay_id(7), replay_id(8));
        assert_ne!(replay_id(7), publish_id("dlq", 7));
    }
}
