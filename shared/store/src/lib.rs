//! Postgres: the schema migrations and every SQL statement of the system.
//!
//! Gateways read (membership, heads, history); workers write (`persist`);
//! the admin seam creates rooms and members.

use chat_proto::v1::Message;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use chat_config::{Secret, Validate};
use chat_protocol::{kind, RoomId, Seq, UserId};
use serde::{Deserialize, Serialize};

refinery::embed_migrations!("migrations");

/// Postgres connection settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresConfig {
    /// libpq-style URL, e.g. `postgres://chat@127.0.0.1:5432/chat`.
    pub url: Secret,
    /// Largest number of pooled connections.
    pub pool_size: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/chat"),
            pool_size: 16,
        }
    }
}

impl Validate for PostgresConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if let Err(e) = self.url.expose().parse::<tokio_postgres::Config>() {
            problems.push(format!(
                "postgres.url is not a valid connection string: {e}"
            ));
        }
        if self.pool_size == 0 {
            problems.push("postgres.pool_size must be > 0".into());
        }
    }
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no Postgres connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("Postgres: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[error("bad Postgres configuration: {0}")]
    Config(String),
    /// What Postgres returned contradicts itself (worth another try).
    #[error("inconsistent read: {0}")]
    Inconsistent(String),
}

impl StoreError {
    /// Whether the same operation may succeed if tried again later. Only a
    /// refusal of the input itself fails the same way every time: SQLSTATE
    /// class 22 (data exception, e.g. a NUL byte in a text value) and class
    /// 23 (integrity constraint violation). Everything else that can fail a
    /// statement is worth retrying: lost or refused connections, pool
    /// timeouts, serialization failures (40001) and deadlocks (40P01), a
    /// `COMMIT` whose outcome is unknown, and any error not known to be about
    /// the input, so that an unforeseen failure delays messages instead of
    /// discarding good ones. Configuration and migration failures need an
    /// operator, not a retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Db(e) | Self::Pool(deadpool_postgres::PoolError::Backend(e)) => !refuses_input(e),
            Self::Pool(_) | Self::Inconsistent(_) => true,
            Self::Migrate(_) | Self::Config(_) => false,
        }
    }
}

