//! Who may enter a room, with which role and flags: Postgres is the truth,
//! Redis caches each answer for a while, and the worker that commits a
//! change sets the cached answer (`worker/src/commands.rs`). With Redis
//! down, Postgres answers alone.

use chat_cache::Redis;
use chat_protocol::{access::Access, keys, RoomId, UserId};
use chat_store::Store;

use crate::error::GatewayError;

#[derive(Clone)]
pub struct Membership {
    store: Store,
    redis: Redis,
    ttl_secs: u64,
}

impl Membership {
    pub fn new(store: Store, redis: Redis, ttl_secs: u64) -> Self {
        Self {
            store,
            redis,
            ttl_secs,
        }
    }

    /// The user's role and flags in the room; `None` if not a member.
    pub async fn access(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<Access>, GatewayError> {
        let key = keys::membership(room, user);
        let mut redis = self.redis.clone();
        let cached = chat_cache::membership(&mut redis, &key).await;
        if let Ok(Some(cached)) = cached {
            return Ok(cached);
        }
        let access = self.store.access(room, user).await?;
        if cached.is_ok() {
            if let Err(e) =
                chat_cache::offer_membership(&mut redis, &key, access, self.ttl_secs).await
            {
                tracing::debug!(error = %e, "membership not cached");
            }
        }
        Ok(access)
    }
}
