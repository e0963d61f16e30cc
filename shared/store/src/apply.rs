//! Applying a command: claim its id, check and make the change with the
//! room's row locked, record what it did; or find what it did before.

use chat_proto::v1::Message;
use chat_protocol::access::{Access, Actor, Role};
use chat_protocol::{kind::EntryKind, RoomId, UserId};
use deadpool_postgres::Transaction;
use uuid::Uuid;

use crate::command::{Applied, Change, Limits, MemberChange, NewCommand, Refused};
use crate::decide::{access_in, decide, Decision};
use crate::error::StoreError;
use crate::pool::Store;
use crate::rows::message_from_row;
use crate::sql;

impl Store {
    /// Applies a command in one transaction, once per id: a command applied
    /// before returns what it did then. The room's row is locked first (as
    /// for messages), so the rules (`chat_protocol::access`) are checked
    /// against the room as it stands when the change is made. A change to
    /// a member gets an event with the room's next seq, sent by its actor,
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
        match &command.change {
            Change::CreateRoom { members, owners } => {
                create_room(tx, command, members, owners).await
            }
            Change::Member(user, change) => change_member(tx, command, user, change).await,
            Change::OpenDirect(peer) => open_direct(tx, command, peer).await,
            Change::DeleteRoom => delete_room(tx, command).await,
            Change::SetRetention(limits) => set_retention(tx, command, *limits).await,
        }
    }
}

