//! `idlerooms`: joins many rooms and then stays silent, so the benchmark can
//! measure what idle rooms cost the servers (`bench/run.sh idle-rooms`).
//!
//! User `idle-<i>` joins rooms `idle-<i*per>` .. `idle-<i*per + per - 1>` on
//! gateway `i % urls`; the rooms and memberships must exist already. Prints
//! `ready` once every join is answered, then holds the sockets (reading, so
//! that they answer the gateway's pings).

use std::time::Duration;

use chat_client::{connect, ConnectOptions, Event};
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    /// Gateway WebSocket URLs; sockets are spread over them.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    #[arg(long, env = "CHAT_GATEWAY_JWT__HS256_SECRET")]
    jwt_secret: String,
    /// Rooms in all.
    #[arg(long, default_value_t = 10_000)]
    rooms: usize,
    /// Rooms each socket joins.
    #[arg(long, default_value_t = 100)]
    per_socket: usize,
    /// Seconds to hold the sockets after they joined.
    #[arg(long, default_value_t = 120)]
    hold: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sockets = cli.rooms.div_ceil(cli.per_socket);
    let mut held = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let user = format!("idle-{i}");
        let token = chat_auth::mint_hs256(&cli.jwt_secret, &user, 3600);
        let url = &cli.urls[i % cli.urls.len()];
        let options = ConnectOptions::new(url.clone(), token, Encoding::Proto);
        let (mut w, mut r) = connect(&options).await?;
        let first = i * cli.per_socket;
        let last = (first + cli.per_socket).min(cli.rooms);
        for room in first..last {
            w.join(&format!("idle-{room}"), None).await?;
        }
        // Pushed frames (a read marker, who is online) may come between.
        let mut joined = first;
        while joined < last {
            match tokio::time::timeout(Duration::from_secs(30), r.next()).await {
                Ok(Some(Ok(Event::Frame(f)))) if f.request_id.is_empty() => {}
                Ok(Some(Ok(Event::Frame(f)))) if matches!(f.kind, Some(Kind::Joined(_))) => {
                    joined += 1
                }
                other => anyhow::bail!("{user}: expected joined, got {other:?}"),
            }
        }
        // Keep reading: the library answers the gateway's pings while it
        // reads, and a socket that answers none is closed as dead.
        held.push((
            w,
            tokio::spawn(async move { while let Some(Ok(_)) = r.next().await {} }),
        ));
    }
    println!("ready: {} rooms joined over {sockets} sockets", cli.rooms);
    tokio::time::sleep(Duration::from_secs(cli.hold)).await;
    Ok(())
}
