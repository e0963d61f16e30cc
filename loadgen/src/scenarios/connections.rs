//! Connections: every socket is pinged once in the middle of the window,
//! which shows that idle sockets still answer (`pongs` in the report). Runs
//! in every scenario; `connections` has nothing else.

use std::sync::Arc;

use tokio::{sync::Mutex, task::JoinHandle};

use crate::{adapter::Tx, conn::Conn, schedule};

/// Starts pinging every connection, one after another, mid-window.
pub fn ping_mid_window(conns: &[Conn], window: (u64, u64)) -> JoinHandle<()> {
    let txs: Vec<Arc<Mutex<Tx>>> = conns.iter().map(|c| Arc::clone(&c.tx)).collect();
    let (start, end) = window;
    let at = start + (end - start) / 2;
    tokio::spawn(async move {
        schedule::sleep_until(at).await;
        for tx in txs {
            let _ = tx.lock().await.ping().await;
        }
    })
}
