//! Postgres: the schema migrations and every SQL statement of the system.
//!
//! Gateways read (membership, heads, history); workers write (`persist`);
//! the admin seam creates rooms and members.

use chat_proto::v1::Message;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use chat_config::{Secret, Validate};
use chat_protocol::access::{self, Access, Actor, Op, Permissions, Refusal, Role};
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
    pub pool_size: std::num::NonZeroUsize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/chat"),
            pool_size: std::num::NonZeroUsize::new(16).expect("not zero"),
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
    pub const MEMBER_ACCESS: &str =
        "SELECT role, permissions FROM members WHERE room_id = $1 AND user_id = $2";
    /// One row per member, or one row of NULLs for a room without any;
    /// none when the room does not exist.
    pub const MEMBERS: &str = "SELECT m.user_id, m.role, m.permissions FROM rooms r \
        LEFT JOIN members m ON m.room_id = r.id WHERE r.id = $1 ORDER BY m.user_id";
    pub const COUNT_OWNERS: &str =
        "SELECT count(*) FROM members WHERE room_id = $1 AND role = 'owner'";
    pub const ROOM_HEAD: &str = "SELECT last_seq FROM rooms WHERE id = $1";
    pub const ROOM_HEADS: &str = "SELECT id, last_seq FROM rooms WHERE id = ANY($1)";
    pub const CREATE_ROOM: &str = "INSERT INTO rooms (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";
    pub const ADD_MEMBER: &str = "INSERT INTO members (room_id, user_id, role, permissions) \
        VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
    pub const SET_ACCESS: &str =
        "UPDATE members SET role = $3, permissions = $4 WHERE room_id = $1 AND user_id = $2";
    pub const REMOVE_MEMBER: &str = "DELETE FROM members WHERE room_id = $1 AND user_id = $2";
    /// Columns in the order `message_from_row` reads them.
    const COLUMNS: &str = "room_id, seq, id, sender_id, body, \
        round(extract(epoch FROM created_at) * 1000)::int8, client_msg_id, kind, access";
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
        (room_id, seq, id, sender_id, client_msg_id, body, created_at, kind, access) \
        VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::int8 / 1000.0), $8, $9)";
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
    /// One round trip per batch: see `migrations/V6__persist_two_statements.sql`.
    pub const PERSIST: &str = "SELECT idx, seq, id, body, ts, fresh, allowed \
        FROM persist_messages($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::int8[])";
}

/// A stored row as a client sees it: an event's `body` column holds its
/// member, its `access` column their role and flags after it.
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
        access: row
            .get::<_, Option<&str>>(8)
            .and_then(Access::decode)
            .map(Access::to_proto),
    }
}

/// A member's role and flags as stored, from columns `at` and `at + 1`.
fn access_from_row(row: &Row, at: usize) -> Option<Access> {
    Some(Access {
        role: Role::parse(row.get(at))?,
        permissions: Permissions::from_bits(row.get::<_, i16>(at + 1) as u8)?,
    })
}

/// A change to a room, as a worker applies it.
#[derive(Clone, Debug)]
pub enum Change {
    /// Creates the room (if new) with these members, `owners` as owners
    /// and the rest as plain members; no events: a room's sequence starts
    /// empty.
    CreateRoom {
        members: Vec<UserId>,
        owners: Vec<UserId>,
    },
    /// A change to one member, under the rules of who may change whom.
    Member(UserId, MemberChange),
}

#[derive(Clone, Debug)]
pub enum MemberChange {
    Add,
    Remove,
    /// A new role (with its default flags) if given, then flags granted
    /// and revoked.
    SetAccess {
        role: Option<Role>,
        grant: Permissions,
        revoke: Permissions,
    },
}

/// Who asks for a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asker {
    /// The trusted backend, through the room API with the service token.
    Service,
    User(UserId),
}

impl Asker {
    /// The sender of the command's event. `:` is not allowed in user ids,
    /// so no user can send as the service.
    pub const SERVICE: &'static str = "system:admin";

