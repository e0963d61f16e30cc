//! `worker dlq`: the operator's tools for the dead-letter stream: list,
//! show, replay and purge the sends and commands the worker gave up on.
//!
//! A replay republishes the original envelope to its room's bulk subject
//! (a command to its room's command subject), where the workers handle it
//! like any other, sends in the bulk class, behind live chat. That is safe because the store is idempotent on (room,
//! sender, client_msg_id) and on the command id: a send its sender resent
//! meanwhile is found, not stored twice, and a command is applied once. The dead letter is deleted only
//! once JetStream has acked the republish, and the republish carries a
//! `Nats-Msg-Id` of its own ([`subjects::replay_id`]), so a replay retried
//! after a lost ack is dropped by JetStream as a copy.

use std::{collections::BTreeMap, fmt::Write as _, process::ExitCode};

use async_nats::{
    header::NATS_MESSAGE_ID,
    jetstream::{
        self,
        context::{GetStreamError, PublishError},
        message::StreamMessage,
        stream::{DeleteMessageError, RawMessageError, RawMessageErrorKind, Stream},
    },
    HeaderMap, HeaderValue,
};
use chat_proto::internal::{Command, Envelope};
use chat_protocol::{subjects, RoomId};
use clap::{builder::PossibleValuesParser, ArgGroup, Args, Subcommand};
use prost::Message as _;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::{
    config::WorkerConfig,
    error::WorkerError,
    retry::{ATTEMPTS_HEADER, DEAD_DETAIL_HEADER, DEAD_REASON_HEADER},
};

/// Header on a replayed send: the dead letter's seq, so that the send can
/// be told from a gateway's when reading the bulk stream or a trace.
pub const REPLAY_OF_HEADER: &str = "Chat-Replay-Of";
/// Longest detail in `list`'s text output; `show` and `--json` give it whole.
const LIST_DETAIL_CHARS: usize = 60;

