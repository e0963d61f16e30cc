//! `chat`: a small interactive client. Lines typed are sent to the room
//! (`--room`, or with `chat dm <user>` the direct room with that user, made
//! if new); messages of the room are printed as they arrive. Built on
//! [`Client`], so it reconnects (to the next `--url`), resumes the room and
//! resends what was not acked. While chatting, `/reply SEQ TEXT`,
//! `/edit SEQ TEXT`, `/delete SEQ`, `/react SEQ EMOJI` and `/unreact SEQ
//! EMOJI` change messages, `/read` marks the room read up to the last
//! message printed and `/who USER...` asks who is online; who is typing,
//! coming and going, and reading is printed as it happens; `chat edit|delete|react|reply ROOM ...` do the
//! same once. `chat history <room>` prints a room's history instead, `chat
//! rooms` one's rooms with their unread counts and `chat search` the
//! messages that match, a page at a time; `chat read <room> <seq>` marks a
//! room read; `chat feed` prints each of one's rooms as it changes;
//! `chat schedule|scheduled|unschedule` send a message later,
//! list and cancel those waiting (`/later SECONDS TEXT` while chatting).

use anyhow::Context;
use chat_client::{Client, ClientOptions, HistoryCursor, Messages, NewEntry, Signals};
use chat_protocol::codec::Encoding;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, BufReader};

mod oneshot;
mod render;

use oneshot::{look_up, once};
use render::{line, said, what};

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
    /// Answer the message at SEQ of ROOM.
    Reply {
        room: String,
        seq: u64,
        text: String,
    },
    /// Replace the text of your message at SEQ of ROOM.
    Edit {
        room: String,
        seq: u64,
        text: String,
    },
    /// Delete the message at SEQ of ROOM (another's takes can_delete_other_messages).
    Delete { room: String, seq: u64 },
    /// React to the message at SEQ of ROOM with EMOJI (or take it back).
    React {
        room: String,
        seq: u64,
        emoji: String,
        #[arg(long)]
        remove: bool,
    },
    /// Mark ROOM read up to SEQ; prints the marker and what is still unread.
    Read { room: String, seq: u64 },
    /// Send TEXT to ROOM in SECONDS; prints the scheduled message's id.
    Schedule {
        room: String,
        seconds: u64,
        text: String,
    },
    /// Watch all of your rooms: a line per room as it changes (unread, last message).
    Feed,
    /// Your messages in ROOM waiting for their time.
    Scheduled { room: String },
    /// Cancel your scheduled message ID in ROOM.
    Unschedule { room: String, id: String },
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
        println!("#{} <{}> {}", m.seq, m.sender, what(m));
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
    let options = ClientOptions::new(cli.urls, cli.token, encoding);
    let (client, mut messages, mut signals) = Client::connect_with_signals(options);
    let room = match cli.command {
        None => cli.room,
        Some(
            lookup @ (Cmd::Rooms { .. }
            | Cmd::Search { .. }
            | Cmd::Read { .. }
            | Cmd::Schedule { .. }
            | Cmd::Scheduled { .. }
            | Cmd::Unschedule { .. }),
        ) => {
            let looked = look_up(&client, lookup).await;
            client.close();
            return looked;
        }
        Some(Cmd::History {
            room,
            before,
            limit,
        }) => {
            let read = history(&client, &room, before, limit).await;
            client.close();
            return read;
        }
        Some(Cmd::Feed) => {
            client.watch_feed()?;
            while let Some(signal) = signals.recv().await {
                if matches!(signal, chat_client::Signal::Feed { .. }) {
                    println!("{}", said(&signal));
                }
            }
            return Ok(());
        }
        Some(Cmd::Dm { user }) => {
            let direct = client
                .open_direct(&user)
                .await
                .context("opening the direct room")?;
            let made = if direct.created { "made" } else { "found" };
            eprintln!("{made} the direct room with {user}: {}", direct.room);
            direct.room
        }
        Some(change) => {
            let Some((room, entry)) = once(change) else {
                return Ok(());
            };
            let id = uuid::Uuid::now_v7().to_string();
            let ack = client.submit_entry(&room, &id, entry).await;
            client.close();
            let ack = ack.context("not stored")?;
            match ack.seq {
                0 => println!("nothing to change"),
                seq => println!("stored as #{seq}"),
            }
            return Ok(());
        }
    };
    chat(&client, &mut messages, &mut signals, &room).await?;
    client.close();
    Ok(())
}

