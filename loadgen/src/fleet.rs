//! The run's users on the system under test: their names, the rooms created
//! for them, and how each one's connection is opened and joined.

use std::{net::IpAddr, ops::Range};

use anyhow::Context;
use futures::{stream, StreamExt};
use tokio::time::Instant;

use crate::{
    adapter::{self, Dial, Rx, Target, Tx},
    scenarios::Params,
};

/// Where and as whom connections are opened. User `i` is connection `i`.
#[derive(Clone)]
pub struct Fleet {
    pub target: Target,
    /// Connection `i` goes to `urls[i % len]`.
    pub urls: Vec<String>,
    /// Mints users' tokens (this system only).
    pub jwt_secret: Option<String>,
    /// Connection `i` comes from `local_addrs[i % len]`, if any are given.
    pub local_addrs: Vec<IpAddr>,
    /// Makes room and user names unique to this run.
    pub prefix: String,
}

/// Opened connections with their index, and how many failed to open.
pub type Opened = (Vec<(usize, (Tx, Rx))>, usize);

impl Fleet {
    fn user(&self, conn: usize) -> String {
        format!("{}u{conn}", self.prefix)
    }

    pub fn room_name(&self, room: usize) -> String {
        format!("{}r{room}", self.prefix)
    }

    /// Creates every room of the run with its members, through the admin
    /// API at `admin` (base URL, token).
    pub async fn create_rooms(
        &self,
        params: &Params,
        admin: &(String, String),
    ) -> anyhow::Result<()> {
        let (url, token) = admin;
        let http = reqwest::Client::new();
        let rooms: Vec<_> = (0..params.rooms())
            .map(|r| {
                let members: Vec<String> = (0..params.conns)
                    .filter(|&i| params.room_of(i) == r)
                    .map(|i| self.user(i))
                    .collect();
                (self.room_name(r), members)
            })
            .collect();
        let results: Vec<anyhow::Result<()>> = stream::iter(rooms)
            .map(|(room, members)| {
                let http = http.clone();
                async move {
                    let response = http
                        .post(format!("{url}/v1/rooms"))
                        .bearer_auth(token)
                        .json(&serde_json::json!({"room": room, "members": members}))
                        .send()
                        .await?;
                    anyhow::ensure!(
                        response.status().is_success(),
                        "create room: {}",
                        response.status()
                    );
                    Ok(())
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Opens connection `conn` as its user and joins it to `room`.
    pub async fn open(&self, conn: usize, room: usize) -> anyhow::Result<(Tx, Rx)> {
        let name = self.user(conn);
        let token = match (&self.jwt_secret, self.target) {
            (Some(secret), Target::Ours | Target::OursProto) => {
                chat_auth::mint_hs256(secret, &name, 3600)
            }
            _ => String::new(),
        };
        let dial = Dial {
            target: self.target,
            url: &self.urls[conn % self.urls.len()],
            user: &name,
            token: &token,
            local_addr: (!self.local_addrs.is_empty())
                .then(|| self.local_addrs[conn % self.local_addrs.len()]),
        };
        let (mut tx, mut rx) = adapter::connect(&dial)
            .await
            .with_context(|| format!("connect {name}"))?;
        tx.join(&self.room_name(room), &mut rx).await?;
        Ok((tx, rx))
    }

    /// Opens `conns` all at once (128 at a time), in whatever order they
    /// succeed; tells the first failure, and unless `quiet` how it went.
    pub async fn open_all(&self, conns: Range<usize>, params: &Params, quiet: bool) -> Opened {
        let started = Instant::now();
        let opened: Vec<(usize, anyhow::Result<(Tx, Rx)>)> = stream::iter(conns)
            .map(|i| async move { (i, self.open(i, params.room_of(i)).await) })
            .buffer_unordered(128)
            .collect()
            .await;
        let mut failures = 0;
        let mut ready = Vec::new();
        for (i, result) in opened {
            match result {
                Ok(pair) => ready.push((i, pair)),
                Err(e) => {
                    if failures == 0 {
                        eprintln!("connect failed: {e:#}");
                    }
                    failures += 1;
                }
            }
        }
        if !quiet {
            eprintln!(
                "{} connected in {:.1?} ({failures} failed)",
                ready.len(),
                started.elapsed()
            );
        }
        (ready, failures)
    }
}
