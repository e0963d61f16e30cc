//! The fault suite's lost/duplicate checker. Steady traffic from real
//! clients (the client library, which resends until acked and resumes from
//! its last seq), spread over two gateways; a record of every attempt, ack
//! and delivery; and, once the traffic stops, the verdict: what was lost,
//! duplicated or made up, whether every room's seqs are contiguous in
//! Postgres and in every member's view, and how long recovery took.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt::Write as _,
    io::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use chat_client::{Client, ClientEncoding, ClientOptions, Messages, NewEntry, RoomApi};
use tokio::{sync::watch, task::JoinSet, time::Instant};

use crate::{cluster::ADMIN_TOKEN, Cluster};

/// How much traffic, and of what shape.
#[derive(Clone)]
pub struct TrafficOptions {
    pub rooms: usize,
    /// Members of each room, each a user with a client of its own.
    pub members: usize,
    /// Members of each room that send (the first ones).
    pub senders: usize,
    /// Pause between one sender's sends.
    pub interval: Duration,
    /// The clients' silence timeout: how soon they drop a hung gateway.
    pub silence_timeout: Duration,
    /// Senders also edit their messages and add and take back reactions
    /// (`event_state` checks what that left).
    pub events: bool,
}

impl Default for TrafficOptions {
    fn default() -> Self {
        Self {
            rooms: 3,
            members: 4,
            senders: 2,
            interval: Duration::from_millis(50),
            silence_timeout: Duration::from_secs(20),
            events: false,
        }
    }
}

struct Attempt {
    room: String,
    sender: String,
    id: String,
    at: Instant,
}

enum Outcome {
    Acked {
        seq: u64,
        at: Instant,
    },
    /// A definite error the client library handed to the application.
    Refused,
}

#[derive(Default)]
struct Log {
    /// Every send, in the order each sender made them.
    attempts: Vec<Attempt>,
    outcomes: HashMap<String, Outcome>,
    /// Per member: (room, seq, sender, client_msg_id) in delivery order.
    deliveries: Vec<Vec<(String, u64, String, String)>>,
}

struct Member {
    room: String,
    user: String,
    client: Client,
}

/// Traffic under way; [`Traffic::finish`] stops it and returns the verdict.
pub struct Traffic {
    log: Arc<Mutex<Log>>,
    members: Vec<Member>,
    rooms: Vec<String>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    fault_at: Option<Instant>,
    healed_at: Option<Instant>,
}

impl Traffic {
    /// Creates the rooms (named after `tag`), connects every member (alternately preferring
    /// each gateway, the other as fallback), joins and starts sending.
    pub async fn start(cluster: &Cluster, tag: &str, options: TrafficOptions) -> Self {
        let admin = RoomApi::new(cluster.gateway(0).url(""), ADMIN_TOKEN);
        let log = Arc::new(Mutex::new(Log::default()));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut members = Vec::new();
        let mut rooms = Vec::new();
        for r in 0..options.rooms {
            let room = format!("{tag}{r}");
            let users: Vec<String> = (0..options.members)
                .map(|m| format!("{room}u{m}"))
                .collect();
            let names: Vec<&str> = users.iter().map(String::as_str).collect();
            assert!(admin.create_room(&room, &names).await.expect("create room"));
            for user in users {
                let index = members.len();
                let first = index % cluster.gateways.len();
                let urls: Vec<String> = (0..cluster.gateways.len())
                    .map(|g| {
                        cluster
                            .gateway((first + g) % cluster.gateways.len())
                            .ws_url()
                    })
                    .collect();
                let client_options =
                    ClientOptions::new(urls, cluster.token(&user), ClientEncoding::Json)
                        .backoff(Duration::from_millis(50), Duration::from_millis(500))
                        .silence_timeout(options.silence_timeout);
                let (client, messages) = Client::connect(client_options);
                client.join(&room, Some(0)).await.expect("join");
                log.lock().unwrap().deliveries.push(Vec::new());
                tasks.spawn(receive(messages, Arc::clone(&log), index));
                members.push(Member {
                    room: room.clone(),
                    user,
                    client,
                });
            }
            rooms.push(room);
        }
        // Every member is in before the first send.
        for (i, member) in members.iter().enumerate() {
            if i % options.members < options.senders {
                tasks.spawn(send(
                    Sender {
                        client: member.client.clone(),
                        room: member.room.clone(),
                        user: member.user.clone(),
                        events: options.events,
                    },
                    options.interval,
                    Arc::clone(&log),
                    stopped.clone(),
                ));
            }
        }
        Self {
            log,
            members,
            rooms,
            stop,
            tasks,
            fault_at: None,
            healed_at: None,
        }
    }

