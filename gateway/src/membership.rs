//! Who may enter a room: Postgres is the truth, Redis caches each answer for
//! a while, and the worker that commits a change deletes the cached answer
//! (`worker/src/control.rs`). With Redis down, Postgres answers alone.

use chat_protocol::{keys, RoomId, UserId};
use chat_store::Store;
use redis::{aio::ConnectionManager, AsyncCommands};

use crate::error::GatewayError;

#[derive(Clone)]
pub struct Membership {
    store: Store,
    redis: ConnectionManager,
    ttl_secs: u64,
}

impl Membership {
    pub fn new(store: Store, redis: ConnectionManager, ttl_secs: u64) -> Self {
        Self {
            store,
            redis,
            ttl_secs,
        }
    }

    pub async fn is_member(&self, room: &RoomId, user: &UserId) -> Result<bool, GatewayError> {
        let key = keys::membership(room, user);
        let mut redis = self.redis.clone();
        let cached = redis.get::<_, Option<String>>(&key).await;
        if let Ok(Some(cached)) = &cached {
            return Ok(cached == "1");
        }
        let member = self.store.is_member(room, user).await?;
        if cached.is_ok() {
            if let Err(e) =
                chat_cache::offer_membership(&mut redis, &key, member, self.ttl_secs).await
            {
                tracing::debug!(error = %e, "membership not cached");
            }
        }
        Ok(member)
    }
}
