//! The Redis caches: each room's recent messages (workers add to them after
//! commit; gateways read them to fill delivery gaps before asking Postgres;
//! messages never change once stored, so entries never need invalidating)
//! and each member's access (set by the worker that changes it).

use std::time::Duration;

use chat_proto::v1::Message;
use prost::Message as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use chat_protocol::{access::Access, keys, RoomId, Seq};

/// How long an idle room's recent messages stay in Redis.
const RECENT_TTL_SECS: i64 = 24 * 3600;

/// A connection to Redis that fails fast while Redis is down instead of
/// retrying for seconds: Redis is only a cache, and every caller has
/// Postgres to fall back on. Lazy, so a binary starts without Redis; each
/// call after a failure tries to reconnect once.
pub fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(50))
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    ConnectionManager::new_lazy_with_config(redis::Client::open(url)?, config)
}

/// How long a cached membership answer lives (`chat:member:<room>:<user>`).
/// Workers set it after every change; gateways cache what Postgres said on
/// a miss, for their own `delivery.membership_ttl_secs`.
pub const MEMBERSHIP_TTL_SECS: u64 = 60;

/// The cached answer for "not a member".
const NOT_A_MEMBER: &str = "-";

/// The answer after a committed change to a member: overwrites whatever a
/// gateway cached before it.
pub async fn set_membership(
    redis: &mut ConnectionManager,
    key: &str,
    access: Option<Access>,
) -> redis::RedisResult<()> {
    cache_membership(redis, key, access, MEMBERSHIP_TTL_SECS, false).await
}

/// A gateway's answer read from Postgres: cached only where nothing is, so
/// it never overwrites a worker's fresher one.
pub async fn offer_membership(
    redis: &mut ConnectionManager,
    key: &str,
    access: Option<Access>,
    ttl_secs: u64,
) -> redis::RedisResult<()> {
    cache_membership(redis, key, access, ttl_secs, true).await
}

/// The cached answer: `Some(None)` for "not a member", `None` for nothing
/// cached (or a value this version cannot read, which counts as a miss).
pub async fn membership(
    redis: &mut ConnectionManager,
    key: &str,
) -> redis::RedisResult<Option<Option<Access>>> {
    let cached: Option<String> = redis::cmd("GET").arg(key).query_async(redis).await?;
    Ok(cached.and_then(|v| match v.as_str() {
        NOT_A_MEMBER => Some(None),
        v => Access::decode(v).map(Some),
    }))
}

async fn cache_membership(
    redis: &mut ConnectionManager,
    key: &str,
    access: Option<Access>,
    ttl_secs: u64,
    only_if_absent: bool,
) -> redis::RedisResult<()> {
    let mut set = redis::cmd("SET");
    set.arg(key)
        .arg(access.map_or_else(|| NOT_A_MEMBER.to_owned(), Access::encode));
    if only_if_absent {
        set.arg("NX");
    }
    set.arg("EX").arg(ttl_secs).query_async(redis).await
}

/// Adds stored messages to their rooms' recent sets, keeping the newest `keep`.
pub async fn remember(
    redis: &mut ConnectionManager,
    messages: &[(RoomId, Message)],
    keep: usize,
) -> redis::RedisResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (room, msg) in messages {
        pipe.zadd(keys::recent(room), msg.encode_to_vec(), msg.seq)
            .ignore();
    }
    let mut rooms: Vec<&RoomId> = messages.iter().map(|(r, _)| r).collect();
    rooms.sort();
    rooms.dedup();
    for room in rooms {
        let key = keys::recent(room);
        pipe.zremrangebyrank(&key, 0, -(keep as isize) - 1).ignore();
        pipe.expire(&key, RECENT_TTL_SECS).ignore();
    }
    pipe.query_async(redis).await
}

/// At most `limit` messages with `after < seq <= up_to` that are still
/// cached, in seq order.
pub async fn between(
    redis: &mut ConnectionManager,
    room: &RoomId,
    after: Seq,
    up_to: Seq,
    limit: usize,
) -> redis::RedisResult<Vec<Message>> {
    let raw: Vec<Vec<u8>> = redis::cmd("ZRANGE")
        .arg(keys::recent(room))
        .arg(format!("({after}"))
        .arg(up_to.get())
        .arg("BYSCORE")
        .arg("LIMIT")
        .arg(0)
        .arg(limit)
        .query_async(redis)
        .await?;
    Ok(raw
        .iter()
        .filter_map(|b| Message::decode(b.as_slice()).ok())
        .collect())
}

/// The highest cached seq of each room, in one round trip: a hint that
/// messages up to it exist. `None` where Redis holds nothing for the room
/// (no message yet, expired, or Redis restarted empty).
pub async fn head_hints(
    redis: &mut ConnectionManager,
    rooms: &[RoomId],
) -> redis::RedisResult<Vec<Option<Seq>>> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for room in rooms {
        pipe.cmd("ZRANGE")
            .arg(keys::recent(room))
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES");
    }
    let tops: Vec<Vec<(Vec<u8>, f64)>> = pipe.query_async(redis).await?;
    Ok(tops
        .iter()
        .map(|top| top.first().map(|(_, score)| Seq::new(*score as u64)))
        .collect())
}
