//! The connection every cache call goes through: one Redis server or a
//! Redis Cluster, with a timeout on every call and a circuit breaker in
//! front, so a Redis that stops answering costs a few slow calls and then
//! none until it answers again (callers fall back to Postgres).

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use chat_config::millis;
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
    Cmd, Pipeline, RedisFuture, RedisResult, Value,
};
use serde::{Deserialize, Serialize};

use crate::breaker::Breaker;

/// How long Redis may take, and when to stop asking it (`redis`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// Longest wait to connect, and for each answer: Redis is only a
    /// cache, and every caller has Postgres to fall back on.
    #[serde(rename = "timeout_ms", with = "millis::non_zero")]
    pub timeout: Duration,
    /// Calls failing in a row on the connection (timed out, refused,
    /// dropped) that open the breaker: then calls fail at once.
    pub breaker_failures: NonZeroU32,
    /// How long the breaker stays open before one call may try Redis again.
    #[serde(rename = "breaker_open_ms", with = "millis::non_zero")]
    pub breaker_open: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(500),
            breaker_failures: NonZeroU32::new(5).expect("not zero"),
            breaker_open: Duration::from_secs(5),
        }
    }
}

/// The cache's connection. Cheap to clone (clones share the breaker).
/// Every key of a room carries the room as its hash tag (`keys`), so in a
/// cluster a room's keys share a slot.
#[derive(Clone)]
pub struct Redis {
    conn: Conn,
    breaker: Arc<Breaker>,
}

#[derive(Clone)]
enum Conn {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Connects to Redis at `url`, or to a Redis Cluster when `url` lists
/// several nodes (comma-separated). One server's connection is lazy, so a
/// binary starts without Redis, and each call after a failure tries to
/// reconnect once. A cluster's is made at once (its client must read the
/// slot map), with the same timeouts.
pub async fn connect(url: &str, config: &RedisConfig) -> RedisResult<Redis> {
    let breaker = Arc::new(Breaker::new(config.breaker_failures, config.breaker_open));
    let conn = if url.contains(',') {
        let client = ClusterClient::builder(url.split(',').map(str::trim))
            .connection_timeout(config.timeout)
            .response_timeout(config.timeout)
            .retries(1)
            .build()?;
        Conn::Cluster(client.get_async_connection().await?)
    } else {
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(50))
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout));
        let client = redis::Client::open(url)?;
        Conn::Server(ConnectionManager::new_lazy_with_config(
            client,
            manager_config,
        )?)
    };
    Ok(Redis { conn, breaker })
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        // Borrowed apart from the connection: no reference count per call.
        let Self { conn, breaker } = self;
        if let Err(open) = breaker.admit() {
            return Box::pin(std::future::ready(Err(open)));
        }
        let call = match conn {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        };
        Box::pin(async move { breaker.settle(call.await) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let Self { conn, breaker } = self;
        if let Err(open) = breaker.admit() {
            return Box::pin(std::future::ready(Err(open)));
        }
        let call = match conn {
            Conn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        };
        Box::pin(async move { breaker.settle(call.await) })
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
