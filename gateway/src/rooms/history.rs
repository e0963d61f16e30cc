//! A room's stored messages, read in seq order for gap fills and replays:
//! Redis's recent set first (cheap, the newest ~1,000 of the room), Postgres
//! for whatever Redis lacks.

use chat_cache::Redis;
use chat_proto::v1::Message;
use chat_protocol::{RoomId, Seq};
use chat_store::{Store, StoreError};

/// Where a page came from, as a metrics label.
pub type Source = &'static str;

#[derive(Clone)]
pub struct History {
    pub store: Store,
    pub redis: Redis,
}

impl History {
    /// Up to `limit` messages with seqs `after + 1, after + 2, …` (no holes)
    /// and at most `up_to`. Empty if nothing after `after` is stored.
    pub async fn page(
        &self,
        room: &RoomId,
        after: Seq,
        up_to: Seq,
        limit: usize,
    ) -> Result<(Vec<Message>, Source), StoreError> {
        let mut redis = self.redis.clone();
        if let Ok(mut cached) = chat_cache::between(&mut redis, room, after, up_to, limit).await {
            // Redis keeps only the newest messages: use it only for a run
            // that starts right after `after`.
            let run = cached
                .iter()
                .zip(after.get() + 1..)
                .take_while(|(m, seq)| m.seq == *seq)
                .count();
            if run > 0 {
                cached.truncate(run);
                return Ok((cached, "redis"));
            }
        }
        let page = self
            .store
            .messages_between(room, after, up_to, limit)
            .await?;
        Ok((page, "postgres"))
    }
}
