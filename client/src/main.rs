//! `chat`: a small interactive client. Lines typed are sent to the room;
//! messages of the room are printed as they arrive. Built on [`Client`], so
//! it reconnects (to the next `--url`), resumes the room and resends what
//! was not acked. `chat rooms` lists one's rooms and `chat search` finds
//! messages, a page at a time.

use anyhow::Context;
use chat_client::{Client, ClientOptions, Message};
use chat_protocol::codec::Encoding;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(about = "Chat from a terminal")]
struct Cli {
    /// Gateway WebSocket URL; repeat the flag to fail over between gateways.
    #[arg(long = "url", default_value = "ws://127.0.0.1:8080/v1/ws")]
    urls: Vec<String>,
    /// Access token (see `gateway dev-token`).
    #[arg(long, env = "CHAT_TOKEN")]
    token: String,
    /// Room to join.
    #[arg(long, default_value = "lobby")]
    room: String,
    /// Speak protobuf instead of JSON.
    #[arg(long)]
    proto: bool,
    /// Without one: chat in `--room`.
    #[command(subcommand)]
    command: Option<Lookup>,
}

/// One page of a lookup; the next page's `--cursor` is printed last.
#[derive(Subcommand)]
enum Lookup {
    /// The rooms you belong to, newest activity first.
    Rooms {
        #[command(flatten)]
        page: Page,
    },
    /// Messages of your rooms matching a query, best match first.
    Search {
        /// Words, "quoted phrases", `or`, `-excluded` words.
        query: String,
        /// Search this room only.
        #[arg(long)]
        room: Option<String>,
        #[command(flatten)]
        page: Page,
    },
}

#[derive(clap::Args)]
struct Page {
    /// The cursor printed after the page before.
    #[arg(long)]
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[arg(long)]
    limit: Option<u32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let encoding = if cli.proto {
        Encoding::Proto
    } else {
        Encoding::Json
    };
    let (client, mut messages) = Client::connect(ClientOptions::new(cli.urls, cli.token, encoding));
    if let Some(lookup) = cli.command {
        let looked = look_up(&client, lookup).await;
        client.close();
        return looked;
    }
    let joined = client.join(&cli.room, None).await.context("joining")?;
    eprintln!("joined {} at seq {}", joined.room, joined.head_seq);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    // Acks still owed; awaited at the end of input so that piped lines
    // (`echo hi | chat ...`) are sent before the client closes.
    let mut unacked = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                if !line.trim().is_empty() {
                    // Not awaited here: the ack may take a reconnect, and
                    // messages should keep printing meanwhile.
                    let ack = client.submit(&cli.room, &uuid::Uuid::now_v7().to_string(), &line);
                    unacked.spawn(async move {
                        if let Err(e) = ack.await {
                            eprintln!("not sent: {e}");
                        }
                    });
                }
            }
            message = messages.recv() => match message {
                Some(m) => println!("#{} <{}> {}", m.seq, m.sender, m.body),
                None => {
                    // The client gave up; a request tells why.
                    let why = client.join(&cli.room, None).await.err();
                    anyhow::bail!("disconnected: {}", why.map(|e| e.to_string()).unwrap_or_default());
                }
            },
        }
    }
    while unacked.join_next().await.is_some() {}
    client.close();
    Ok(())
}

/// Prints one page of a lookup, then the cursor of the next (if any).
async fn look_up(client: &Client, lookup: Lookup) -> anyhow::Result<()> {
    let next = match lookup {
        Lookup::Rooms { page } => {
            let list = client.rooms(page.cursor.as_deref(), page.limit).await?;
            for room in list.rooms {
                let role = room.access.map(|a| a.role).unwrap_or_default();
                let last = room.last_message.as_ref().map(line).unwrap_or_default();
                println!("{}\thead {}\t{role}\t{last}", room.room, room.head_seq);
            }
            list.next_cursor
        }
        Lookup::Search { query, room, page } => {
            let (cursor, limit) = (page.cursor.as_deref(), page.limit);
            let found = client
                .search(&query, room.as_deref(), cursor, limit)
                .await?;
            for hit in found.hits {
                let message = hit.message.as_ref().map(line).unwrap_or_default();
                println!("{:.3}\t{message}", hit.rank);
            }
            found.next_cursor
        }
    };
    if !next.is_empty() {
        println!("more: --cursor {next}");
    }
    Ok(())
}

/// A message on one line: where, who and what (or which change it was).
fn line(m: &Message) -> String {
    let what = if m.kind.is_empty() {
        m.body.clone()
    } else {
        format!("[{} {}]", m.kind, m.member)
    };
    format!("{}#{} <{}> {what}", m.room, m.seq, m.sender)
}
