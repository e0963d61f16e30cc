//! A room's chat messages as they stand, built from its entries in seq
//! order: what an app shows. Live, a message arrives as sent and the events
//! that change it (edits, deletes, reactions, replies) follow as entries of
//! their own; a history page or a replay gives messages as they stand now.
//! Both feed the same timeline: a message's `changed_seq` is the newest
//! entry its state includes, so an event at or below it is not applied
//! twice, and the two roads end in the same state.

use std::collections::BTreeMap;

use chat_proto::v1::{Message, Reaction};
use chat_protocol::kind::EntryKind;

/// The chat messages of one room, by seq.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Whose reactions are "mine".
    me: String,
    messages: BTreeMap<u64, Message>,
}

impl Timeline {
    pub fn new(me: &str) -> Self {
        Self {
            me: me.to_owned(),
            messages: BTreeMap::new(),
        }
    }

    /// Takes one entry of the room (delivered live, replayed, or from a
    /// history page), in seq order per road. Entries of kinds this build
    /// does not know, and events on messages it never saw, are skipped.
    pub fn apply(&mut self, entry: &Message) {
        match EntryKind::parse(&entry.kind) {
            Some(EntryKind::Message) => self.message(entry),
            Some(kind) if kind.is_message_event() => self.event(kind, entry),
            _ => {}
        }
    }

    /// The chat messages in seq order, each as it stands.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.values()
    }

    pub fn get(&self, seq: u64) -> Option<&Message> {
        self.messages.get(&seq)
    }

    fn message(&mut self, entry: &Message) {
        let mut state = entry.clone();
        state.changed_seq = state.changed_seq.max(state.seq);
        match self.messages.get(&entry.seq) {
            // What is held already includes as much (or more).
            Some(held) if held.changed_seq >= state.changed_seq => {}
            _ => {
                self.messages.insert(entry.seq, state);
            }
        }
        if entry.reply_to == 0 {
            return;
        }
        if let Some(target) = self.messages.get_mut(&entry.reply_to) {
            if entry.seq > target.changed_seq {
                target.reply_count += 1;
                target.changed_seq = entry.seq;
            }
        }
    }

    fn event(&mut self, kind: EntryKind, entry: &Message) {
        let Some(target) = self.messages.get_mut(&entry.target_seq) else {
            return;
        };
        if entry.seq > target.changed_seq {
            target.changed_seq = entry.seq;
            match kind {
                EntryKind::MessageEdited => {
                    target.body.clone_from(&entry.body);
                    target.edited_ts_ms = entry.ts_ms;
                }
                EntryKind::MessageDeleted => {
                    target.deleted = true;
                    target.body.clear();
                    target.reactions.clear();
                }
                EntryKind::ReactionAdded => add_reaction(&mut target.reactions, &entry.emoji),
                EntryKind::ReactionRemoved => remove_reaction(&mut target.reactions, &entry.emoji),
                _ => {}
            }
        }
        // The counts may include the event already; whether it is mine is
        // known only from my own events, so those always set it.
        let reaction = matches!(kind, EntryKind::ReactionAdded | EntryKind::ReactionRemoved);
        if reaction && entry.sender == self.me {
            if let Some(r) = target.reactions.iter_mut().find(|r| r.emoji == entry.emoji) {
                r.mine = kind == EntryKind::ReactionAdded;
            }
        }
    }
}

/// Reactions are kept sorted by emoji, as the server lists them.
fn add_reaction(reactions: &mut Vec<Reaction>, emoji: &str) {
    match reactions.binary_search_by(|r| r.emoji.as_str().cmp(emoji)) {
        Ok(at) => reactions[at].count += 1,
        Err(at) => reactions.insert(
            at,
            Reaction {
                emoji: emoji.to_owned(),
                count: 1,
                mine: false,
            },
        ),
    }
}

fn remove_reaction(reactions: &mut Vec<Reaction>, emoji: &str) {
    if let Ok(at) = reactions.binary_search_by(|r| r.emoji.as_str().cmp(emoji)) {
        reactions[at].count = reactions[at].count.saturating_sub(1);
        if reactions[at].count == 0 {
            reactions.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(seq: u64, sender: &str, body: &str) -> Message {
        Message {
            seq,
            sender: sender.into(),
            body: body.into(),
            changed_seq: seq,
            ..Message::default()
        }
    }

    fn event(seq: u64, sender: &str, kind: EntryKind, target: u64, text: &str) -> Message {
        let mut m = Message {
            seq,
            sender: sender.into(),
            kind: kind.as_str().into(),
            target_seq: target,
            ts_ms: seq as i64 * 1000,
            ..Message::default()
        };
        match kind {
            EntryKind::MessageEdited => m.body = text.into(),
            _ => m.emoji = text.into(),
        }
        m
    }

    /// The live road: a message, then the events that change it.
    fn live() -> Vec<Message> {
        let mut reply = chat(2, "bob", "hi");
        reply.reply_to = 1;
        vec![
            chat(1, "ann", "helo"),
            reply,
            event(3, "ann", EntryKind::MessageEdited, 1, "hello"),
            event(4, "bob", EntryKind::ReactionAdded, 1, "👍"),
            event(5, "ann", EntryKind::ReactionAdded, 1, "👍"),
            event(6, "ann", EntryKind::ReactionAdded, 1, "🎉"),
            event(7, "ann", EntryKind::ReactionRemoved, 1, "🎉"),
            event(8, "bob", EntryKind::MessageDeleted, 2, ""),
        ]
    }

    /// What history says after all of it, as the server keeps it.
    fn as_it_stands() -> Vec<Message> {
        let mut first = chat(1, "ann", "hello");
        first.edited_ts_ms = 3000;
        first.reply_count = 1;
        first.changed_seq = 7;
        first.reactions = vec![Reaction {
            emoji: "👍".into(),
            count: 2,
            mine: true,
        }];
        let mut reply = chat(2, "bob", "");
        reply.reply_to = 1;
        reply.deleted = true;
        reply.changed_seq = 8;
        vec![first, reply]
    }

    #[test]
    fn live_events_end_where_history_is() {
        let mut timeline = Timeline::new("ann");
        for entry in live() {
            timeline.apply(&entry);
        }
        let held: Vec<&Message> = timeline.messages().collect();
        let expected = as_it_stands();
        assert_eq!(held, expected.iter().collect::<Vec<_>>());
    }

    /// A replay gives messages as they stand, then the same events: none
    /// is counted twice, and my own events still say what is mine.
    #[test]
    fn a_replay_of_current_state_and_its_events_ends_the_same() {
        let mut replay = as_it_stands();
        for m in &mut replay {
            for r in &mut m.reactions {
                r.mine = false;
            }
        }
        replay.extend(live().into_iter().filter(|m| !m.kind.is_empty()));
        replay.sort_by_key(|m| m.seq);
        let mut timeline = Timeline::new("ann");
        for entry in &replay {
            timeline.apply(entry);
        }
        let held: Vec<&Message> = timeline.messages().collect();
        let expected = as_it_stands();
        assert_eq!(held, expected.iter().collect::<Vec<_>>());
    }

    #[test]
    fn events_on_unseen_messages_and_unknown_kinds_are_skipped() {
        let mut timeline = Timeline::new("ann");
        timeline.apply(&event(5, "bob", EntryKind::MessageEdited, 1, "x"));
        let mut future = chat(6, "bob", "?");
        future.kind = "poll_created".into();
        timeline.apply(&future);
        assert_eq!(timeline.messages().count(), 0);
    }
}