/// `worker dlq`: what to do with the dead-letter stream, and how to say it.
#[derive(Args)]
pub struct DlqArgs {
    /// One JSON object per line (for scripts) instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// One line per dead letter, oldest first, then a count by reason.
    List {
        #[command(flatten)]
        filter: Filter,
        /// Most dead letters listed (the count by reason covers all that match).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Everything about one dead letter, its envelope decoded (body included).
    Show {
        /// The dead letter's sequence in the dead-letter stream.
        seq: u64,
    },
    /// Republishes dead letters to their rooms' ingest subjects, then deletes
    /// each once JetStream has it; undecodable ones are skipped.
    Replay {
        #[command(flatten)]
        select: Selection,
        /// Only say what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Deletes dead letters; without --yes only says what it would delete.
    Purge {
        #[command(flatten)]
        select: Selection,
        /// Really delete.
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters a scan keeps; both filters must hold.
#[derive(Args)]
#[group(skip)]
struct Filter {
    /// Only this room's (undecodable ones have no room).
    #[arg(long, value_parser = parse_room)]
    room: Option<RoomId>,
    /// Only those dead-lettered for this reason (`Chat-Dead-Reason`).
    #[arg(long, value_parser = PossibleValuesParser::new(WorkerError::SEND_FAILURE_LABELS))]
    reason: Option<String>,
}

/// The dead letters a replay or purge acts on: by seq, all, or by filter.
#[derive(Args)]
#[group(skip)]
#[command(group(ArgGroup::new("selection").required(true).multiple(true)
    .args(["seqs", "all", "room", "reason"])))]
struct Selection {
    /// Dead letters by their sequence in the dead-letter stream.
    #[arg(conflicts_with_all = ["all", "room", "reason"])]
    seqs: Vec<u64>,
    /// Every dead letter.
    #[arg(long, conflicts_with_all = ["room", "reason"])]
    all: bool,
    #[command(flatten)]
    filter: Filter,
}

fn parse_room(s: &str) -> Result<RoomId, chat_protocol::ids::IdError> {
    RoomId::parse(s)
}

/// What can go wrong with the dead-letter stream or one dead letter.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("cannot reach NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("dead-letter stream {name}: {0}", name = subjects::DEAD_LETTER_STREAM)]
    Stream(#[from] GetStreamError),
    #[error("no dead letter with seq {0}")]
    NotFound(u64),
    #[error("reading dead letter {seq}: {source}")]
    Read { seq: u64, source: RawMessageError },
    #[error("republishing: {0}")]
    Publish(#[from] PublishError),
    #[error("deleting the dead letter: {0}")]
    Delete(#[from] DeleteMessageError),
    #[error("the dead letter was already gone when deleted")]
    AlreadyDeleted,
}

/// Runs one `worker dlq` command: 0 when every item was handled, 1 when
/// some failed or NATS could not be used. (Bad arguments and configuration
/// exit with 2 before this runs.)
pub async fn run(config: &WorkerConfig, args: DlqArgs) -> ExitCode {
    let out = Out { json: args.json };
    let result = async {
        let dead = DeadLetters::open(config).await?;
        match args.command {
            DlqCommand::List { filter, limit } => list(&dead, &out, &filter, limit).await,
            DlqCommand::Show { seq } => show(&dead, &out, seq).await,
            DlqCommand::Replay { select, dry_run } => {
                act(&dead, &out, &select, Action::Replay { dry_run }).await
            }
            DlqCommand::Purge { select, yes } => {
                act(&dead, &out, &select, Action::Purge { dry_run: !yes }).await
            }
        }
    }
    .await;
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("worker dlq: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The dead-letter stream, read one message per request: slower than a
/// consumer, but it leaves nothing behind on the server, and the dead
/// letters an incident leaves are read in seconds.
struct DeadLetters {
    js: jetstream::Context,
    stream: Stream,
}

impl DeadLetters {
    async fn open(config: &WorkerConfig) -> Result<Self, DlqError> {
        let nats = chat_streams::connect_options("chat-worker-dlq".into())
            .connect(config.nats_url.expose())
            .await?;
        let js = jetstream::new(nats);
        let stream = js.get_stream(subjects::DEAD_LETTER_STREAM).await?;
        Ok(Self { js, stream })
    }

    async fn get(&self, seq: u64) -> Result<DeadLetter, DlqError> {
        match self.stream.get_raw_message(seq).await {
            Ok(msg) => Ok(DeadLetter::new(msg)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                Err(DlqError::NotFound(seq))
            }
            Err(source) => Err(DlqError::Read { seq, source }),
        }
    }

    /// The dead letters that match `filter`, oldest first. The scan stops
    /// at the newest one when it started, so that a replay that fails again
    /// (and is dead-lettered anew) is not met again by the same run.
    fn scan<'a>(&'a self, filter: &'a Filter) -> Scan<'a> {
        Scan {
            dead: self,
            filter,
            seq: 1,
            last: self.stream.cached_info().state.last_sequence,
        }
    }

    /// Publishes the envelope to its room's bulk subject (a command to its
    /// command subject) and waits for JetStream's ack; returns its seq
    /// in that stream.
    async fn republish(&self, letter: &DeadLetter, decoded: &Decoded) -> Result<u64, DlqError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_MESSAGE_ID,
            HeaderValue::from(subjects::replay_id(letter.msg.sequence).as_str()),
        );
        headers.insert(REPLAY_OF_HEADER, HeaderValue::from(letter.msg.sequence));
        let ack = self
            .js
            .publish_with_headers(decoded.subject(), headers, letter.msg.payload.clone())
            .await?
            .await?;
        Ok(ack.sequence)
    }

    async fn delete(&self, seq: u64) -> Result<(), DlqError> {
        match self.stream.delete_message(seq).await? {
            true => Ok(()),
            false => Err(DlqError::AlreadyDeleted),
        }
    }
}

/// A walk through the dead-letter stream, one request per dead letter.
struct Scan<'a> {
    dead: &'a DeadLetters,
    filter: &'a Filter,
    /// Where the next request starts.
    seq: u64,
    /// The newest dead letter when the scan started.
    last: u64,
}

impl Scan<'_> {
    async fn next(&mut self) -> Result<Option<DeadLetter>, DlqError> {
        while self.seq <= self.last {
            let found = self
                .dead
                .stream
                .get_first_raw_message_by_subject(subjects::dead_letter_all(), self.seq)
                .await;
            let msg = match found {
                Ok(msg) if msg.sequence <= self.last => msg,
                Ok(_) => break,
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
                Err(source) => {
                    return Err(DlqError::Read {
                        seq: self.seq,
                        source,
                    })
                }
            };
            self.seq = msg.sequence + 1;
            let letter = DeadLetter::new(msg);
            if letter.matches(self.filter) {
                return Ok(Some(letter));
            }
        }
        Ok(None)
    }
}

/// One message of the dead-letter stream, decoded if it can be.
struct DeadLetter {
    msg: StreamMessage,
    /// Why it cannot be decoded, if so.
    decoded: Result<Decoded, String>,
}

/// What a dead letter holds, and its room.
struct Decoded {
    letter: Letter,
    room: RoomId,
}

enum Letter {
    Send(Envelope),
    Command(Command),
}

impl Decoded {
    /// Where a replay goes.
    fn subject(&self) -> String {
        match self.letter {
            Letter::Send(_) => subjects::bulk(&self.room),
            Letter::Command(_) => subjects::command(&self.room),
        }
    }

