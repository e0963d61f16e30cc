//! Commands: changes to rooms (create one, add or remove a member), pulled
//! from their own stream and consumer, so that a backlog of sends never
//! stands in front of them. Each is applied in one transaction, once per
//! id (`Store::apply`, which checks the rules of who may change whom);
//! then Redis's membership entry is set (not left to expire), the change's
//! event is cached and fanned out like a message, a removal or a change of
//! role or flags is announced on the room's announcement subject for every
//! gateway to apply at once, the asker gets its reply, and only then is
//! the command acked. A crash anywhere before the ack means redelivery, which
//! finds the command applied and does the rest again.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use chat_proto::internal::{
    announcement::Change as Announced, command::Change as Requested, AccessChanged, Announcement,
    Command, CommandReply, MemberAdded, MemberRemoved, RoomDeleted,
};
use chat_proto::v1::Message;
use chat_protocol::{
    access::{Access, Actor, Permissions, Refusal, Role},
    keys,
    kind::EntryKind,
    subjects, ErrorCode, RoomId, UserId,
};
use chat_store::{Applied, Change, Limits, MemberChange, NewCommand, Refused};
use futures::StreamExt;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{ctx::Ctx, error::WorkerError, fanout, metrics, scheduled};

type PullConsumer = jetstream::consumer::Consumer<jetstream::consumer::pull::Config>;

/// Pause after a failed pull (NATS down, consumer gone) before the next.
const PULL_RETRY: Duration = Duration::from_millis(250);

