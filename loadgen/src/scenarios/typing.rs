//! Typing: every member says it is typing in its room every
//! `typing_every` seconds, spread evenly, until the window closes (the
//! `typing` scenario, or any with `--typing-every`). Ephemeral: nothing to
//! audit; what it costs is the servers' CPU and the sends' latency beside it.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::task::JoinHandle;

use crate::{
    conn::Conn,
    fleet::Fleet,
    scenarios::Params,
    stats::{now_us, Stats},
};

/// Starts a typist on every connection, if the scenario types.
pub fn start(
    conns: &[Conn],
    params: &Params,
    fleet: &Fleet,
    stats: &Arc<Stats>,
    end_us: u64,
) -> Vec<JoinHandle<()>> {
    if params.typing_every <= 0.0 {
        return Vec::new();
    }
    let every = Duration::from_secs_f64(params.typing_every);
    let spread = every.as_micros() as u64 / conns.len().max(1) as u64;
    conns
        .iter()
        .map(|conn| {
            let (tx, room) = (conn.tx.clone(), fleet.room_name(conn.room));
            let stats = Arc::clone(stats);
            let first = Duration::from_micros(spread * conn.idx as u64);
            tokio::spawn(async move {
                tokio::time::sleep(first).await;
                let mut ticks = tokio::time::interval(every);
                loop {
                    ticks.tick().await;
                    if now_us() >= end_us || tx.lock().await.typing(&room).await.is_err() {
                        return;
                    }
                    stats.typing_sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}
