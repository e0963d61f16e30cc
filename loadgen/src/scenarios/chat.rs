//! Chat: each room's senders post on the open-loop schedule until the
//! window closes (baseline, moderate, high, extreme, fanout, ingest, soak,
//! smoke; every scenario with a rate).

use std::{sync::Arc, time::Duration};

use tokio::{sync::Mutex, task::JoinHandle};

use crate::{
    adapter::Tx,
    conn::Conn,
    fleet::Fleet,
    scenarios::Params,
    schedule::Schedule,
    stats::{now_us, Stats},
};

/// Starts a sender on every connection that sends, if the scenario sends.
pub fn start_senders(
    conns: &[Conn],
    params: &Params,
    fleet: &Fleet,
    schedule: Schedule,
    stats: &Arc<Stats>,
) -> Vec<JoinHandle<()>> {
    if params.rate <= 0.0 {
        return Vec::new();
    }
    conns
        .iter()
        .filter(|conn| params.is_sender(conn.idx))
        .map(|conn| {
            let sender = Sender {
                sender: params.senders_before(conn.idx),
                conn: conn.idx,
                room: conn.room,
                room_name: fleet.room_name(conn.room),
                tx: Arc::clone(&conn.tx),
                schedule,
                body_bytes: params.body_bytes,
                stats: Arc::clone(stats),
            };
            tokio::spawn(sender.run())
        })
        .collect()
}

/// One connection's sends.
struct Sender {
    /// Place in the schedule, among all senders.
    sender: usize,
    conn: usize,
    room: usize,
    room_name: String,
    tx: Arc<Mutex<Tx>>,
    schedule: Schedule,
    body_bytes: usize,
    stats: Arc<Stats>,
}

impl Sender {
    /// Sends each message when it is due, or at once if late (the lag is
    /// recorded), until the window closes or the connection fails.
    async fn run(self) {
        let end_us = self.schedule.window.1;
        let mut n = 0u64;
        loop {
            let intended = self.schedule.intended(self.sender, n);
            if intended >= end_us {
                return;
            }
            let now = now_us();
            if intended > now {
                tokio::time::sleep(Duration::from_micros(intended - now)).await;
            } else {
                self.stats.send_lag(now - intended);
            }
            // Receivers read the sender, the number and the intended time
            // back from the body; ids are `sender-n` for the same reason.
            let mut body = format!("{}:{n}:{intended}:", self.sender);
            while body.len() < self.body_bytes {
                body.push('x');
            }
            let id = format!("{}-{n}", self.sender);
            if self
                .tx
                .lock()
                .await
                .send(&self.room_name, &id, &body)
                .await
                .is_err()
            {
                return;
            }
            self.stats.sent(self.conn, self.room, intended, now_us());
            n += 1;
        }
    }
}
