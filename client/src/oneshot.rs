//! The `chat` subcommands that ask once and print the answer: lookups,
//! read marks, scheduled messages, and changes to one message.

use chat_client::{Client, NewEntry};

use crate::{render::line, Cmd};

/// Schedules `text` in `room` `seconds` from now and says so (`/later`).
pub async fn later(client: &Client, room: &str, seconds: u64, text: &str) {
    match client.schedule(room, text, from_now(seconds)).await {
        Ok(s) => eprintln!("* scheduled {} for {}", s.id, at(s.deliver_at_ms)),
        Err(e) => eprintln!("not scheduled: {e}"),
    }
}

/// Unix ms `seconds` from now.
fn from_now(seconds: u64) -> i64 {
    chat_protocol::now_ms().saturating_add(seconds.saturating_mul(1000) as i64)
}

/// A time as seconds from now, for people.
fn at(ms: i64) -> String {
    let secs = (ms - chat_protocol::now_ms()) / 1000;
    format!("in {secs} s")
}

/// Prints one page of a lookup, then the cursor of the next (if any).
pub async fn look_up(client: &Client, lookup: Cmd) -> anyhow::Result<()> {
    let next = match lookup {
        Cmd::Rooms { page } => {
            let list = client.rooms(page.cursor.as_deref(), page.limit).await?;
            for room in list.rooms {
                let role = room.access.map(|a| a.role).unwrap_or_default();
                let last = room.last_message.as_ref().map(line).unwrap_or_default();
                println!(
                    "{}\thead {}\tunread {}\t{role}\t{last}",
                    room.room, room.head_seq, room.unread
                );
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
        Cmd::Schedule {
            room,
            seconds,
            text,
        } => {
            let s = client.schedule(&room, &text, from_now(seconds)).await?;
            println!("{}\t{}\t{}", s.id, at(s.deliver_at_ms), s.body);
            String::new()
        }
        Cmd::Scheduled { room } => {
            for s in client.scheduled(&room).await?.messages {
                println!("{}\t{}\t{}", s.id, at(s.deliver_at_ms), s.body);
            }
            String::new()
        }
        Cmd::Unschedule { room, id } => {
            let cancelled = client.cancel_scheduled(&room, &id).await?;
            println!("{}\t{}", cancelled.id, cancelled.state);
            String::new()
        }
        Cmd::Read { room, seq } => {
            let marker = client.mark_read(&room, seq).await?;
            println!(
                "{}\tread {}\tunread {}",
                marker.room, marker.seq, marker.unread
            );
            String::new()
        }
        _ => return Ok(()),
    };
    if !next.is_empty() {
        println!("more: --cursor {next}");
    }
    Ok(())
}

/// The entry of a subcommand that changes one message, and its room.
pub fn once(change: Cmd) -> Option<(String, NewEntry)> {
    Some(match change {
        Cmd::Reply { room, seq, text } => (
            room,
            NewEntry::Message {
                body: text,
                reply_to: Some(seq),
            },
        ),
        Cmd::Edit { room, seq, text } => (room, NewEntry::Edit { seq, body: text }),
        Cmd::Delete { room, seq } => (room, NewEntry::Delete { seq }),
        Cmd::React {
            room,
            seq,
            emoji,
            remove,
        } => (room, NewEntry::React { seq, emoji, remove }),
        _ => return None,
    })
}