    /// The rooms it sends to.
    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    /// Acks so far.
    pub fn acked(&self) -> usize {
        let log = self.log.lock().unwrap();
        log.outcomes
            .values()
            .filter(|o| matches!(o, Outcome::Acked { .. }))
            .count()
    }

    /// Waits until `n` more sends have been acked (or panics after `timeout`).
    pub async fn until_acked(&self, n: usize, timeout: Duration) {
        let target = self.acked() + n;
        crate::wait_for("acks", timeout, || {
            let done = self.acked() >= target;
            async move { done.then_some(()) }
        })
        .await;
    }

    /// The fault happens now.
    pub fn fault(&mut self) {
        self.fault_at = Some(Instant::now());
    }

    /// The fault is over now (the process restarted, the link restored).
    pub fn healed(&mut self) {
        self.healed_at = Some(Instant::now());
    }

    /// Stops sending, waits until every send is answered and every member
    /// has caught up with its room in Postgres, and judges.
    pub async fn finish(mut self, cluster: &Cluster, fault: &str) -> Report {
        self.stop.send_replace(true);
        let deadline = Instant::now() + Duration::from_secs(90);
        // Every send answered (acked or refused): the clients resend
        // until then, so silence here is a finding, not a slow test.
        loop {
            let unanswered = {
                let log = self.log.lock().unwrap();
                log.attempts.len() - log.outcomes.len()
            };
            if unanswered == 0 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stored = read_stored(cluster, &self.rooms).await;
        // Every member has caught up with its room's last seq.
        loop {
            let behind = {
                let log = self.log.lock().unwrap();
                self.members.iter().enumerate().any(|(i, m)| {
                    let head = stored[&m.room].last().map_or(0, |s| s.0);
                    log.deliveries[i].last().map_or(0, |d| d.1) < head
                })
            };
            if !behind || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A moment for a duplicate to trail the last message; then judge
        // what Postgres holds now, not what it held before the wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stored = read_stored(cluster, &self.rooms).await;
        for member in &self.members {
            member.client.close();
        }
        self.tasks.abort_all();
        let log = self.log.lock().unwrap();
        judge(
            fault,
            &log,
            &self.members,
            &stored,
            self.fault_at,
            self.healed_at,
        )
    }
}

/// Each room's stored messages: (seq, sender, client_msg_id), by seq.
async fn read_stored(
    cluster: &Cluster,
    rooms: &[String],
) -> HashMap<String, Vec<(u64, String, String)>> {
    let db = cluster.postgres.client().await;
    let mut stored = HashMap::new();
    for room in rooms {
        let rows = db
            .query(
                "SELECT seq, sender_id, client_msg_id FROM messages WHERE room_id = $1 ORDER BY seq",
                &[room],
            )
            .await
            .expect("read stored messages");
        stored.insert(
            room.clone(),
            rows.iter()
                .map(|r| (r.get::<_, i64>(0) as u64, r.get(1), r.get(2)))
                .collect(),
        );
    }
    stored
}

/// One member that sends.
struct Sender {
    client: Client,
    room: String,
    user: String,
    /// Whether it edits and reacts too.
    events: bool,
}

/// What a sender did, to pick the targets of its events.
#[derive(Default)]
struct Sent {
    /// Its chat messages' ids.
    messages: Vec<String>,
    /// Reactions it added, not taken back yet: (id, target, emoji).
    reactions: VecDeque<(String, u64, String)>,
}

impl Sent {
    /// The seq of its newest message acked so far.
    fn newest_acked(&self, log: &Log) -> Option<u64> {
        self.messages.iter().rev().find_map(|id| acked_seq(log, id))
    }

    /// Its next entry: every fourth a message; else (once one is acked) an
    /// edit of its newest message, a reaction to it (a new emoji each
    /// time, so that each changes something), or the take-back of its
    /// oldest reaction already acked.
    fn next(&mut self, id: &str, n: usize, user: &str, events: bool, log: &Log) -> NewEntry {
        let message = NewEntry::Message {
            body: format!("message {n} of {user}"),
            reply_to: None,
        };
        let newest = self.newest_acked(log);
        let entry = match (events, n % 4, newest) {
            (true, 1, Some(seq)) => NewEntry::Edit {
                seq,
                body: format!("edit {n} of {user}"),
            },
            (true, 2, Some(seq)) => {
                let emoji = format!("r{n}");
                self.reactions
                    .push_back((id.to_owned(), seq, emoji.clone()));
                NewEntry::React {
                    seq,
                    emoji,
                    remove: false,
                }
            }
            (true, 3, _)
                if self
                    .reactions
                    .front()
                    .is_some_and(|r| acked_seq(log, &r.0).is_some()) =>
            {
                let (_, seq, emoji) = self.reactions.pop_front().expect("checked");
                NewEntry::React {
                    seq,
                    emoji,
                    remove: true,
                }
            }
            _ => message,
        };
        if matches!(entry, NewEntry::Message { .. }) {
            self.messages.push(id.to_owned());
        }
        entry
    }
}

fn acked_seq(log: &Log, id: &str) -> Option<u64> {
    match log.outcomes.get(id) {
        Some(Outcome::Acked { seq, .. }) => Some(*seq),
        _ => None,
    }
}

async fn send(
    sender: Sender,
    interval: Duration,
    log: Arc<Mutex<Log>>,
    mut stop: watch::Receiver<bool>,
) {
    let Sender {
        client,
        room,
        user,
        events,
    } = sender;
    let mut ticker = tokio::time::interval(interval);
    let mut answers = JoinSet::new();
    let mut sent = Sent::default();
    for n in 0.. {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let id = format!("{user}-{n}");
        let entry = {
            let mut log = log.lock().unwrap();
            log.attempts.push(Attempt {
                room: room.clone(),
                sender: user.clone(),
                id: id.clone(),
                at: Instant::now(),
            });
            sent.next(&id, n, &user, events, &log)
        };
        let pending = client.submit_entry(&room, &id, entry);
        let log = Arc::clone(&log);
        answers.spawn(async move {
            let outcome = match pending.await {
                Ok(ack) => Outcome::Acked {
                    seq: ack.seq,
                    at: Instant::now(),
                },
                Err(_) => Outcome::Refused,
            };
            log.lock().unwrap().outcomes.insert(id, outcome);
        });
    }
    while answers.join_next().await.is_some() {}
}

async fn receive(mut messages: Messages, log: Arc<Mutex<Log>>, member: usize) {
    while let Some(m) = messages.recv().await {
        log.lock().unwrap().deliveries[member].push((m.room, m.seq, m.sender, m.client_msg_id));
    }
}

/// One fault's verdict. Pass: every loss count is zero.
#[derive(Debug, Default)]
pub struct Report {
    pub fault: String,
    pub attempted: usize,
    pub acked: usize,
    /// Answered with a definite error.
    pub refused: usize,
    /// Neither acked nor refused: the sender was left waiting.
    pub unanswered: usize,
    pub stored: usize,
    /// Acked but not stored, or stored but not seen by a member.
    pub lost: usize,
    /// Acked, not stored, while a later send of the same sender was stored.
    pub lost_middle: usize,
    /// Stored twice, seen twice by a member, or acked with another seq.
    pub duplicated: usize,
    /// Seen by a member but never sent, or not what is stored at that seq.
    pub unexpected: usize,
    /// Rooms whose stored seqs, and member views whose seqs, are not 1..=n.
    pub gaps: usize,
    /// Fault (or heal, when there is one) to the first ack after it.
    pub recover: Option<Duration>,
    /// Fault to the ack of the last send made before it.
    pub held: Option<Duration>,
}

fn judge(
    fault: &str,
    log: &Log,
    members: &[Member],
    stored: &HashMap<String, Vec<(u64, String, String)>>,
    fault_at: Option<Instant>,
    healed_at: Option<Instant>,
) -> Report {
    let mut report = Report {
        fault: fault.into(),
        attempted: log.attempts.len(),
        ..Report::default()
    };
    let sent: HashMap<(&str, &str), &Attempt> = log
        .attempts
        .iter()
        .map(|a| ((a.sender.as_str(), a.id.as_str()), a))
        .collect();
    // Where each send is stored: (room, seq) by (sender, id).
    let mut place: HashMap<(&str, &str), (&str, u64)> = HashMap::new();
    for (room, rows) in stored {
        report.stored += rows.len();
        if !rows.iter().map(|r| r.0).eq(1..=rows.len() as u64) {
            report.gaps += 1;
        }
        for (seq, sender, id) in rows {
            if place
                .insert((sender.as_str(), id.as_str()), (room.as_str(), *seq))
                .is_some()
            {
                report.duplicated += 1;
            }
            if !sent.contains_key(&(sender.as_str(), id.as_str())) {
                report.unexpected += 1;
            }
        }
    }
    // Per sender, the last send that was stored.
    let mut last_stored: HashMap<&str, usize> = HashMap::new();
    for (i, a) in log.attempts.iter().enumerate() {
        if place.contains_key(&(a.sender.as_str(), a.id.as_str())) {
            last_stored.insert(&a.sender, i);
        }
    }
    for (i, a) in log.attempts.iter().enumerate() {
        match log.outcomes.get(&a.id) {
            None => report.unanswered += 1,
            Some(Outcome::Refused) => report.refused += 1,
            Some(Outcome::Acked { seq, .. }) => {
                report.acked += 1;
                match place.get(&(a.sender.as_str(), a.id.as_str())) {
                    None => {
                        report.lost += 1;
                        if last_stored.get(a.sender.as_str()).is_some_and(|&l| l > i) {
                            report.lost_middle += 1;
                        }
                    }
                    Some((room, stored_seq)) => {
                        if *room != a.room || stored_seq != seq {
                            report.duplicated += 1;
                        }
                    }
                }
            }
        }
    }
    // Every member saw its room's stored messages, each once, in order.
    let mut missed: HashSet<(&str, u64)> = HashSet::new();
    for (i, member) in members.iter().enumerate() {
        let rows = &stored[&member.room];
        let view = &log.deliveries[i];
        let mut seen = HashSet::new();
        for (room, seq, sender, id) in view {
            if !seen.insert(*seq) {
                report.duplicated += 1;
                continue;
            }
            let matches = *room == member.room
                && rows
                    .get((*seq as usize).wrapping_sub(1))
                    .is_some_and(|r| r.1 == *sender && r.2 == *id);
            if !matches {
                report.unexpected += 1;
            }
        }
        if !view.iter().map(|d| d.1).eq(1..=view.len() as u64) {
            report.gaps += 1;
        }
        for row in rows {
            if !seen.contains(&row.0) {
                missed.insert((&member.room, row.0));
            }
        }
    }
    report.lost += missed.len();
    let acks: Vec<(Instant, Instant)> = log
        .attempts
        .iter()
        .filter_map(|a| match log.outcomes.get(&a.id) {
            Some(Outcome::Acked { at, .. }) => Some((a.at, *at)),
            _ => None,
        })
        .collect();
    if let Some(fault_at) = fault_at {
        let since = healed_at.unwrap_or(fault_at);
        report.recover = acks
            .iter()
            .filter(|(_, acked)| *acked > since)
            .map(|(_, acked)| *acked - since)
            .min();
        report.held = acks
            .iter()
            .filter(|(sent, acked)| *sent < fault_at && *acked > fault_at)
            .map(|(_, acked)| *acked - fault_at)
            .max();
    }
    report
}

impl Report {
    pub const HEADER: &'static str = "| fault | attempted | acked | refused | unanswered | stored | lost | lost-middle | duplicated | unexpected | gaps | recover | held |";

    fn ms(d: Option<Duration>) -> String {
        d.map_or("-".into(), |d| format!("{} ms", d.as_millis()))
    }

    /// The report as a row of the suite's table.
    pub fn row(&self) -> String {
        let mut row = String::new();
        let _ = write!(
            row,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.fault,
            self.attempted,
            self.acked,
            self.refused,
            self.unanswered,
            self.stored,
            self.lost,
            self.lost_middle,
            self.duplicated,
            self.unexpected,
            self.gaps,
            Self::ms(self.recover),
            Self::ms(self.held),
        );
        row
    }

    /// Prints the row, appends it to `$FAULT_TABLE` (the suite's table,
    /// which scripts/test.sh prints) and fails the test on any loss.
    pub fn check(&self) {
        eprintln!("{}\n{}", Self::HEADER, self.row());
        if let Some(path) = std::env::var_os("FAULT_TABLE") {
            // The tests run in one process: one writes at a time, and the
            // first writes the header.
            static TABLE: Mutex<()> = Mutex::new(());
            let _one = TABLE.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                let separator = "|---".repeat(Self::HEADER.matches('|').count() - 1) + "|";
                writeln!(file, "{}\n{separator}", Self::HEADER).expect("write $FAULT_TABLE");
            }
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open $FAULT_TABLE");
            writeln!(file, "{}", self.row()).expect("write $FAULT_TABLE");
        }
        assert!(self.acked > 0, "{}: nothing was acked", self.fault);
        assert!(
            self.recover.is_some(),
            "{}: nothing was acked after the fault",
            self.fault
        );
        assert_eq!(
            (
                self.lost,
                self.lost_middle,
                self.duplicated,
                self.unexpected,
                self.gaps,
                self.unanswered,
                self.refused
            ),
            (0, 0, 0, 0, 0, 0, 0),
            "{}: (lost, lost-middle, duplicated, unexpected, gaps, unanswered, refused)",
            self.fault
        );
    }
}
