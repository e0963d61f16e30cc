//! Chat: each room's senders post on the open-loop schedule until the
//! window closes (baseline, moderate, high, extreme, fanout, ingest, soak,
//! smoke; every scenario with a rate).

use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use serde::{Serialize, Serializer};

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
                body_text: params.body_text.clone(),
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
    body_text: Option<BodyText>,
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
            match &self.body_text {
                Some(text) => text.fill(&mut body, self.body_bytes, self.sender as u64, n),
                None => {
                    while body.len() < self.body_bytes {
                        body.push('x');
                    }
                }
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

/// The words of a text, in order, to fill bodies with.
#[derive(Clone)]
pub struct BodyText {
    path: PathBuf,
    words: Arc<[String]>,
}

impl BodyText {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading body text {}", path.display()))?;
        let words: Arc<[String]> = text
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        anyhow::ensure!(!words.is_empty(), "{} has no words", path.display());
        Ok(Self {
            path: path.to_owned(),
            words,
        })
    }

    /// Appends words, in the text's order from a place that depends on
    /// the send (the same for every system given the same text), until
    /// `body` holds `len` bytes or more.
    pub fn fill(&self, body: &mut String, len: usize, sender: u64, n: u64) {
        let mixed = (sender.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ n.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .rotate_left(29);
        let start = (mixed % self.words.len() as u64) as usize;
        for word in self.words[start..].iter().chain(self.words.iter().cycle()) {
            if body.len() >= len {
                break;
            }
            body.push(' ');
            body.push_str(word);
        }
    }
}

impl fmt::Debug for BodyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} words)", self.path.display(), self.words.len())
    }
}

impl Serialize for BodyText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(words: &str) -> BodyText {
        BodyText {
            path: PathBuf::from("t"),
            words: words.split(' ').map(str::to_owned).collect(),
        }
    }

    #[test]
    fn a_body_is_filled_with_a_run_of_the_texts_words_after_its_prefix() {
        let all = ["one", "two", "three", "four", "five", "six"];
        let text = text(&all.join(" "));
        let mut body = "7:3:1733500000000000:".to_owned();
        text.fill(&mut body, 60, 7, 3);
        assert!(body.len() >= 60, "{body}");
        assert!(body.starts_with("7:3:1733500000000000: "), "{body}");
        let words: Vec<&str> = body.split(':').nth(3).unwrap().split_whitespace().collect();
        let at = |w: &str| all.iter().position(|a| *a == w).expect(w);
        for pair in words.windows(2) {
            assert_eq!((at(pair[0]) + 1) % all.len(), at(pair[1]), "{body}");
        }
    }

    #[test]
    fn sends_start_their_runs_at_different_places() {
        let text = text("a b c d e f g h i j k l m n o p q r s t u v w x y z");
        let firsts: std::collections::HashSet<String> = (0..20)
            .map(|n| {
                let mut body = String::new();
                text.fill(&mut body, 1, 1, n);
                body
            })
            .collect();
        assert!(firsts.len() > 5, "{firsts:?}");
    }
}