    pub fn as_str(&self) -> &str {
        match self {
            Self::Service => Self::SERVICE,
            Self::User(user) => user.as_str(),
        }
    }
}

/// A command to apply once, by id.
#[derive(Clone, Debug)]
pub struct NewCommand {
    pub id: String,
    pub room: RoomId,
    pub actor: Asker,
    pub change: Change,
}

impl NewCommand {
    /// Who does what, recorded with its id: an id reused for another
    /// change (or by another asker) is refused.
    fn describe(&self) -> String {
        let what = match &self.change {
            Change::CreateRoom { members, owners } => {
                format!("create:{}:{}", members.len(), owners.len())
            }
            Change::Member(user, MemberChange::Add) => format!("add:{user}"),
            Change::Member(user, MemberChange::Remove) => format!("remove:{user}"),
            Change::Member(
                user,
                MemberChange::SetAccess {
                    role,
                    grant,
                    revoke,
                },
            ) => format!(
                "access:{user}:{}:{}:{}",
                role.map_or("", Role::as_str),
                grant.bits(),
                revoke.bits()
            ),
        };
        format!("{}/{what}", self.actor.as_str())
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
        /// Members whose access this call changed, with their access now
        /// (`None`: no longer a member). Empty unless `fresh`.
        changed: Vec<(UserId, Option<Access>)>,
    },
    /// Nothing was changed (and nothing recorded: asking again re-checks).
    Refused(Refused),
}