    /// Who sent it, and its id (client_msg_id or command id).
    fn sender_and_id(&self) -> (&str, &str) {
        match &self.letter {
            Letter::Send(e) => (&e.sender, &e.client_msg_id),
            Letter::Command(c) => (&c.actor, &c.command_id),
        }
    }
}

impl DeadLetter {
    fn new(msg: StreamMessage) -> Self {
        let decoded = if subjects::is_dead_command(&msg.subject) {
            Command::decode(&msg.payload[..])
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    let room = RoomId::parse(c.room.clone()).map_err(|e| e.to_string())?;
                    Ok(Decoded {
                        letter: Letter::Command(c),
                        room,
                    })
                })
        } else {
            chat_protocol::envelope::decode(&msg.payload)
                .map(|(e, room)| Decoded {
                    letter: Letter::Send(e),
                    room,
                })
                .map_err(|e| e.to_string())
        };
        Self { msg, decoded }
    }

    fn header(&self, name: &str) -> &str {
        self.msg.headers.get(name).map_or("", |v| v.as_str())
    }

    fn reason(&self) -> &str {
        self.header(DEAD_REASON_HEADER)
    }

    fn matches(&self, filter: &Filter) -> bool {
        let room_ok = filter
            .room
            .as_ref()
            .is_none_or(|want| self.decoded.as_ref().is_ok_and(|d| d.room == *want));
        room_ok && filter.reason.as_deref().is_none_or(|r| r == self.reason())
    }

    /// What `list` prints of it, and the start of what `show` prints.
    fn summary(&self) -> Summary {
        let decoded = self.decoded.as_ref().ok();
        let ids = decoded.map(Decoded::sender_and_id);
        Summary {
            seq: self.msg.sequence,
            time: self.msg.time.format(&Rfc3339).unwrap_or_default(),
            subject: self.msg.subject.to_string(),
            holds: if subjects::is_dead_command(&self.msg.subject) {
                "command"
            } else {
                "send"
            },
            room: decoded.map(|d| d.room.to_string()),
            sender: ids.map(|(sender, _)| sender.to_owned()),
            client_msg_id: ids.map(|(_, id)| id.to_owned()),
            reason: self.reason().to_owned(),
            attempts: self.header(ATTEMPTS_HEADER).parse().ok(),
            detail: self.header(DEAD_DETAIL_HEADER).to_owned(),
        }
    }
}

