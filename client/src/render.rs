//! How the `chat` CLI prints what it gets: an entry or a signal on one
//! line each, for people.

use chat_client::{Message, Signal};

/// An entry on one line: where, who and what (or which change it was).
pub fn line(m: &Message) -> String {
    format!("{}#{} <{}> {}", m.room, m.seq, m.sender, what(m))
}

/// What an entry says: a message's text, or which change it is.
pub fn what(m: &Message) -> String {
    match m.kind.as_str() {
        "" if m.deleted => "[deleted]".to_owned(),
        "" => {
            let mut text = m.body.clone();
            if m.reply_to > 0 {
                text = format!("(re #{}) {text}", m.reply_to);
            }
            if m.edited_ts_ms > 0 {
                text.push_str(" (edited)");
            }
            for r in &m.reactions {
                text.push_str(&format!(" {}{}", r.emoji, r.count));
            }
            text
        }
        "message_edited" => format!("[edited #{}] {}", m.target_seq, m.body),
        "message_deleted" => format!("[deleted #{}]", m.target_seq),
        "reaction_added" => format!("[{} on #{}]", m.emoji, m.target_seq),
        "reaction_removed" => format!("[took back {} on #{}]", m.emoji, m.target_seq),
        kind => format!("[{kind} {}]", m.member),
    }
}

/// A signal on one line, for people.
pub fn said(signal: &Signal) -> String {
    match signal {
        Signal::Typing(now) if now.users.is_empty() => format!("* {}: nobody is typing", now.room),
        Signal::Typing(now) => format!("* {}: {} typing", now.room, now.users.join(", ")),
        Signal::Presence(now) => {
            let users: Vec<String> = now
                .users
                .iter()
                .map(|u| format!("{} {}", u.user, if u.online { "online" } else { "offline" }))
                .collect();
            format!("* {}: {}", now.room, users.join(", "))
        }
        Signal::Reads(reads) => {
            let read: Vec<String> = reads
                .reads
                .iter()
                .map(|r| format!("{} read up to #{}", r.user, r.seq))
                .collect();
            format!("* {}: {}", reads.room, read.join(", "))
        }
        Signal::ReadMarker(marker) => format!(
            "* {}: read up to #{}, {} unread",
            marker.room, marker.seq, marker.unread
        ),
        Signal::Feed { feed, .. } => {
            let rooms = feed.rooms.iter().map(|r| {
                let last = r.last_message.as_ref().map(line).unwrap_or_default();
                format!("* {}: {} unread\t{last}", r.room, r.unread)
            });
            let left = feed.removed.iter().map(|room| format!("* {room}: left"));
            rooms.chain(left).collect::<Vec<_>>().join("\n")
        }
    }
}