/// Why a command changed nothing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("no such room")]
    RoomMissing,
    #[error("the room exists")]
    RoomExists,
    #[error("this command id was used for another change")]
    IdReused,
    #[error("{0} is not a member of this room")]
    NotAMember(UserId),
    #[error("{0}")]
    Rule(#[from] Refusal),
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
    /// The sender may not send in the room (any more): not a member, or
    /// `can_send_messages` revoked before the send came to be stored.
    Forbidden,
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
            .max_size(config.pool_size.get())
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

    /// The user's role and flags in the room; `None` if not a member.
    pub async fn access(&self, room: &RoomId, user: &UserId) -> Result<Option<Access>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MEMBER_ACCESS).await?;
        Ok(client
            .query_opt(&stmt, &[&room.as_str(), &user.as_str()])
            .await?
            .as_ref()
            .and_then(|row| access_from_row(row, 0)))
    }

    /// The room's members with their access, by user id; `None` if the
    /// room does not exist.
    pub async fn members(
        &self,
        room: &RoomId,
    ) -> Result<Option<Vec<(UserId, Access)>>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql::MEMBERS).await?;
        let rows = client.query(&stmt, &[&room.as_str()]).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            rows.iter()
                .filter_map(|row| {
                    let user = UserId::parse(row.get::<_, Option<String>>(0)?).ok()?;
                    Some((user, access_from_row(row, 1)?))
                })
                .collect(),
        ))
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
    /// before returns what it did then. The room's row is locked first (as
    /// for messages), so the rules (`chat_protocol::access`) are checked
    /// against the room as it stands when the change is made. A change to
    /// a member gets an event with the room's next seq, sent by the asker,
    /// with the command id as its client_msg_id; a change that changes
    /// nothing gets none. A refusal rolls everything back, the claim too.
    pub async fn apply(&self, command: &NewCommand) -> Result<Applied, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let room = command.room.as_str();
        let change = command.describe();
        // The claim: a concurrent apply of the same id waits here for the
        // first to finish, then finds its outcome.
        let claimed = tx
            .execute(sql::CLAIM_COMMAND, &[&command.id, &room, &change])
            .await?
            == 1;
        if !claimed {
            return applied_before(&tx, command, &change).await;
        }
        let (created, event, changed) = match &command.change {
            Change::CreateRoom { members, owners } => {
                let created = tx.execute(sql::CREATE_ROOM, &[&room]).await? == 1;
                // A user creating a room owns it: one that exists is theirs
                // to join, not to take.
                if !created && command.actor != Asker::Service {
                    return Ok(Applied::Refused(Refused::RoomExists));
                }
                let mut changed = Vec::new();
                let listed = owners.iter().map(|u| (u, Role::Owner));
                let listed = listed.chain(members.iter().map(|u| (u, Role::Member)));
                for (user, role) in listed {
                    let access = Access::new(role);
                    if add_member(&tx, room, user, access).await? {
                        changed.push((user.clone(), Some(access)));
                    }
                }
                (created, None, changed)
            }
            Change::Member(user, change) => {
                let Some(head) = tx.query_opt(sql::LOCK_ROOM, &[&room]).await? else {
                    return Ok(Applied::Refused(Refused::RoomMissing));
                };
                let decided = match decide(&tx, command, user, change).await? {
                    Ok(decided) => decided,
                    Err(refused) => return Ok(Applied::Refused(refused)),
                };
                let Some((access, kind)) = decided else {
                    return finish(tx, command, false, None, Vec::new()).await;
                };
                match access {
                    None => {
                        tx.execute(sql::REMOVE_MEMBER, &[&room, &user.as_str()])
                            .await?;
                    }
                    Some(a) if kind == kind::MEMBER_JOINED => {
                        add_member(&tx, room, user, a).await?;
                    }
                    Some(a) => {
                        let bits = i16::from(a.permissions.bits());
                        tx.execute(
                            sql::SET_ACCESS,
                            &[&room, &user.as_str(), &a.role.as_str(), &bits],
                        )
                        .await?;
                    }
                }
                let seq = head.get::<_, i64>(0) + 1;
                let event = Message {
                    room: room.to_owned(),
                    seq: seq as u64,
                    id: Uuid::now_v7().to_string(),
                    sender: command.actor.as_str().to_owned(),
                    ts_ms: chat_protocol::now_ms(),
                    client_msg_id: command.id.clone(),
                    kind: kind.to_owned(),
                    member: user.to_string(),
                    access: access.map(Access::to_proto),
                    ..Message::default()
                };
                tx.execute(
                    sql::INSERT_EVENT,
                    &[
                        &room,
                        &seq,
                        &Uuid::parse_str(&event.id).expect("just made"),
                        &event.sender,
                        &command.id,
                        &user.as_str(),
                        &event.ts_ms,
                        &kind,
                        &access.map(Access::encode),
                    ],
                )
                .await?;
                tx.execute(sql::SET_ROOM_HEAD, &[&room, &seq]).await?;
                (false, Some(event), vec![(user.clone(), access)])
            }
        };
        finish(tx, command, created, event, changed).await
    }

    /// Stores a batch in one statement (`persist_messages`, see migration
    /// V6), idempotently on (room, sender, client_msg_id). Each room's row is
    /// locked (rooms in id order, so two workers never deadlock) and its new
    /// messages from senders who may send get the next seqs, in batch order. Returns one outcome per
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
            if !row.get::<_, bool>(6) {
                out[i] = Persisted::Forbidden;
                continue;
            }
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

/// Records what the command did and commits.
async fn finish(
    tx: deadpool_postgres::Transaction<'_>,
    command: &NewCommand,
    created: bool,
    event: Option<Message>,
    changed: Vec<(UserId, Option<Access>)>,
) -> Result<Applied, StoreError> {
    let event_seq = event.as_ref().map(|e| e.seq as i64);
    tx.execute(sql::RECORD_COMMAND, &[&command.id, &event_seq, &created])
        .await?;
    tx.commit().await?;
    Ok(Applied::Done {
        created,
        event,
        fresh: true,
        changed,
    })
}