#[derive(Serialize)]
struct Summary {
    seq: u64,
    time: String,
    subject: String,
    /// `send` or `command`.
    holds: &'static str,
    room: Option<String>,
    /// The sender (a command's actor).
    sender: Option<String>,
    /// The client_msg_id (a command's id).
    client_msg_id: Option<String>,
    reason: String,
    attempts: Option<u32>,
    detail: String,
}

/// Where results go: text for people, or one JSON object per line.
struct Out {
    json: bool,
}

impl Out {
    /// One result: `value` as a JSON line tagged with `kind`, or `text`.
    fn emit(&self, kind: &str, value: &impl Serialize, text: impl FnOnce() -> String) {
        if self.json {
            let mut object = serde_json::to_value(value).unwrap_or_default();
            if let Some(map) = object.as_object_mut() {
                map.insert("kind".into(), kind.into());
            }
            println!("{object}");
        } else {
            println!("{}", text());
        }
    }
}

/// `list`: the matching dead letters, oldest first, then a count by reason.
async fn list(
    dead: &DeadLetters,
    out: &Out,
    filter: &Filter,
    limit: Option<usize>,
) -> Result<bool, DlqError> {
    let (mut rows, mut by_reason) = (Vec::new(), BTreeMap::<String, u64>::new());
    let mut scan = dead.scan(filter);
    while let Some(letter) = scan.next().await? {
        *by_reason.entry(letter.reason().to_owned()).or_default() += 1;
        if limit.is_none_or(|n| rows.len() < n) {
            rows.push(letter.summary());
        }
    }
    if out.json {
        for row in &rows {
            out.emit("dead_letter", row, String::new);
        }
    } else {
        print!("{}", table(&rows));
    }
    let total: u64 = by_reason.values().sum();
    let counts =
        serde_json::json!({ "total": total, "listed": rows.len(), "by_reason": by_reason });
    out.emit("summary", &counts, || {
        let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
        format!(
            "{total} dead letters ({} listed): {}",
            rows.len(),
            reasons.join(", ")
        )
    });
    Ok(true)
}