/// Applies commands one at a time until shutdown; the one under way is
/// finished first.
pub async fn run(ctx: Arc<Ctx>, consumer: PullConsumer, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        // One at a time: a command waiting in a client buffer would run
        // out its ack wait and be redelivered to another worker.
        let mut commands = match consumer.stream().max_messages_per_batch(1).messages().await {
            Ok(commands) => commands,
            Err(e) => {
                tracing::warn!(error = %e, "pulling commands failed");
                tokio::select! {
                    () = tokio::time::sleep(PULL_RETRY) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        loop {
            let next = tokio::select! {
                next = commands.next() => next,
                () = shutdown.cancelled() => return,
            };
            match next {
                Some(Ok(msg)) => handle(&ctx, &msg).await,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pulling commands failed");
                    break;
                }
                None => break,
            }
        }
    }
}

async fn handle(ctx: &Ctx, msg: &jetstream::Message) {
    let (command, reply_to) = match decode(&msg.payload) {
        Ok(Decoded::Change(command, reply_to)) => (command, reply_to),
        Ok(Decoded::Scheduling(id, room, request, reply_to)) => {
            return match scheduled::answer(ctx, id, request).await {
                Ok(reply) => answer(ctx, msg, reply_to, reply).await,
                Err(e) => ctx.fail_command(msg, &room, &e).await,
            };
        }
        Err(e) => return ctx.fail_command(msg, "undecodable", &e).await,
    };
    let room = command.room.as_str();
    let reply = match ctx.store.apply(&command).await {
        Ok(Applied::Done {
            created,
            event,
            changed,
            ..
        }) => {
            let done = match command.change {
                Change::DeleteRoom => after_deletion(ctx, &command.room, &changed).await,
                _ => after_commit(ctx, &command, created, event.as_ref(), &changed).await,
            };
            if let Err(e) = done {
                return ctx.fail_command(msg, room, &e).await;
            }
            metrics::command(if event.is_some() || created {
                "applied"
            } else {
                "unchanged"
            });
            CommandReply {
                command_id: command.id,
                created,
                event,
                ..CommandReply::default()
            }
        }
        Ok(Applied::Refused(refused)) => {
            metrics::command("refused");
            CommandReply {
                command_id: command.id,
                error: refusal_code(&refused).as_str().into(),
                reason: refused.to_string(),
                ..CommandReply::default()
            }
        }
        Err(e) => return ctx.fail_command(msg, room, &WorkerError::from(e)).await,
    };
    answer(ctx, msg, reply_to, reply).await;
}

/// Replies to the asker, then acks: a crash in between redelivers the
/// command, which finds it applied and answers the same.
async fn answer(ctx: &Ctx, msg: &jetstream::Message, reply_to: String, reply: CommandReply) {
    if subjects::is_inbox(&reply_to) {
        if let Err(e) = ctx
            .publish(reply_to, None, reply.encode_to_vec().into())
            .await
        {
            // The asker times out and asks again; the command is applied.
            tracing::warn!(error = %e, "command reply not sent");
        }
    }
    if let Err(e) = msg.ack().await {
        tracing::warn!(error = %e, "command ack failed");
    }
}

/// The protocol's code for a refused command.
fn refusal_code(refused: &Refused) -> ErrorCode {
    match refused {
        Refused::RoomMissing | Refused::NotAMember(_) => ErrorCode::NotFound,
        Refused::IdReused | Refused::ReservedId | Refused::DirectWithSelf | Refused::NotThePair => {
            ErrorCode::InvalidArgument
        }
        Refused::Rule(Refusal::LastOwner) | Refused::RoomExists | Refused::DirectRoom => {
            ErrorCode::Conflict
        }
        Refused::Rule(_) | Refused::NotOwner => ErrorCode::Forbidden,
    }
}

/// A command as the worker takes it: a change to the room's members, or
/// a scheduled message's (with the room's name, for a dead letter).
enum Decoded {
    Change(NewCommand, String),
    Scheduling(String, String, scheduled::Request, String),
}

fn decode(payload: &[u8]) -> Result<Decoded, WorkerError> {
    let bad = |e: &dyn std::fmt::Display| WorkerError::BadEnvelope(e.to_string());
    let command = Command::decode(payload).map_err(|e| bad(&e))?;
    if let Some(request) = scheduled::decode(&command) {
        let Command {
            command_id,
            room,
            reply_to,
            ..
        } = command;
        return Ok(Decoded::Scheduling(command_id, room, request?, reply_to));
    }
    let user = |u: String| UserId::parse(u).map_err(|e| bad(&e));
    let users = |list: Vec<String>| list.into_iter().map(user).collect::<Result<_, _>>();
    let flags = |bits: u32| {
        u8::try_from(bits)
            .ok()
            .and_then(Permissions::from_bits)
            .ok_or_else(|| bad(&format!("unknown permission bits {bits}")))
    };
    let change = match command.change {
        Some(Requested::CreateRoom(create)) => Change::CreateRoom {
            members: users(create.members)?,
            owners: users(create.owners)?,
        },
        Some(Requested::AddMember(m)) => Change::Member(user(m.user)?, MemberChange::Add),
        Some(Requested::RemoveMember(m)) => Change::Member(user(m.user)?, MemberChange::Remove),
        Some(Requested::OpenDirect(pair)) => Change::OpenDirect(user(pair.peer)?),
        Some(Requested::DeleteRoom(_)) => Change::DeleteRoom,
        Some(Requested::SetRetention(set)) => {
            let limit = |n: i64| match n {
                0 => Ok(None),
                n if n > 0 => Ok(Some(n)),
                _ => Err(bad(&"a retention limit below zero")),
            };
            Change::SetRetention(Limits {
                max_age_secs: limit(set.max_age_secs)?,
                count: limit(set.max_count)?,
            })
        }
        Some(Requested::SetAccess(a)) => Change::Member(
            user(a.user)?,
            MemberChange::SetAccess {
                role: match a.role.as_str() {
                    "" => None,
                    role => Some(Role::parse(role).ok_or_else(|| bad(&"unknown role"))?),
                },
                grant: flags(a.grant)?,
                revoke: flags(a.revoke)?,
            },
        ),
        Some(Requested::Schedule(_) | Requested::CancelScheduled(_)) | None => {
            return Err(bad(&"command without a change"))
        }
    };
    let actor = Actor::parse(command.actor).map_err(|e| bad(&e))?;
    if command.command_id.is_empty() {
        return Err(bad(&"command without an id"));
    }
    let command_id = command.command_id;
    Ok(Decoded::Change(
        NewCommand {
            id: command_id,
            room: RoomId::parse(command.room).map_err(|e| bad(&e))?,
            actor,
            change,
        },
        command.reply_to,
    ))
}

/// Makes everything outside Postgres true after the commit. Every member
/// whose access changed is announced: removed, changed (a role change), or
/// added (for feeds). For a command found applied before (a redelivery, a
/// resend: `changed` is empty), the recent cache and the fan-out are done
/// again (both idempotent), but nothing is announced again: by now the member may have changed again,
/// and the event in the room's sequence applies at the right point anyway.
async fn after_commit(
    ctx: &Ctx,
    command: &NewCommand,
    created: bool,
    event: Option<&Message>,
    changed: &[(UserId, Option<Access>)],
) -> Result<(), WorkerError> {
    let mut redis = ctx.redis.clone();
    set_memberships(&mut redis, &command.room, changed).await;
    if created {
        // A room made again under a deleted one's id: a window a late
        // writer left of the old one must not pass for this one's.
        forget_window(&mut redis, &command.room).await;
    }
    if let Some(event) = event {
        let recent = [(command.room.clone(), event.clone())];
        let keep = ctx.config.recent_cache_len.get();
        if let Err(e) = chat_cache::remember(&mut redis, &recent, keep).await {
            tracing::warn!(error = %e, "recent-message cache not updated");
        }
        fanout::publish_event(ctx, &command.room, event).await?;
    }
    let role_changed =
        event.is_some_and(|e| EntryKind::parse(&e.kind) == Some(EntryKind::RoleChanged));
    for (user, access) in changed {
        let user = user.to_string();
        let change = match access {
            None => Announced::MemberRemoved(MemberRemoved { user }),
            Some(access) if role_changed => Announced::AccessChanged(AccessChanged {
                user,
                access: Some(access.to_proto()),
            }),
            // A new member has no sockets in the room yet; feeds add it.
            Some(_) => Announced::MemberAdded(MemberAdded { user }),
        };
        let announcement = Announcement {
            room: command.room.to_string(),
            change: Some(change),
        };
        announce(ctx, &command.room, announcement).await?;
    }
    Ok(())
}

/// Members' announcements per message when a room is deleted: a large
/// room's list is split, well under NATS's payload limit.
const DELETED_MEMBERS_PER_ANNOUNCEMENT: usize = 1000;

/// Makes everything outside Postgres true after a room's deletion: its
/// members' cache entries say "not a member", its window is gone, and every
/// gateway is told, so its sockets in the room hear `left` (reason
/// `deleted`) and feeds drop it. A redelivery or resend (`changed` empty)
/// forgets the window again but announces nothing: the id may have a new
/// room by now. A gateway that missed the announcement finds the room
/// gone when it next probes the room's head.
async fn after_deletion(
    ctx: &Ctx,
    room: &RoomId,
    changed: &[(UserId, Option<Access>)],
) -> Result<(), WorkerError> {
    let mut redis = ctx.redis.clone();
    set_memberships(&mut redis, room, changed).await;
    forget_window(&mut redis, room).await;
    let members: Vec<String> = changed.iter().map(|(user, _)| user.to_string()).collect();
    for chunk in members.chunks(DELETED_MEMBERS_PER_ANNOUNCEMENT) {
        let announcement = Announcement {
            room: room.to_string(),
            change: Some(Announced::RoomDeleted(RoomDeleted {
                members: chunk.to_vec(),
            })),
        };
        announce(ctx, room, announcement).await?;
    }
    Ok(())
}

async fn announce(ctx: &Ctx, room: &RoomId, announcement: Announcement) -> Result<(), WorkerError> {
    let payload = announcement.encode_to_vec().into();
    ctx.publish(subjects::announcement(room), None, payload)
        .await
}

/// Sets, not deletes, each changed member's cache entry: a gateway that
/// read Postgres before the commit caches its answer only where none is
/// (SET NX), so it cannot put the old answer back. A failure leaves the
/// old answer for its TTL at most.
async fn set_memberships(
    redis: &mut chat_cache::Redis,
    room: &RoomId,
    changed: &[(UserId, Option<Access>)],
) {
    for (user, access) in changed {
        let key = keys::membership(room, user);
        if let Err(e) = chat_cache::set_membership(redis, &key, *access).await {
            tracing::warn!(error = %e, "membership cache entry not updated");
        }
    }
}

async fn forget_window(redis: &mut chat_cache::Redis, room: &RoomId) {
    if let Err(e) = chat_cache::forget_windows(redis, std::slice::from_ref(room)).await {
        tracing::warn!(room = %room, error = %e, "room's cached window not deleted");
    }
}