/// SQLSTATE classes 22 (data exception) and 23 (integrity constraint
/// violation): Postgres refuses these values, however often they are sent.
fn refuses_input(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

/// Every statement, named for what it does.
mod sql {
    /// Session-level advisory lock held while migrating (dropped with the connection).
    pub const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(7245186)";
    pub const IS_MEMBER: &str = "SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2";
    pub const ROOM_HEAD: &str = "SELECT last_seq FROM rooms WHERE id = $1";
    pub const ROOM_HEADS: &str = "SELECT id, last_seq FROM rooms WHERE id = ANY($1)";
    pub const CREATE_ROOM: &str = "INSERT INTO rooms (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";
    pub const ADD_MEMBER: &str =
        "INSERT INTO members (room_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
    pub const REMOVE_MEMBER: &str = "DELETE FROM members WHERE room_id = $1 AND user_id = $2";
    /// Columns in the order `message_from_row` reads them.
    const COLUMNS: &str = "room_id, seq, id, sender_id, body, \
        round(extract(epoch FROM created_at) * 1000)::int8, client_msg_id, kind";
    pub fn message_at() -> String {
        format!("SELECT {COLUMNS} FROM messages WHERE room_id = $1 AND seq = $2")
    }
    pub const CLAIM_COMMAND: &str =
        "INSERT INTO commands (id, room_id, change) VALUES ($1, $2, $3) \
        ON CONFLICT (id) DO NOTHING";
    pub const COMMAND_DONE: &str =
        "SELECT room_id, change, event_seq, created FROM commands WHERE id = $1";
    pub const LOCK_ROOM: &str = "SELECT last_seq FROM rooms WHERE id = $1 FOR UPDATE";
    pub const SET_ROOM_HEAD: &str = "UPDATE rooms SET last_seq = $2 WHERE id = $1";
    pub const INSERT_EVENT: &str = "INSERT INTO messages \
        (room_id, seq, id, sender_id, client_msg_id, body, created_at, kind) \
        VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::int8 / 1000.0), $8)";
    pub const RECORD_COMMAND: &str =
        "UPDATE commands SET event_seq = $2, created = $3 WHERE id = $1";
    pub fn messages_between() -> String {
        format!(
            "SELECT {COLUMNS} FROM messages WHERE room_id = $1 AND seq > $2 AND seq <= $3 \
             ORDER BY seq LIMIT $4"
        )
    }
    pub fn find_sent() -> String {
        format!(
            "SELECT {COLUMNS} FROM messages \
             WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3"
        )
    }
    /// One round trip per batch: see `migrations/V2__persist_function.sql`.
    pub const PERSIST: &str = "SELECT idx, seq, id, body, ts, fresh \
        FROM persist_messages($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::int8[])";
}

/// A stored row as a client sees it: an event's `body` column holds its
/// member.
fn message_from_row(row: &Row) -> Message {
    let kind: String = row.get(7);
    let body: String = row.get(4);
    let (body, member) = if kind.is_empty() {
        (body, String::new())
    } else {
        (String::new(), body)
    };
    Message {
        room: row.get(0),
        seq: row.get::<_, i64>(1) as u64,
        id: row.get::<_, Uuid>(2).to_string(),
        sender: row.get(3),
        body,
        ts_ms: row.get(5),
        client_msg_id: row.get(6),
        kind,
        member,
    }
}

/// A change to a room, as a worker applies it.
#[derive(Clone, Debug)]
pub enum Change {
    /// Creates the room (if new) with these members; no events: a room's
    /// sequence starts empty.
    CreateRoom(Vec<UserId>),
    AddMember(UserId),
    RemoveMember(UserId),
}

/// A command to apply once, by id.
#[derive(Clone, Debug)]
pub struct NewCommand {
    pub id: String,
    pub room: RoomId,
    pub actor: String,
    pub change: Change,
}

impl Change {
    /// What the command does, recorded with its id.
    fn describe(&self) -> String {
        match self {
            Self::CreateRoom(members) => format!("create:{}", members.len()),
            Self::AddMember(user) => format!("add:{user}"),
            Self::RemoveMember(user) => format!("remove:{user}"),
        }
    }
}

/// What applying a command did (the same answer however often it is applied).
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Done {
        /// The room was created by this command.
        created: bool,
        /// The change's event in the room's sequence, if it changed anything.
        event: Option<Message>,
        /// Applied by this call, not found applied before (a redelivery,
        /// a resend): what follows a change is done once.
        fresh: bool,
    },
    RoomMissing,
    /// The id was used before for another change (or another room).
    Conflict,
}

/// A send to store, as the worker received it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub room: RoomId,
    pub sender: String,
    pub client_msg_id: String,
    pub body: String,
}

/// What became of one `NewMessage` of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Persisted {
    /// Stored by this call (`fresh`) or found stored by an earlier one.
    Stored { message: Message, fresh: bool },
    /// The room does not exist; retrying cannot help.
    RoomMissing,
}

