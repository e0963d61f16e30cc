//! Churn: receivers reconnect at a steady rate (`churn_per_sec`) while the
//! others chat.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    adapter::{Rx, Tx},
    conn::Conn,
    fleet::Fleet,
    scenarios::Params,
    stats::{now_us, Stats},
};

/// Extra sockets held open at once; the oldest is closed when one more opens.
const HELD: usize = 16;

/// Starts reconnecting receivers in turn until `stop` or `until_us`, if the
/// scenario churns.
pub fn start(
    conns: &[Conn],
    params: &Params,
    fleet: &Fleet,
    stats: &Arc<Stats>,
    stop: &CancellationToken,
    until_us: u64,
) -> Option<JoinHandle<()>> {
    if params.churn_per_sec <= 0.0 {
        return None;
    }
    let receivers: Vec<(usize, usize, Arc<AtomicBool>)> = conns
        .iter()
        .filter(|c| !params.is_sender(c.idx))
        .map(|c| (c.idx, c.room, Arc::clone(&c.audited)))
        .collect();
    let period = Duration::from_secs_f64(1.0 / params.churn_per_sec);
    // Reconnects dial from the default local address, not `--local-addrs`:
    // churn's few hundred sockets need no extra source ports.
    let fleet = Fleet {
        local_addrs: Vec::new(),
        ..fleet.clone()
    };
    let stats = Arc::clone(stats);
    let stop = stop.clone();
    Some(tokio::spawn(async move {
        let mut held: Vec<(Tx, Rx)> = Vec::new();
        let mut next = 0;
        while !stop.is_cancelled() && now_us() < until_us && !receivers.is_empty() {
            tokio::time::sleep(period).await;
            let (idx, room, audited) = &receivers[next % receivers.len()];
            next += 1;
            // What the receiver sees is no longer the whole window.
            audited.store(false, Ordering::Relaxed);
            // A second socket for the same user joins; the receiver's own
            // socket stays open, and the oldest of these extra sockets is
            // closed, so sockets arrive and leave at the churn rate.
            if let Ok(pair) = fleet.open(*idx, *room).await {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                held.push(pair);
                if held.len() > HELD {
                    held.remove(0);
                }
            }
        }
    }))
}