/// Creates the room if new and adds the listed members, after the claim.
async fn create_room(
    tx: Transaction<'_>,
    command: &NewCommand,
    members: &[UserId],
    owners: &[UserId],
) -> Result<Applied, StoreError> {
    if command.room.is_direct() {
        return Ok(Applied::Refused(Refused::ReservedId));
    }
    let room = command.room.as_str();
    let created = tx.execute(sql::CREATE_ROOM, &[&room]).await? == 1;
    // A user creating a room owns it: one that exists is theirs
    // to join, not to take.
    if !created && command.actor != Actor::Service {
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
    finish(tx, command, created, None, changed).await
}

/// Changes one member as decided, with the room's row locked, and appends
/// the change's event, after the claim.
async fn change_member(
    tx: Transaction<'_>,
    command: &NewCommand,
    user: &UserId,
    change: &MemberChange,
) -> Result<Applied, StoreError> {
    let room = command.room.as_str();
    let Some(head) = tx.query_opt(sql::LOCK_ROOM, &[&room]).await? else {
        return Ok(Applied::Refused(Refused::RoomMissing));
    };
    if head.get::<_, bool>(1) && matches!(change, MemberChange::Add) {
        return Ok(Applied::Refused(Refused::DirectRoom));
    }
    // Test builds: a process frozen holding the room's row
    // (`return(<ms>)`), for `idle_in_transaction_timeout_ms` to cut.
    if let Some(ms) = fail::eval("store-command-room-locked", |ms| ms?.parse().ok()).flatten() {
        tracing::warn!(ms, "failpoint: holding the room's row");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let (kind, access) = match decide(&tx, command, user, change).await? {
        Decision::Refused(refused) => return Ok(Applied::Refused(refused)),
        Decision::Unchanged => return finish(tx, command, false, None, Vec::new()).await,
        Decision::Add(access) => {
            add_member(&tx, room, user, access).await?;
            (EntryKind::MemberJoined, Some(access))
        }
        Decision::Remove => {
            tx.execute(sql::REMOVE_MEMBER, &[&room, &user.as_str()])
                .await?;
            (EntryKind::MemberLeft, None)
        }
        Decision::SetAccess(access) => {
            let bits = i16::from(access.permissions.bits());
            tx.execute(
                sql::SET_ACCESS,
                &[&room, &user.as_str(), &access.role.as_str(), &bits],
            )
            .await?;
            (EntryKind::RoleChanged, Some(access))
        }
    };
    let seq = head.get::<_, i64>(0) + 1;
    let event = append_event(&tx, command, user, seq, kind, access).await?;
    finish(
        tx,
        command,
        false,
        Some(event),
        vec![(user.clone(), access)],
    )
    .await
}

/// Opens the pair's direct room, after the claim: made with both as plain
/// members if new (no events, as for any new room); an actor who left is
/// added back (a `member_joined`), a peer who left is not.
async fn open_direct(
    tx: Transaction<'_>,
    command: &NewCommand,
    peer: &UserId,
) -> Result<Applied, StoreError> {
    let Actor::User(me) = &command.actor else {
        return Ok(Applied::Refused(Refused::NotThePair));
    };
    if me == peer {
        return Ok(Applied::Refused(Refused::DirectWithSelf));
    }
    if command.room != RoomId::direct(me, peer) {
        return Ok(Applied::Refused(Refused::NotThePair));
    }
    let room = command.room.as_str();
    let access = Access::new(Role::Member);
    if tx.execute(sql::CREATE_DIRECT_ROOM, &[&room]).await? == 1 {
        for user in [me, peer] {
            add_member(&tx, room, user, access).await?;
        }
        let changed = vec![(me.clone(), Some(access)), (peer.clone(), Some(access))];
        return finish(tx, command, true, None, changed).await;
    }
    let Some(head) = tx.query_opt(sql::LOCK_ROOM, &[&room]).await? else {
        return Ok(Applied::Refused(Refused::RoomMissing));
    };
    if !head.get::<_, bool>(1) {
        // Made under this id before direct rooms reserved it.
        return Ok(Applied::Refused(Refused::ReservedId));
    }
    if !add_member(&tx, room, me, access).await? {
        return finish(tx, command, false, None, Vec::new()).await;
    }
    let seq = head.get::<_, i64>(0) + 1;
    let kind = EntryKind::MemberJoined;
    let event = append_event(&tx, command, me, seq, kind, Some(access)).await?;
    let changed = vec![(me.clone(), Some(access))];
    finish(tx, command, false, Some(event), changed).await
}

/// Locks the room's row and checks that the actor may change the room
/// itself (an owner, or the service); the refusal if not.
async fn lock_as_owner(
    tx: &Transaction<'_>,
    command: &NewCommand,
) -> Result<Option<Refused>, StoreError> {
    let room = command.room.as_str();
    if tx.query_opt(sql::LOCK_ROOM, &[&room]).await?.is_none() {
        return Ok(Some(Refused::RoomMissing));
    }
    if let Actor::User(me) = &command.actor {
        let access = access_in(tx, &command.room, me).await?;
        if access.is_none_or(|a| a.role != Role::Owner) {
            return Ok(Some(Refused::NotOwner));
        }
    }
    Ok(None)
}

/// Deletes the room with everything stored for it, after the claim, with
/// its row locked (a batch of sends for it waits, then finds no room). The
/// deleting command's own record stays, so a resend is answered as done.
/// One transaction: no reader sees half a room, and a room made again
/// under its id starts empty, at seq 1.
async fn delete_room(tx: Transaction<'_>, command: &NewCommand) -> Result<Applied, StoreError> {
    let room = command.room.as_str();
    if let Some(refused) = lock_as_owner(&tx, command).await? {
        return Ok(Applied::Refused(refused));
    }
    let members = tx.query(sql::DELETE_ROOM_MEMBERS, &[&room]).await?;
    let changed = members
        .iter()
        .filter_map(|row| UserId::parse(row.get::<_, String>(0)).ok())
        .map(|user| (user, None))
        .collect();
    tx.execute(sql::DELETE_ROOM_MARKERS, &[&room]).await?;
    tx.execute(sql::DELETE_ROOM_SCHEDULED, &[&room]).await?;
    tx.execute(sql::DELETE_ROOM_COMMANDS, &[&room, &command.id])
        .await?;
    tx.execute(sql::DELETE_ROOM_GAPS, &[&room]).await?;
    tx.execute(sql::DELETE_ROOM, &[&room]).await?;
    finish(tx, command, false, None, changed).await
}

/// Sets the room's own limits (the service, or an owner), after the
/// claim, with the room's row locked; no event.
async fn set_retention(
    tx: Transaction<'_>,
    command: &NewCommand,
    limits: Limits,
) -> Result<Applied, StoreError> {
    let room = command.room.as_str();
    if let Some(refused) = lock_as_owner(&tx, command).await? {
        return Ok(Applied::Refused(refused));
    }
    let (secs, count) = (limits.max_age_secs, limits.count);
    tx.execute(sql::SET_RETENTION, &[&room, &secs, &count])
        .await?;
    finish(tx, command, false, None, Vec::new()).await
}

/// Stores the event of a change to `user` at `seq` and moves the room's
/// head to it.
async fn append_event(
    tx: &Transaction<'_>,
    command: &NewCommand,
    user: &UserId,
    seq: i64,
    kind: EntryKind,
    access: Option<Access>,
) -> Result<Message, StoreError> {
    let room = command.room.as_str();
    let id = Uuid::now_v7();
    let event = Message {
        room: room.to_owned(),
        seq: seq as u64,
        id: id.to_string(),
        sender: command.actor.as_str().to_owned(),
        ts_ms: chat_protocol::now_ms(),
        client_msg_id: command.id.clone(),
        kind: kind.as_str().to_owned(),
        member: user.to_string(),
        access: access.map(Access::to_proto),
        ..Message::default()
    };
    tx.execute(
        sql::INSERT_EVENT,
        &[
            &room,
            &seq,
            &id,
            &event.sender,
            &command.id,
            &user.as_str(),
            &event.ts_ms,
            &kind.as_str(),
            &access.map(Access::encode),
        ],
    )
    .await?;
    tx.execute(sql::SET_ROOM_HEAD, &[&room, &seq]).await?;
    Ok(event)
}

/// Records what the command did and commits.
async fn finish(
    tx: Transaction<'_>,
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
    tx: &Transaction<'_>,
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
            .query_opt(sql::MESSAGE_AT, &[&room, &seq])
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

/// Adds a member with this access; false if they were one already.
async fn add_member(
    tx: &Transaction<'_>,
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