/// The outcome of a command whose id was claimed before.
async fn applied_before(
    tx: &deadpool_postgres::Transaction<'_>,
    command: &NewCommand,
    change: &str,
) -> Result<Applied, StoreError> {
    let room = command.room.as_str();
    let Some(done) = tx.query_opt(sql::COMMAND_DONE, &[&command.id]).await? else {
        return Err(StoreError::Inconsistent("claimed command vanished".into()));
    };
    if done.get::<_, &str>(0) != room || done.get::<_, &str>(1) != change {
        return Ok(Applied::Refused(Refused::IdReused));
    }
    let event = match done.get::<_, Option<i64>>(2) {
        Some(seq) => tx
            .query_opt(&sql::message_at(), &[&room, &seq])
            .await?
            .as_ref()
            .map(message_from_row),
        None => None,
    };
    Ok(Applied::Done {
        created: done.get(3),
        event,
        fresh: false,
        changed: Vec::new(),
    })
}

/// Checks a change to one member against the rules and the room as it
/// stands (its row locked): the member's access after the change (`None`:
/// removed) and the event's kind, or `None` if it changes nothing.
async fn decide(
    tx: &deadpool_postgres::Transaction<'_>,
    command: &NewCommand,
    user: &UserId,
    change: &MemberChange,
) -> Result<Result<Option<(Option<Access>, &'static str)>, Refused>, StoreError> {
    let room = &command.room;
    let target = access_in(tx, room, user).await?;
    let actor = match &command.actor {
        Asker::Service => Actor::Service,
        Asker::User(me) if me == user => Actor::User {
            access: target,
            is_target: true,
        },
        Asker::User(me) => Actor::User {
            access: access_in(tx, room, me).await?,
            is_target: false,
        },
    };
    let (op, after) = match (change, target) {
        (MemberChange::Add, t) => (Op::Add, t.is_none().then(|| Access::new(Role::Member))),
        // Leaving a room one is not in is checked like any removal.
        (MemberChange::Remove, t) => (
            Op::Remove {
                target: t.unwrap_or(Access::new(Role::Member)),
            },
            None,
        ),
        (MemberChange::SetAccess { .. }, None) => {
            return Ok(Err(Refused::NotAMember(user.clone())))
        }
        (
            MemberChange::SetAccess {
                role,
                grant,
                revoke,
            },
            Some(t),
        ) => {
            let base = role.map_or(t.permissions, Role::defaults);
            let to = Access {
                role: role.unwrap_or(t.role),
                permissions: (base | *grant) - *revoke,
            };
            (Op::Change { target: t, to }, (to != t).then_some(to))
        }
    };
    let owners = if target.is_some_and(|t| t.role == Role::Owner) {
        let row = tx.query_one(sql::COUNT_OWNERS, &[&room.as_str()]).await?;
        row.get::<_, i64>(0) as usize
    } else {
        0
    };
    if let Err(refusal) = access::check(actor, op, owners) {
        return Ok(Err(refusal.into()));
    }
    Ok(Ok(match (change, target, after) {
        (MemberChange::Add, None, Some(a)) => Some((Some(a), kind::MEMBER_JOINED)),
        (MemberChange::Remove, Some(_), _) => Some((None, kind::MEMBER_LEFT)),
        (MemberChange::SetAccess { .. }, Some(_), Some(a)) => Some((Some(a), kind::ROLE_CHANGED)),
        _ => None,
    }))
}

async fn access_in(
    tx: &deadpool_postgres::Transaction<'_>,
    room: &RoomId,
    user: &UserId,
) -> Result<Option<Access>, StoreError> {
    Ok(tx
        .query_opt(sql::MEMBER_ACCESS, &[&room.as_str(), &user.as_str()])
        .await?
        .as_ref()
        .and_then(|row| access_from_row(row, 0)))
}

/// Adds a member with this access; false if they were one already.
async fn add_member(
    tx: &deadpool_postgres::Transaction<'_>,
    room: &str,
    user: &UserId,
    access: Access,
) -> Result<bool, StoreError> {
    let bits = i16::from(access.permissions.bits());
    let added = tx
        .execute(
            sql::ADD_MEMBER,
            &[&room, &user.as_str(), &access.role.as_str(), &bits],
        )
        .await?;
    Ok(added == 1)
}
