//! `chat`: a small interactive client. Lines typed are sent to the room
//! (`--room`, or with `chat dm <user>` the direct room with that user, made
//! if new); messages of the room are printed as they arrive. Built on
//! [`Client`], so it reconnects (to the next `--url`), resumes the room and
//! resends what was not acked. `chat history <room>` prints a room's
//! history instead, `chat rooms` one's rooms and `chat search` the messages
//! that match, a page at a time.

use anyhow::Context;
use chat_client::{Client, ClientOptions, HistoryCursor, Message};
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
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Chat in the direct room with USER (made if new; `--room` is ignored).
    Dm { user: String },
    /// Print a page of a room's history and how to page back.
    History {
        room: String,
        /// Messages before this seq (the `before` a previous page printed);
        /// the newest without it.
        #[arg(long)]
        before: Option<u64>,
        /// Messages per page (1 to 200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
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

/// Prints one page, then where the page before it starts.
async fn history(
    client: &Client,
    room: &str,
    before: Option<u64>,
    limit: u32,
) -> anyhow::Result<()> {
    let cursor = before.map_or(HistoryCursor::Newest, HistoryCursor::Before);
    let page = client
        .history(room, cursor, Some(limit))
        .await
        .context("reading history")?;
    for m in &page.messages {
        match m.kind.as_str() {
            "" => println!("#{} <{}> {}", m.seq, m.sender, m.body),
            kind => println!("#{} {kind} {} (by {})", m.seq, m.member, m.sender),
        }
    }
    if page.has_before {
        eprintln!("older: chat history {room} --before {}", page.before);
    } else {
        eprintln!("(the room's first message)");
    }
    Ok(())
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
    let room = match &cli.command {
        None => cli.room,
        Some(Cmd::Rooms { .. } | Cmd::Search { .. }) => {
            let lookup = cli.command.expect("a lookup");
            let looked = look_up(&client, lookup).await;
            client.close();
            return looked;
        }
        Some(Cmd::History {
            room,
            before,
            limit,
        }) => {
            let read = history(&client, room, *before, *limit).await;
            client.close();
            return read;
        }
        Some(Cmd::Dm { user }) => {
            let direct = client
                .open_direct(user)
                .await
                .context("opening the direct room")?;
            let made = if direct.created { "made" } else { "found" };
            eprintln!("{made} the direct room with {user}: {}", direct.room);
            direct.room
        }
    };
    let joined = client.join(&room, None).await.context("joining")?;
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
                    let ack = client.submit(&room, &uuid::Uuid::now_v7().to_string(), &line);
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
                    let why = client.join(&room, None).await.err();
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
async fn look_up(client: &Client, lookup: Cmd) -> anyhow::Result<()> {
    let next = match lookup {
        Cmd::Rooms { page } => {
            let list = client.rooms(page.cursor.as_deref(), page.limit).await?;
            for room in list.rooms {
                let role = room.access.map(|a| a.role).unwrap_or_default();
                let last = room.last_message.as_ref().map(line).unwrap_or_default();
                println!("{}\thead {}\t{role}\t{last}", room.room, room.head_seq);
            }
            list.next_cursor
        }
        Cmd::Search { query, room, page } => {
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
        Cmd::Dm { .. } | Cmd::History { .. } => return Ok(()),
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