/// The rows as aligned columns, the detail cut short.
fn table(rows: &[Summary]) -> String {
    let header = [
        "SEQ",
        "TIME",
        "ROOM",
        "SENDER",
        "CLIENT_MSG_ID",
        "REASON",
        "ATTEMPTS",
        "DETAIL",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let or_dash = |s: &Option<String>| s.as_deref().map_or("-".into(), printable);
            [
                r.seq.to_string(),
                r.time.clone(),
                or_dash(&r.room),
                or_dash(&r.sender),
                or_dash(&r.client_msg_id),
                printable(&r.reason),
                r.attempts.map_or("-".into(), |n| n.to_string()),
                truncate(&r.detail, LIST_DETAIL_CHARS),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(header.map(String::from)).chain(cells) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `show`: one dead letter in full.
async fn show(dead: &DeadLetters, out: &Out, seq: u64) -> Result<bool, DlqError> {
    let letter = dead.get(seq).await?;
    let headers: BTreeMap<String, String> = letter
        .msg
        .headers
        .iter()
        .map(|(name, values)| {
            let values: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
            (name.to_string(), values.join(", "))
        })
        .collect();
    let detail = Detail {
        summary: letter.summary(),
        headers,
        envelope: match letter.decoded.as_ref().map(|d| &d.letter) {
            Ok(Letter::Send(e)) => Some(e.into()),
            _ => None,
        },
        change: match letter.decoded.as_ref().map(|d| &d.letter) {
            Ok(Letter::Command(c)) => Some(format!("{:?}", c.change)),
            _ => None,
        },
        undecodable: letter.decoded.as_ref().err().map(|e| Undecodable {
            error: e.clone(),
            hex: hex::encode(&letter.msg.payload),
            escaped: letter.msg.payload.escape_ascii().to_string(),
        }),
    };
    out.emit("dead_letter", &detail, || detail.text());
    Ok(true)
}

#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    summary: Summary,
    /// Every header, the three the worker writes included.
    headers: BTreeMap<String, String>,
    envelope: Option<EnvelopeFields>,
    /// A command's change, as the worker would apply it.
    change: Option<String>,
    undecodable: Option<Undecodable>,
}

/// The envelope's fields as sent (room, sender and client_msg_id are in the summary).
#[derive(Serialize)]
struct EnvelopeFields {
    body: String,
    received_ts_ms: i64,
    reply_to: String,
    ticket: u64,
}

impl From<&Envelope> for EnvelopeFields {
    fn from(e: &Envelope) -> Self {
        Self {
            body: e.body.clone(),
            received_ts_ms: e.received_ts_ms,
            reply_to: e.reply_to.clone(),
            ticket: e.ticket,
        }
    }
}

/// A payload that is no envelope, as bytes a person can read.
#[derive(Serialize)]
struct Undecodable {
    error: String,
    hex: String,
    escaped: String,
}

impl Detail {
    fn text(&self) -> String {
        let s = &self.summary;
        let mut lines = vec![
            ("seq", s.seq.to_string()),
            ("time", s.time.clone()),
            ("subject", s.subject.clone()),
        ];
        lines.extend(self.headers.iter().map(|(k, v)| (k.as_str(), printable(v))));
        if let (Some(room), Some(sender), Some(id)) = (&s.room, &s.sender, &s.client_msg_id) {
            let id_name = if self.change.is_some() {
                "command_id"
            } else {
                "client_msg_id"
            };
            lines.extend([
                ("room", printable(room)),
                ("sender", printable(sender)),
                (id_name, printable(id)),
            ]);
        }
        if let Some(e) = &self.envelope {
            lines.extend([
                ("received_ts_ms", e.received_ts_ms.to_string()),
                ("reply_to", printable(&e.reply_to)),
                ("ticket", e.ticket.to_string()),
                ("body", printable(&e.body)),
            ]);
        }
        if let Some(change) = &self.change {
            lines.push(("change", printable(change)));
        }
        if let Some(u) = &self.undecodable {
            lines.extend([
                ("undecodable", printable(&u.error)),
                ("bytes", u.escaped.clone()),
                ("hex", u.hex.clone()),
            ]);
        }
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let text: Vec<String> = lines
            .iter()
            .map(|(k, v)| format!("{k:<width$}  {v}"))
            .collect();
        text.join("\n")
    }
}

/// What `act` does with each selected dead letter.
#[derive(Clone, Copy)]
enum Action {
    Replay { dry_run: bool },
    Purge { dry_run: bool },
}

/// What became of one selected dead letter.
#[derive(Serialize)]
struct Outcome {
    seq: u64,
    room: Option<String>,
    /// `replayed`, `would_replay`, `skipped`, `purged`, `would_purge`, `failed`.
    outcome: &'static str,
    /// Seq of the republished letter in the stream it went to (bulk sends
    /// or commands).
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed_seq: Option<u64>,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `replay` and `purge`: each selected dead letter in stream order. True
/// when every one was handled (an undecodable one cannot be replayed, so a
/// replay that skips one is not).
async fn act(
    dead: &DeadLetters,
    out: &Out,
    select: &Selection,
    action: Action,
) -> Result<bool, DlqError> {
    let kind = match action {
        Action::Replay { .. } => "replay",
        Action::Purge { .. } => "purge",
    };
    let mut counts = BTreeMap::<&str, u64>::new();
    let mut report = |outcome: Outcome| {
        *counts.entry(outcome.outcome).or_default() += 1;
        out.emit(kind, &outcome, || outcome.text());
    };
    if select.seqs.is_empty() {
        let mut scan = dead.scan(&select.filter);
        while let Some(letter) = scan.next().await? {
            report(handle(dead, &letter, action).await);
        }
    } else {
        for &seq in &select.seqs {
            report(match dead.get(seq).await {
                Ok(letter) => handle(dead, &letter, action).await,
                Err(e) => Outcome::failed(seq, &e),
            });
        }
    }
    let ok = !counts.contains_key("failed") && !counts.contains_key("skipped");
    out.emit("summary", &counts, || {
        let counts: Vec<String> = counts.iter().map(|(o, n)| format!("{o} {n}")).collect();
        let counts = match counts.is_empty() {
            true => "nothing selected".into(),
            false => counts.join(", "),
        };
        let hint = match action {
            Action::Purge { dry_run: true } => " (nothing deleted: add --yes to delete)",
            Action::Replay { dry_run: true } => " (dry run: nothing replayed)",
            _ => "",
        };
        format!("{kind}: {counts}{hint}")
    });
    Ok(ok)
}

/// Replays or purges one dead letter. A replay deletes the dead letter
/// only after JetStream acked the republish: a failure in between leaves
/// both, and running the replay again is harmless.
async fn handle(dead: &DeadLetters, letter: &DeadLetter, action: Action) -> Outcome {
    let seq = letter.msg.sequence;
    let decoded = letter.decoded.as_ref().ok();
    let mut outcome = Outcome {
        seq,
        room: decoded.map(|d| d.room.to_string()),
        outcome: "failed",
        replayed_seq: None,
        error: None,
    };
    let done = match (action, decoded) {
        (Action::Replay { .. }, None) => {
            outcome.outcome = "skipped";
            outcome.error = letter
                .decoded
                .as_ref()
                .err()
                .map(|e| format!("undecodable, cannot be replayed: {e}"));
            return outcome;
        }
        (Action::Replay { dry_run: true }, Some(_)) => Ok("would_replay"),
        (Action::Replay { dry_run: false }, Some(decoded)) => {
            match dead.republish(letter, decoded).await {
                Ok(replayed_seq) => {
                    outcome.replayed_seq = Some(replayed_seq);
                    dead.delete(seq).await.map(|()| "replayed")
                }
                Err(e) => Err(e),
            }
        }
        (Action::Purge { dry_run: true }, _) => Ok("would_purge"),
        (Action::Purge { dry_run: false }, _) => dead.delete(seq).await.map(|()| "purged"),
    };
    match done {
        Ok(done) => outcome.outcome = done,
        Err(e) => outcome.error = Some(e.to_string()),
    }
    outcome
}

impl Outcome {
    fn failed(seq: u64, error: &DlqError) -> Self {
        Self {
            seq,
            room: None,
            outcome: "failed",
            replayed_seq: None,
            error: Some(error.to_string()),
        }
    }

    fn text(&self) -> String {
        let mut text = format!("{} {}", self.seq, self.outcome);
        if let Some(room) = &self.room {
            let _ = write!(text, " room {room}");
        }
        if let Some(replayed_seq) = self.replayed_seq {
            let _ = write!(text, " as seq {replayed_seq}");
        }
        if let Some(error) = &self.error {
            let _ = write!(text, ": {}", printable(error));
        }
        text
    }
}

/// Text safe to print on a terminal: control characters (a NUL in a body,
/// an escape sequence) are shown escaped, everything else as it is.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// At most `max` characters of `s`, printable, with "…" when cut.
fn truncate(s: &str, max: usize) -> String {
    let cut: String = s.chars().take(max).collect();
    let ellipsis = if s.chars().count() > max { "…" } else { "" };
    format!("{}{ellipsis}", printable(&cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_for_terminals() {
        assert_eq!(printable("nul \0 é\x1b[2J"), "nul \\u{0} é\\u{1b}[2J");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
