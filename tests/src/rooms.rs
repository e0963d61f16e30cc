//! Rooms and their messages, set up and read back behind the gateways'
//! backs: through the room API with the service token, or straight in
//! Postgres to stage what a fault would leave behind.

use chat_config::Secret;
use chat_protocol::{kind::EntryKind, RoomId};
use chat_store::{NewMessage, Persisted, PostgresConfig, Store};

use crate::{cluster::Cluster, options::ADMIN_TOKEN};

impl Cluster {
    /// Creates a room with members through the room API (service token).
    pub async fn create_room(&self, room: &str, members: &[&str]) {
        let response = reqwest::Client::new()
            .post(self.gateway(0).url("/v1/rooms"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "room": room, "members": members }))
            .send()
            .await
            .expect("admin request");
        assert!(
            response.status().is_success(),
            "create room failed: {}",
            response.status()
        );
    }

    /// Messages stored for a room: (seq, sender, client_msg_id, body), by seq.
    pub async fn stored(&self, room: &str) -> Vec<(i64, String, String, String)> {
        self.postgres
            .client()
            .await
            .query(
                "SELECT seq, sender_id, client_msg_id, body FROM messages WHERE room_id = $1 ORDER BY seq",
                &[&room],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    /// A member's read marker and unread count as Postgres has them, counted
    /// here apart from the system's own statements: others' chat messages,
    /// not deleted, after the marker.
    pub async fn unread(&self, room: &str, user: &str) -> (u64, u32) {
        let row = self
            .postgres
            .client()
            .await
            .query_one(
                "SELECT k.seq, (SELECT count(*) FROM messages m WHERE m.room_id = k.room_id \
                 AND m.seq > k.seq AND m.kind = '' AND NOT m.deleted AND m.sender_id <> k.user_id) \
                 FROM read_markers k WHERE k.room_id = $1 AND k.user_id = $2",
                &[&room, &user],
            )
            .await
            .unwrap();
        (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u32)
    }

    /// A store on the cluster's Postgres, as a worker holds one.
    pub fn store(&self) -> Store {
        Store::new(&PostgresConfig {
            url: Secret::new(self.postgres.url()),
            pool_size: std::num::NonZeroUsize::MIN,
            read_url: None,
            ..PostgresConfig::default()
        })
        .unwrap()
    }

    /// The entries of a room's Redis window (`chat_cache`), by seq.
    pub async fn window(&self, room: &str) -> Vec<chat_proto::v1::Message> {
        let mut redis = chat_cache::connect(&self.redis_url(), &Default::default())
            .await
            .unwrap();
        let (room, all) = (
            RoomId::parse(room).unwrap(),
            chat_protocol::Seq::new(u64::MAX >> 1),
        );
        chat_cache::between(&mut redis, &room, chat_protocol::Seq::ZERO, all, 100_000)
            .await
            .unwrap()
    }

    /// Stores a message the way a worker does but never publishes its
    /// fan-out, as if NATS had dropped it.
    pub async fn store_without_fanout(&self, room: &str, id: &str) -> chat_proto::v1::Message {
        let outcome = self
            .store()
            .persist(&[NewMessage {
                room: RoomId::parse(room).unwrap(),
                sender: "ghost".into(),
                client_msg_id: id.into(),
                body: "dropped fan-out".into(),
                kind: EntryKind::Message,
                target: None,
                id: None,
            }])
            .await
            .unwrap();
        match outcome.into_iter().next().unwrap() {
            Persisted::Stored { message, .. } => message,
            other => panic!("not stored: {other:?}"),
        }
    }

    /// Deletes a room straight from Postgres, as if it had been deleted
    /// after the gateway accepted sends to it.
    pub async fn delete_room(&self, room: &str) {
        self.postgres
            .client()
            .await
            .execute("DELETE FROM rooms WHERE id = $1", &[&room])
            .await
            .unwrap();
    }
}
