//! Who is online, across gateways: each user's set of gateways holding a
//! socket of theirs (`keys::presence`), each gateway's set of users
//! (`keys::gateway_users`), and the gateways' heartbeats (`keys::GATEWAYS`).
//! A user comes online when their set stops being empty and goes offline
//! when it empties; each change is one key's script, so two gateways
//! changing one user's set at once see one transition between them. A
//! gateway that dies without a goodbye stops its heartbeat; the first
//! gateway to find it old takes it out of its users' sets.

use std::sync::LazyLock;

use chat_protocol::{keys, UserId};
use redis::Script;

use crate::Redis;

/// KEYS[1] a user's presence set, ARGV[1] a gateway: 1 if it was empty.
static ARRIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local added = redis.call('SADD', KEYS[1], ARGV[1])
return added == 1 and redis.call('SCARD', KEYS[1]) == 1 and 1 or 0
",
    )
});

/// KEYS[1] a user's presence set, ARGV[1] a gateway: 1 if it is now empty.
static DEPART: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed = redis.call('SREM', KEYS[1], ARGV[1])
return removed == 1 and redis.call('SCARD', KEYS[1]) == 0 and 1 or 0
",
    )
});

/// The user has a socket on `gateway`: true if they were offline.
pub async fn arrive(redis: &mut Redis, user: &UserId, gateway: &str) -> redis::RedisResult<bool> {
    let came: i32 = ARRIVE
        .key(keys::presence(user))
        .arg(gateway)
        .invoke_async(redis)
        .await?;
    redis::cmd("SADD")
        .arg(keys::gateway_users(gateway))
        .arg(user.as_str())
        .query_async::<()>(redis)
        .await?;
    Ok(came == 1)
}

/// The user has no socket left on `gateway`: true if they are offline now.
pub async fn depart(redis: &mut Redis, user: &str, gateway: &str) -> redis::RedisResult<bool> {
    let Ok(user) = UserId::parse(user) else {
        return Ok(false);
    };
    let gone: i32 = DEPART
        .key(keys::presence(&user))
        .arg(gateway)
        .invoke_async(redis)
        .await?;
    redis::cmd("SREM")
        .arg(keys::gateway_users(gateway))
        .arg(user.as_str())
        .query_async::<()>(redis)
        .await?;
    Ok(gone == 1)
}

/// Puts users back into their sets (after Redis lost them, say), without
/// telling anyone: they were online all along.
pub async fn reassert(
    redis: &mut Redis,
    users: &[UserId],
    gateway: &str,
) -> redis::RedisResult<()> {
    if users.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for user in users {
        pipe.cmd("SADD")
            .arg(keys::presence(user))
            .arg(gateway)
            .ignore();
    }
    pipe.cmd("SADD")
        .arg(keys::gateway_users(gateway))
        .arg(users.iter().map(UserId::as_str).collect::<Vec<_>>())
        .ignore();
    pipe.query_async(redis).await
}

/// Whether each user is online, in order.
pub async fn online(redis: &mut Redis, users: &[UserId]) -> redis::RedisResult<Vec<bool>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for user in users {
        pipe.cmd("EXISTS").arg(keys::presence(user));
    }
    let found: Vec<i32> = pipe.query_async(redis).await?;
    Ok(found.into_iter().map(|n| n == 1).collect())
}

/// Whether Redis holds `gateway`'s set of users (false after it restarted
/// empty).
pub async fn recorded(redis: &mut Redis, gateway: &str) -> redis::RedisResult<bool> {
    let found: i32 = redis::cmd("EXISTS")
        .arg(keys::gateway_users(gateway))
        .query_async(redis)
        .await?;
    Ok(found == 1)
}

/// The users `gateway` put in their presence sets.
pub async fn users_of(redis: &mut Redis, gateway: &str) -> redis::RedisResult<Vec<String>> {
    redis::cmd("SMEMBERS")
        .arg(keys::gateway_users(gateway))
        .query_async(redis)
        .await
}

/// `gateway` is alive at `now_ms`.
pub async fn heartbeat(redis: &mut Redis, gateway: &str, now_ms: i64) -> redis::RedisResult<()> {
    redis::cmd("ZADD")
        .arg(keys::GATEWAYS)
        .arg(now_ms)
        .arg(gateway)
        .query_async(redis)
        .await
}

/// Gateways whose last heartbeat is older than `before_ms`.
pub async fn silent_since(redis: &mut Redis, before_ms: i64) -> redis::RedisResult<Vec<String>> {
    // ZRANGEBYSCORE rather than ZRANGE … BYSCORE: counted apart from the
    // rooms' window reads in Redis's command statistics (bench presence).
    redis::cmd("ZRANGEBYSCORE")
        .arg(keys::GATEWAYS)
        .arg("-inf")
        .arg(format!("({before_ms}"))
        .query_async(redis)
        .await
}

/// Takes a gateway off the heartbeat set: true for the one caller that
/// did, which then takes its users out (`users_of`, `depart`, `forget`).
pub async fn claim(redis: &mut Redis, gateway: &str) -> redis::RedisResult<bool> {
    let removed: i32 = redis::cmd("ZREM")
        .arg(keys::GATEWAYS)
        .arg(gateway)
        .query_async(redis)
        .await?;
    Ok(removed == 1)
}

/// Drops a gateway's set of users, once they are all out.
pub async fn forget(redis: &mut Redis, gateway: &str) -> redis::RedisResult<()> {
    redis::cmd("DEL")
        .arg(keys::gateway_users(gateway))
        .query_async(redis)
        .await
}
