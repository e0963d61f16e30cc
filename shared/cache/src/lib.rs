//! The Redis caches: each room's window of recent entries as they stand
//! (workers write them after commit; gateways read them for gap fills,
//! replays and history pages before asking Postgres), each member's
//! access (set by the worker that changes it), and who is online
//! (`presence`).

use std::sync::LazyLock;

use chat_proto::v1::Message;
use prost::Message as _;
use redis::{ErrorKind, Script, ServerErrorKind};

use chat_protocol::{access::Access, keys, RoomId, Seq};

mod breaker;
mod connection;
pub mod presence;

pub use connection::{connect, Redis, RedisConfig};

/// How long an idle room's window stays in Redis.
const RECENT_TTL_SECS: i64 = 24 * 3600;
/// How long a cached membership answer lives (`chat:member:{<room>}:<user>`).
/// Workers set it after every change; gateways cache what Postgres said on
/// a miss, for their own `delivery.membership_ttl_secs`.
pub const MEMBERSHIP_TTL_SECS: u64 = 60;

/// The cached answer for "not a member".
const NOT_A_MEMBER: &str = "-";

/// The answer after a committed change to a member: overwrites whatever a
/// gateway cached before it.
pub async fn set_membership(
    redis: &mut Redis,
    key: &str,
    access: Option<Access>,
) -> redis::RedisResult<()> {
    cache_membership(redis, key, access, MEMBERSHIP_TTL_SECS, false).await
}

/// A gateway's answer read from Postgres: cached only where nothing is, so
/// it never overwrites a worker's fresher one.
pub async fn offer_membership(
    redis: &mut Redis,
    key: &str,
    access: Option<Access>,
    ttl_secs: u64,
) -> redis::RedisResult<()> {
    cache_membership(redis, key, access, ttl_secs, true).await
}

/// The cached answer: `Some(None)` for "not a member", `None` for nothing
/// cached (or a value this version cannot read, which counts as a miss).
pub async fn membership(
    redis: &mut Redis,
    key: &str,
) -> redis::RedisResult<Option<Option<Access>>> {
    let cached: Option<String> = redis::cmd("GET").arg(key).query_async(redis).await?;
    Ok(cached.and_then(|v| match v.as_str() {
        NOT_A_MEMBER => Some(None),
        v => Access::decode(v).map(Some),
    }))
}

async fn cache_membership(
    redis: &mut Redis,
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

/// Drops rooms' windows whose entries changed outside the sequence (a
/// user's erased entries): readers go to Postgres until workers write new
/// ones, and a window that lacks older entries is not whole, so it is
/// never read for them.
pub async fn forget_windows(redis: &mut Redis, rooms: &[RoomId]) -> redis::RedisResult<()> {
    for room in rooms {
        redis::cmd("DEL")
            .arg(keys::window(room))
            .query_async::<()>(redis)
            .await?;
    }
    Ok(())
}

/// Drops a room's window entries up to `seq` (retention deleted them);
/// the rest stays whole.
pub async fn forget_through(redis: &mut Redis, room: &RoomId, seq: u64) -> redis::RedisResult<()> {
    redis::cmd("ZREMRANGEBYSCORE")
        .arg(keys::window(room))
        .arg("-inf")
        .arg(seq)
        .query_async(redis)
        .await
}

/// Writes entries into their rooms' windows, keeping each room's newest
/// `keep`: a stored entry, or the new state of a message an event changed.
/// Each entry is versioned by the newest seq its state includes
/// (`changed_seq`, else its own seq), and the script keeps the newer of
/// what a window holds and what it is given, so two workers writing the
/// same message in either order leave its newest state. A message older
/// than everything a window holds is left out (the window stays whole).
pub async fn remember(
    redis: &mut Redis,
    entries: &[(RoomId, Message)],
    keep: usize,
) -> redis::RedisResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut by_room: Vec<&(RoomId, Message)> = entries.iter().collect();
    by_room.sort_by(|a, b| a.0.cmp(&b.0));
    let mut pipe = redis::pipe();
    for room in by_room.chunk_by(|a, b| a.0 == b.0) {
        let call = pipe
            .cmd("EVALSHA")
            .arg(WINDOW.get_hash())
            .arg(1)
            .arg(keys::window(&room[0].0))
            .arg(keep)
            .arg(RECENT_TTL_SECS);
        for (_, message) in room {
            call.arg(message.seq).arg(versioned(message));
        }
        call.ignore();
    }
    match pipe.query_async::<()>(redis).await {
        // The first call since Redis started: load the script, run again
        // (what ran already runs again to the same effect).
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            WINDOW.prepare_invoke().load_async(redis).await?;
            pipe.query_async(redis).await
        }
        done => done,
    }
}

/// KEYS[1] a room's window; ARGV: keep, ttl, then (seq, member) pairs, a
/// member being its version (16 hex digits) and the encoded `Message`.
/// An entry above the window's top (a new message, the usual case) is
/// added without looking for what the window holds at its seq.
static WINDOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local high = tonumber(top[2])
for i = 3, #ARGV, 2 do
    local seq, member = ARGV[i], ARGV[i + 1]
    local at = tonumber(seq)
    if high == nil or at > high then
        redis.call('ZADD', key, seq, member)
        high = at
    else
        local held = redis.call('ZRANGE', key, seq, seq, 'BYSCORE')
        if #held == 0 then
            local low = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
            if tonumber(low[2]) <= at then
                redis.call('ZADD', key, seq, member)
            end
        elseif tonumber(string.sub(held[1], 1, 16), 16) < tonumber(string.sub(member, 1, 16), 16) then
            redis.call('ZREM', key, held[1])
            redis.call('ZADD', key, seq, member)
        end
    end
end
redis.call('ZREMRANGEBYRANK', key, 0, -tonumber(ARGV[1]) - 1)
redis.call('EXPIRE', key, ARGV[2])
",
    )
});

/// Hex digits of an entry's version at the start of its window member.
const VERSION_LEN: usize = 16;

/// A window member: the entry's version, then the entry.
fn versioned(message: &Message) -> Vec<u8> {
    let version = message.seq.max(message.changed_seq);
    let mut member = format!("{version:016x}").into_bytes();
    member.extend(message.encode_to_vec());
    member
}

/// The entry of a window member; `None` for one this build cannot read.
fn entry(member: &[u8]) -> Option<Message> {
    Message::decode(member.get(VERSION_LEN..)?).ok()
}

/// At most `limit` messages with `after < seq <= up_to` that are still
/// cached, in seq order.
pub async fn between(
    redis: &mut Redis,
    room: &RoomId,
    after: Seq,
    up_to: Seq,
    limit: usize,
) -> redis::RedisResult<Vec<Message>> {
    let raw: Vec<Vec<u8>> = redis::cmd("ZRANGE")
        .arg(keys::window(room))
        .arg(format!("({after}"))
        .arg(up_to.get())
        .arg("BYSCORE")
        .arg("LIMIT")
        .arg(0)
        .arg(limit)
        .query_async(redis)
        .await?;
    Ok(raw.iter().filter_map(|b| entry(b)).collect())
}

/// The highest cached seq of each room, in one round trip: a hint that
/// messages up to it exist. `None` where Redis holds nothing for the room
/// (no message yet, expired, or Redis restarted empty).
pub async fn head_hints(
    redis: &mut Redis,
    rooms: &[RoomId],
) -> redis::RedisResult<Vec<Option<Seq>>> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for room in rooms {
        pipe.cmd("ZRANGE")
            .arg(keys::window(room))
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
