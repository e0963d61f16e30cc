//! The run's connections: each one's writer, shared by whatever sends on it,
//! and its reader task, which records what arrives and keeps what the
//! window's messages need for the audit.

use std::{
    collections::HashSet,
    ops::ControlFlow,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use tokio::{sync::Mutex, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    adapter::{Incoming, Rx, Tx},
    scenarios::Params,
    schedule::Schedule,
    stats::{now_us, Stats},
};

/// One open connection.
pub struct Conn {
    pub idx: usize,
    pub room: usize,
    pub tx: Arc<Mutex<Tx>>,
    /// False for receivers whose deliveries cannot be audited (joined late,
    /// churned, or made slow on purpose).
    pub audited: Arc<AtomicBool>,
}

/// Every connection of the run, with its reader task.
pub struct Conns<'a> {
    params: &'a Params,
    schedule: Schedule,
    stats: Arc<Stats>,
    /// Cancelled after the drain: every reader stops.
    stop: CancellationToken,
    list: Vec<Conn>,
    readers: Vec<JoinHandle<Audit>>,
}

/// What one receiver saw of the window.
struct Audit {
    room: usize,
    audited: bool,
    unique: u64,
    received: u64,
}

/// What the audited receivers missed or got twice, against what was sent to
/// their rooms in the window.
pub struct Tally {
    pub audited_receivers: usize,
    pub missing: u64,
    pub duplicates: u64,
}

impl<'a> Conns<'a> {
    pub fn new(
        params: &'a Params,
        schedule: Schedule,
        stats: Arc<Stats>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            params,
            schedule,
            stats,
            stop,
            list: Vec::new(),
            readers: Vec::new(),
        }
    }

    pub fn list(&self) -> &[Conn] {
        &self.list
    }

    /// Adds an open connection and starts reading it; `audited` is false for
    /// one that joined too late to have seen the whole window.
    pub fn start(&mut self, idx: usize, tx: Tx, rx: Rx, audited: bool) {
        let slow = self.params.is_slow(idx);
        let conn = Conn {
            idx,
            room: self.params.room_of(idx),
            tx: Arc::new(Mutex::new(tx)),
            audited: Arc::new(AtomicBool::new(audited && !slow)),
        };
        let reader = Reader {
            conn: idx,
            room: conn.room,
            tx: Arc::clone(&conn.tx),
            audited: Arc::clone(&conn.audited),
            stats: Arc::clone(&self.stats),
            schedule: self.schedule,
            seen: HashSet::new(),
            received: 0,
        };
        self.readers
            .push(tokio::spawn(reader.run(rx, self.stop.clone(), slow)));
        self.list.push(conn);
    }

    /// Waits for every reader (stopped by now) and adds up their audits.
    pub async fn audit(self) -> Tally {
        let mut tally = Tally {
            audited_receivers: 0,
            missing: 0,
            duplicates: 0,
        };
        for reader in self.readers {
            let Ok(audit) = reader.await else { continue };
            if !audit.audited {
                continue;
            }
            tally.audited_receivers += 1;
            let expected = self.stats.room_sent(audit.room);
            tally.missing += expected.saturating_sub(audit.unique);
            tally.duplicates += audit.received - audit.unique;
        }
        tally
    }
}

/// A connection's reading side.
struct Reader {
    conn: usize,
    room: usize,
    /// The connection's writer, to answer Engine.IO pings.
    tx: Arc<Mutex<Tx>>,
    audited: Arc<AtomicBool>,
    stats: Arc<Stats>,
    schedule: Schedule,
    /// The window's messages received, once each, as `sender << 32 | n`.
    seen: HashSet<u64>,
    /// The window's messages received, duplicates included.
    received: u64,
}

impl Reader {
    /// Reads until `stop` or the connection ends; a `slow` reader reads nothing.
    async fn run(mut self, mut rx: Rx, stop: CancellationToken, slow: bool) -> Audit {
        if slow {
            // Stops reading: the server must cope without hurting the others.
            stop.cancelled().await;
            return Audit {
                room: self.room,
                audited: false,
                unique: 0,
                received: 0,
            };
        }
        loop {
            let incoming = tokio::select! {
                i = rx.next() => i,
                () = stop.cancelled() => break,
            };
            let Some(incoming) = incoming else {
                self.stats.closed(None);
                self.audited.store(false, Ordering::Relaxed);
                break;
            };
            if self.record(incoming).await.is_break() {
                break;
            }
        }
        Audit {
            room: self.room,
            audited: self.audited.load(Ordering::Relaxed),
            unique: self.seen.len() as u64,
            received: self.received,
        }
    }

    /// Records one arrival; breaks once the connection is closed.
    async fn record(&mut self, incoming: Incoming) -> ControlFlow<()> {
        let now = now_us();
        match incoming {
            Incoming::Message { body } => self.message(&body, now),
            Incoming::Ack { id } => self.ack(&id, now),
            Incoming::Error { code } => self.stats.error(&code),
            Incoming::Pong => {
                self.stats.pongs.fetch_add(1, Ordering::Relaxed);
            }
            Incoming::EnginePing => {
                let _ = self.tx.lock().await.engine_pong().await;
            }
            Incoming::Closed { code } => {
                self.stats.closed(code);
                self.audited.store(false, Ordering::Relaxed);
                return ControlFlow::Break(());
            }
            Incoming::Joined | Incoming::Other => {}
        }
        ControlFlow::Continue(())
    }

    /// A delivery: its body is `sender:n:intended_us:` and padding (see
    /// `scenarios::chat`); anything else is not ours and is ignored.
    fn message(&mut self, body: &str, now: u64) {
        let mut parts = body.splitn(4, ':');
        let (Some(s), Some(n), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
            return;
        };
        let (Ok(s), Ok(n), Ok(t)) = (s.parse::<u64>(), n.parse::<u64>(), t.parse::<u64>()) else {
            return;
        };
        self.stats.delivery(self.conn, t, now);
        if self.stats.in_window(t) {
            self.received += 1;
            self.seen.insert(s << 32 | n);
        }
    }

    /// An ack of one of this connection's sends: its id is `sender-n`.
    fn ack(&self, id: &str, now: u64) {
        if let Some((s, n)) = id.split_once('-') {
            if let (Ok(s), Ok(n)) = (s.parse::<usize>(), n.parse::<u64>()) {
                self.stats.ack(self.conn, self.schedule.intended(s, n), now);
            }
        }
    }
}