/// Chats in `room`: typed lines are sent (or change a message, or ask
/// something), the room's entries and signals are printed, until the input
/// ends.
async fn chat(
    client: &Client,
    messages: &mut Messages,
    signals: &mut Signals,
    room: &str,
) -> anyhow::Result<()> {
    let joined = client.join(room, None).await.context("joining")?;
    eprintln!("joined {} at seq {}", joined.room, joined.head_seq);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    // Acks still owed; awaited at the end of input so that piped lines
    // (`echo hi | chat ...`) are sent before the client closes.
    let mut unacked = tokio::task::JoinSet::new();
    let mut last_seen = joined.head_seq;
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                if line.trim().is_empty() || ask(client, room, &line, last_seen).await {
                    continue;
                }
                let entry = match typed(&line) {
                    Ok(entry) => entry,
                    Err(usage) => {
                        eprintln!("{usage}");
                        continue;
                    }
                };
                // Not awaited here: the ack may take a reconnect, and
                // messages should keep printing meanwhile.
                let id = uuid::Uuid::now_v7().to_string();
                let ack = client.submit_entry(room, &id, entry);
                unacked.spawn(async move {
                    if let Err(e) = ack.await {
                        eprintln!("not sent: {e}");
                    }
                });
            }
            message = messages.recv() => match message {
                Some(m) => {
                    last_seen = last_seen.max(m.seq);
                    println!("{}", line(&m));
                }
                None => {
                    // The client gave up; a request tells why.
                    let why = client.join(room, None).await.err();
                    anyhow::bail!("disconnected: {}", why.map(|e| e.to_string()).unwrap_or_default());
                }
            },
            Some(signal) = signals.recv() => eprintln!("{}", said(&signal)),
        }
    }
    while unacked.join_next().await.is_some() {}
    Ok(())
}

/// A typed line that asks rather than sends (`/read`, `/who USER...`,
/// `/later SECONDS TEXT`), answered here; false for any other line.
async fn ask(client: &Client, room: &str, line: &str, last_seen: u64) -> bool {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("/read") if last_seen > 0 => match client.mark_read(room, last_seen).await {
            Ok(marker) => eprintln!("* read up to #{}, {} unread", marker.seq, marker.unread),
            Err(e) => eprintln!("not marked: {e}"),
        },
        Some("/read") => eprintln!("* nothing to mark read yet"),
        Some("/later") => {
            let seconds = words.next().and_then(|s| s.parse().ok());
            let text = words.collect::<Vec<_>>().join(" ");
            match seconds {
                Some(seconds) if !text.is_empty() => {
                    oneshot::later(client, room, seconds, &text).await
                }
                _ => eprintln!("/later SECONDS TEXT"),
            }
        }
        Some("/who") => {
            let users: Vec<&str> = words.collect();
            match client.presence(&users).await {
                Ok(now) => {
                    for u in now.users {
                        let state = if u.online { "online" } else { "offline" };
                        eprintln!("* {} {state}", u.user);
                    }
                }
                Err(e) => eprintln!("not asked: {e}"),
            }
        }
        _ => return false,
    }
    true
}

/// A typed line: a message, or a slash command changing one.
fn typed(line: &str) -> Result<NewEntry, &'static str> {
    const USAGE: &str = "/reply SEQ TEXT, /edit SEQ TEXT, /delete SEQ, /react SEQ EMOJI, \
        /unreact SEQ EMOJI, /read, /who USER..., /later SECONDS TEXT";
    let Some(command) = line.strip_prefix('/') else {
        return Ok(NewEntry::Message {
            body: line.to_owned(),
            reply_to: None,
        });
    };
    let mut words = command.splitn(3, ' ');
    let (verb, seq) = (words.next().unwrap_or_default(), words.next());
    let seq = seq.and_then(|s| s.parse().ok()).ok_or(USAGE)?;
    let rest = words.next().map(str::to_owned);
    Ok(match (verb, rest) {
        ("reply", Some(body)) => NewEntry::Message {
            body,
            reply_to: Some(seq),
        },
        ("edit", Some(body)) => NewEntry::Edit { seq, body },
        ("delete", None) => NewEntry::Delete { seq },
        ("react" | "unreact", Some(emoji)) => NewEntry::React {
            seq,
            emoji,
            remove: verb == "unreact",
        },
        _ => return Err(USAGE),
    })
}
