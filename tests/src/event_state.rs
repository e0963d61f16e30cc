//! What message events must have left, checked behind the gateways' backs
//! once traffic stops: each message's state is what its events say, in seq
//! order, and the Redis window holds the same entries as Postgres.

use std::collections::{BTreeMap, BTreeSet};

use chat_protocol::{RoomId, Seq};

use crate::Cluster;

/// Fails the test where a room's stored state disagrees with its events,
/// or its Redis window with Postgres. Returns how many events it checked.
pub async fn assert_events_applied(cluster: &Cluster, rooms: &[String]) -> usize {
    let db = cluster.postgres.client().await;
    let store = cluster.store();
    let mut checked = 0;
    for room in rooms {
        let events = db
            .query(
                "SELECT seq, kind, target_seq, sender_id, body FROM messages \
                 WHERE room_id = $1 AND target_seq IS NOT NULL ORDER BY seq",
                &[room],
            )
            .await
            .unwrap();
        // Replay the events: the last edit's text, who holds which reaction,
        // and the newest entry changing each message.
        let mut bodies = BTreeMap::new();
        let mut held = BTreeSet::new();
        let mut changed = BTreeMap::new();
        checked += events.len();
        for e in &events {
            let (seq, kind, target) = (e.get::<_, i64>(0), e.get::<_, &str>(1), e.get::<_, i64>(2));
            let (sender, body) = (e.get::<_, String>(3), e.get::<_, String>(4));
            changed.insert(target, seq);
            match kind {
                "message_edited" => {
                    bodies.insert(target, body);
                }
                "reaction_added" => {
                    held.insert((target, sender, body));
                }
                "reaction_removed" => {
                    held.remove(&(target, sender, body));
                }
                _ => {}
            }
        }
        let reactions: BTreeSet<(i64, String, String)> = db
            .query(
                "SELECT seq, user_id, emoji FROM reactions WHERE room_id = $1",
                &[room],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(reactions, held, "{room}: who reacted with what");
        let room_id = RoomId::parse(room.clone()).unwrap();
        let rows = store
            .history_page(&room_id, Seq::new(1), 1_000_000)
            .await
            .unwrap();
        for m in rows.iter().filter(|m| m.kind.is_empty()) {
            let target = m.seq as i64;
            if let Some(body) = bodies.get(&target) {
                assert_eq!(&m.body, body, "{room} #{}: the last edit's text", m.seq);
            }
            let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
            for (_, _, emoji) in held.iter().filter(|(t, _, _)| *t == target) {
                *counts.entry(emoji).or_default() += 1;
            }
            let shown: BTreeMap<&str, u32> = m
                .reactions
                .iter()
                .map(|r| (r.emoji.as_str(), r.count))
                .collect();
            assert_eq!(shown, counts, "{room} #{}: reaction counts", m.seq);
            let newest = changed.get(&target).map_or(m.seq, |&s| s as u64);
            assert_eq!(m.changed_seq, newest, "{room} #{}: changed_seq", m.seq);
        }
        let window = cluster.window(room).await;
        let newest = &rows[rows.len() - window.len()..];
        assert_eq!(
            window, newest,
            "{room}: the Redis window is what Postgres holds"
        );
    }
    checked
}