/// A cheap-to-clone handle on the Postgres pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Builds the pool; connections are opened on first use.
    pub fn new(config: &PostgresConfig) -> Result<Self, StoreError> {
        let pg: tokio_postgres::Config = config
            .url
            .expose()
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Config(e.to_string()))?;
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Applies pending migrations on a connection of its own. An advisory
    /// lock lets several workers start at once without racing.
    pub async fn migrate(config: &PostgresConfig) -> Result<(), StoreError> {
        let (mut client, connection) = tokio_postgres::connect(config.url.expose(), NoTls).await?;
        let driver = tokio::spawn(connection);
        client.execute(sql::MIGRATION_LOCK, &[]).await?;
        let report = migrations::runner().run_async(&mut client).await?;
        for m in report.applied_migrations() {
            tracing::info!(migration = %m, "applied migration");
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }

    /// Pool usage: (connections open, connections idle).
    pub fn pool_status(&self) -> (usize, usize) {
        let status = self.pool.status();
        (status.size, status.available)
    }

    /// Checks that Postgres answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.get().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    pub async fn is_member(&self, room: &RoomId, user: &UserId) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::IS_MEMBER).await?;
        Ok(client
            .query_opt(&stmt, &[&room.as_str(), &user.as_str()])
            .await?
            .is_some())
    }

    /// The room's highest stored seq, or `None` if the room does not exist.
    pub async fn room_head(&self, room: &RoomId) -> Result<Option<Seq>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::ROOM_HEAD).await?;
        Ok(client
            .query_opt(&stmt, &[&room.as_str()])
            .await?
            .map(|row| Seq::new(row.get::<_, i64>(0) as u64)))
    }

    /// The highest stored seq of each of `rooms` that exists, in one query.
    pub async fn room_heads(&self, rooms: &[RoomId]) -> Result<Vec<(RoomId, Seq)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::ROOM_HEADS).await?;
        let ids: Vec<&str> = rooms.iter().map(RoomId::as_str).collect();
        Ok(client
            .query(&stmt, &[&ids])
            .await?
            .iter()
            .filter_map(|row| {
                let id = RoomId::parse(row.get::<_, String>(0)).ok()?;
                Some((id, Seq::new(row.get::<_, i64>(1) as u64)))
            })
            .collect())
    }

    /// Stored messages with `after < seq <= up_to`, in seq order, at most `limit`.
    pub async fn messages_between(
        &self,
        room: &RoomId,
        after: Seq,
        up_to: Seq,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql::messages_between()).await?;
        let rows = client
            .query(
                &stmt,
                &[
                    &room.as_str(),
                    &(after.get() as i64),
                    &(up_to.get() as i64),
                    &(limit as i64),
                ],
            )
            .await?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    /// The message `sender` stored in `room` under `client_msg_id`, if any.
    pub async fn find_sent(
        &self,
        room: &RoomId,
        sender: &UserId,
        client_msg_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql::find_sent()).await?;
        Ok(client
            .query_opt(&stmt, &[&room.as_str(), &sender.as_str(), &client_msg_id])
            .await?
            .as_ref()
            .map(message_from_row))
    }

    /// Applies a command in one transaction, once per id: a command applied
    /// before returns what it did then. A member added or removed gets an
    /// event with the room's next seq (the room row locked, as for
    /// messages), sent by the actor, with the command id as its
    /// client_msg_id; a change that changes nothing gets none.
    pub async fn apply(&self, command: &NewCommand) -> Result<Applied, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let room = command.room.as_str();
        let change = command.change.describe();
        // The claim: a concurrent apply of the same id waits here for the
        // first to finish, then finds its outcome.
        let claimed = tx
            .execute(sql::CLAIM_COMMAND, &[&command.id, &room, &change])
            .await?
            == 1;
        if !claimed {
            let Some(done) = tx.query_opt(sql::COMMAND_DONE, &[&command.id]).await? else {
                return Err(StoreError::Inconsistent("claimed command vanished".into()));
            };
            if done.get::<_, &str>(0) != room || done.get::<_, &str>(1) != change {
                return Ok(Applied::Conflict);
            }
            let event = match done.get::<_, Option<i64>>(2) {
                Some(seq) => tx
                    .query_opt(&sql::message_at(), &[&room, &seq])
                    .await?
                    .as_ref()
                    .map(message_from_row),
                None => None,
            };
            return Ok(Applied::Done {
                created: done.get(3),
                event,
                fresh: false,
            });
        }
        let (created, event) = match &command.change {
            Change::CreateRoom(members) => {
                let created = tx.execute(sql::CREATE_ROOM, &[&room]).await? == 1;
                for user in members {
                    tx.execute(sql::ADD_MEMBER, &[&room, &user.as_str()])
                        .await?;
                }
                (created, None)
            }
            Change::AddMember(user) | Change::RemoveMember(user) => {
                let Some(head) = tx.query_opt(sql::LOCK_ROOM, &[&room]).await? else {
                    return Ok(Applied::RoomMissing);
                };
                let (statement, kind) = match &command.change {
                    Change::AddMember(_) => (sql::ADD_MEMBER, kind::MEMBER_JOINED),
                    _ => (sql::REMOVE_MEMBER, kind::MEMBER_LEFT),
                };
                let changed = tx.execute(statement, &[&room, &user.as_str()]).await? == 1;
                let event = if changed {
                    let seq = head.get::<_, i64>(0) + 1;
                    let id = Uuid::now_v7();
                    let now = chat_protocol::now_ms();
                    tx.execute(
                        sql::INSERT_EVENT,
                        &[
                            &room,
                            &seq,
                            &id,
                            &command.actor,
                            &command.id,
                            &user.as_str(),
                            &now,
                            &kind,
                        ],
                    )
                    .await?;
                    tx.execute(sql::SET_ROOM_HEAD, &[&room, &seq]).await?;
                    Some(Message {
                        room: room.to_owned(),
                        seq: seq as u64,
                        id: id.to_string(),
                        sender: command.actor.clone(),
                        ts_ms: now,
                        client_msg_id: command.id.clone(),
                        kind: kind.to_owned(),
                        member: user.to_string(),
                        ..Message::default()
                    })
                } else {
                    None
                };
                (false, event)
            }
        };
        let event_seq = event.as_ref().map(|e| e.seq as i64);
        tx.execute(sql::RECORD_COMMAND, &[&command.id, &event_seq, &created])
            .await?;
        tx.commit().await?;
        Ok(Applied::Done {
            created,
            event,
            fresh: true,
        })
    }

    /// Stores a batch in one statement (`persist_messages`, see migration
    /// V2), idempotently on (room, sender, client_msg_id). Each room's row is
    /// locked (rooms in id order, so two workers never deadlock) and its new
    /// messages get the next seqs, in batch order. Returns one outcome per
    /// input, in input order. An error means nothing is known: the caller
    /// must not acknowledge the batch. A batch is one statement, so one
    /// value Postgres refuses (see [`StoreError::is_retryable`]) fails all of
    /// it and stores nothing.
    pub async fn persist(&self, batch: &[NewMessage]) -> Result<Vec<Persisted>, StoreError> {
        let now = chat_protocol::now_ms();
        let rooms: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
        let senders: Vec<&str> = batch.iter().map(|m| m.sender.as_str()).collect();
        let cmids: Vec<&str> = batch.iter().map(|m| m.client_msg_id.as_str()).collect();
        let bodies: Vec<&str> = batch.iter().map(|m| m.body.as_str()).collect();
        let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let stamps: Vec<i64> = vec![now; batch.len()];
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::PERSIST).await?;
        let rows = client
            .query(&stmt, &[&rooms, &senders, &cmids, &bodies, &ids, &stamps])
            .await?;
        let mut out = vec![Persisted::RoomMissing; batch.len()];
        for row in rows {
            let i = (row.get::<_, i32>(0) - 1) as usize;
            let m = &batch[i];
            out[i] = Persisted::Stored {
                message: Message {
                    room: m.room.to_string(),
                    seq: row.get::<_, i64>(1) as u64,
                    id: row.get::<_, Uuid>(2).to_string(),
                    sender: m.sender.clone(),
                    body: row.get(3),
                    ts_ms: row.get(4),
                    client_msg_id: m.client_msg_id.clone(),
                    ..Message::default()
                },
                fresh: row.get(5),
            };
        }
        Ok(out)
    }
}
