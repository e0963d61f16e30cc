//! Stores a batch of sends in one transaction, then writes the rooms'
//! Redis windows, fans out and acks. The order is the guarantee: nothing is acked before its
//! commit is known, and a crash anywhere means redelivery, which finds the
//! stored row (idempotent on room, sender, client_msg_id) and fans out again.
//!
//! A send is settled once: acked with its message once every send of that
//! message is (`pulled`), or handed to the retry policy.
//!
//! One send Postgres refuses (a NUL byte in its body, say) fails the whole
//! statement. Such a batch is split in halves, stored first half first, until
//! the refused send is alone: every other send is stored, in order, and only
//! that one is dead-lettered.

use std::ops::Range;

use chat_proto::v1::Message;
use chat_protocol::{kind::EntryKind, RoomId, Seq};
use chat_store::{NewMessage, Persisted};
use tokio::time::Instant;
use tracing::Span;

use crate::{
    ctx::Ctx,
    error::WorkerError,
    fanout, metrics, notify,
    pulled::Pulled,
    retry::{self, Decision, Settle},
};

struct Item {
    send: Pulled,
    /// Continues the sender's trace, when the send carried one.
    span: Option<Span>,
}

impl Item {
    fn to_store(&self) -> NewMessage {
        NewMessage {
            room: self.send.room.clone(),
            sender: self.send.envelope.sender.clone(),
            client_msg_id: self.send.envelope.client_msg_id.clone(),
            body: self.send.envelope.body.clone(),
            kind: self.send.entry.kind,
            target: self.send.entry.target,
            id: None,
        }
    }
}

/// Sends of a batch that could not be stored, the error, and the tries.
type Failed = (Range<usize>, WorkerError, u32);

/// Stores, publishes and settles a batch of sends pulled for one lane;
/// each send that cannot be stored is handed to the retry policy instead.
#[tracing::instrument(skip_all, fields(size = chunk.len()))]
pub async fn handle_batch(ctx: &Ctx, chunk: Vec<Pulled>) {
    if chunk.is_empty() {
        return;
    }
    let items: Vec<Item> = chunk
        .into_iter()
        .map(|send| Item {
            span: send.span(),
            send,
        })
        .collect();
    // Test builds: a worker that dies holding a pulled, unstored batch.
    fail::fail_point!("worker-before-store", |_| std::process::abort());
    let began = std::time::Instant::now();
    let (outcomes, failed) = store(ctx, &items).await;
    let committed = std::time::Instant::now();
    let commit = (committed - began).as_secs_f64();
    for item in &items {
        let lane = (began - item.send.pulled_at()).as_secs_f64();
        metrics::stage(metrics::Stage::Lane, lane);
    }
    metrics::stage_many(metrics::Stage::Commit, commit, items.len());
    // Test builds: a worker that dies between the commit and the fan-out.
    fail::fail_point!("worker-after-commit", |_| std::process::abort());
    let Sorted {
        outbox,
        fresh,
        changed,
        changing,
        answered,
        missing,
        notify,
    } = sort(ctx, &items, outcomes);
    // Before the receipts: whoever is told an entry is stored then finds
    // it, and the message it changed as it stands, in the newest page.
    let changes = !changing.is_empty();
    let window = update_window(ctx, fresh, &changed, changes).await;
    let mut unpublished = outbox.publish(ctx).await;
    let fanout = committed.elapsed().as_secs_f64();
    metrics::stage_many(metrics::Stage::Fanout, fanout, items.len());
    if !notify.is_empty() {
        unpublished.extend(notify::enqueue(ctx, &notify).await);
    }
    // An event whose message's new state was not written to the window
    // is redelivered, found stored, and written again.
    let mut redo: Vec<Option<&WorkerError>> = vec![None; items.len()];
    for &i in &changing {
        redo[i] = window.as_ref().err();
    }
    let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    let mut take = |i: usize| items[i].take().map(|item| item.send);
    for (part, e, attempts) in failed {
        for send in part.filter_map(&mut take) {
            ctx.fail_after(send, &e, attempts).await;
        }
    }
    for send in missing.into_iter().filter_map(&mut take) {
        ctx.fail(send, &WorkerError::RoomMissing).await;
    }
    let e = WorkerError::nats("fan-out not published");
    for send in unpublished.iter().filter_map(|&i| take(i)) {
        ctx.fail(send, &e).await;
    }
    for i in answered.into_iter().chain(changing) {
        let Some(send) = take(i) else { continue };
        match redo[i] {
            None => send.settle(Settle::Done).await,
            Some(e) => ctx.fail(send, e).await,
        }
    }
}

/// Writes the batch's new entries into their rooms' Redis windows, with
/// the current state of the messages its events changed and of entries
/// found stored already. New entries alone need no care (a window that
/// misses one is not whole, so readers go to Postgres); a changed
/// message's old state would be read as current, so that failure is
/// returned when the batch changed one.
async fn update_window(
    ctx: &Ctx,
    mut entries: Vec<(RoomId, Message)>,
    changed: &[(RoomId, Seq)],
    changes: bool,
) -> Result<(), WorkerError> {
    let keep = ctx.config.recent_cache_len.get();
    if !changed.is_empty() {
        let states = match ctx.store.messages_at(changed).await {
            Ok(states) => states,
            Err(e) if !changes => {
                tracing::warn!(error = %e, "stored entries not read back for the window");
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        entries.extend(
            states
                .into_iter()
                .filter_map(|m| Some((RoomId::parse(m.room.clone()).ok()?, m))),
        );
    }
    let written = chat_cache::remember(&mut ctx.redis.clone(), &entries, keep).await;
    match written {
        Ok(()) => Ok(()),
        Err(e) if !changes => {
            // Only a cache: gateways fall back to Postgres.
            tracing::warn!(error = %e, "recent-message window not updated");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A stored batch's outcomes, sorted by what follows for each item.
#[derive(Default)]
struct Sorted {
    outbox: fanout::Outbox,
    /// Entries stored by this batch, for the rooms' windows.
    fresh: Vec<(RoomId, Message)>,
    /// Entries to write into the window as they stand now: the messages
    /// that events (and replies) of the batch changed, and entries found
    /// stored already. `changing` are the events and replies, resends
    /// included, so that a redelivery rewrites the window.
    changed: Vec<(RoomId, Seq)>,
    changing: Vec<usize>,
    /// Items answered (stored or refused) that are done once published.
    answered: Vec<usize>,
    /// Items whose room does not exist.
    missing: Vec<usize>,
    /// Stored chat messages to queue for offline notifications.
    notify: Vec<(usize, RoomId, Message)>,
}

/// Sorts a batch's outcomes, gathering what is published for each.
fn sort(ctx: &Ctx, items: &[Item], outcomes: Vec<(usize, Persisted)>) -> Sorted {
    let mut sorted = Sorted::default();
    for (i, outcome) in outcomes {
        let item = &items[i];
        let (room, envelope) = (&item.send.room, &item.send.envelope);
        match outcome {
            Persisted::Stored { message, fresh } => {
                metrics::envelope(if fresh { "stored" } else { "duplicate" });
                if fresh {
                    sorted.fresh.push((room.clone(), message.clone()));
                } else {
                    // Found stored (a redelivery): the window may have
                    // missed it, and it may have changed since.
                    sorted.changed.push((room.clone(), Seq::new(message.seq)));
                }
                // Queued when stored, and again when redelivered (a crash
                // may have come between): not for a client's resend.
                let chat = item.send.entry.kind == EntryKind::Message;
                let first = fresh || item.send.delivered() > 1;
                if chat && first && notify::wanted(ctx, room, &message) {
                    sorted.notify.push((i, room.clone(), message.clone()));
                }
                if let Some(target) = item.send.entry.target {
                    sorted.changed.push((room.clone(), target));
                    sorted.changing.push(i);
                } else {
                    sorted.answered.push(i);
                }
                let span = item.span.as_ref();
                sorted.outbox.stored(i, room, envelope, message, span);
            }
            Persisted::RoomMissing => sorted.missing.push(i),
            // An answer, not a failure: nothing to retry or keep.
            Persisted::Refused(refusal) => {
                metrics::envelope("refused");
                let (code, reason) = (refusal.code(), refusal.reason());
                sorted.outbox.refused(envelope, code, reason);
                sorted.answered.push(i);
            }
            Persisted::Unchanged => {
                metrics::envelope("unchanged");
                sorted.outbox.unchanged(envelope);
                sorted.answered.push(i);
            }
        }
    }
    sorted
}

/// Stores the items and returns the outcome of each one stored, by index,
/// in item order, and the parts that could not be stored, for the retry
/// policy. A part that Postgres refuses is split in halves, the first
/// stored first, so each room keeps its order. A failure worth retrying is
/// retried in place, with backoff, before anything after it is stored (the
/// lane keeps the sends alive meanwhile): a nak would let later sends of
/// the room overtake it. Once the retry budget is spent, that part and
/// everything after it go to the dead-letter stream.
async fn store(ctx: &Ctx, items: &[Item]) -> (Vec<(usize, Persisted)>, Vec<Failed>) {
    let mut done = Vec::with_capacity(items.len());
    let mut failed = Vec::new();
    // Parts still to store; the next one is last.
    let all: Range<usize> = 0..items.len();
    let mut todo = vec![all];
    // Tries of the part at hand.
    let mut attempts = 1;
    while let Some(part) = todo.pop() {
        let batch: Vec<NewMessage> = items[part.clone()].iter().map(Item::to_store).collect();
        let started = Instant::now();
        let persisted = ctx.store.persist(&batch).await;
        metrics::batch(batch.len(), started.elapsed());
        let e = match persisted {
            Ok(outcomes) => {
                done.extend(part.zip(outcomes));
                attempts = 1;
                continue;
            }
            Err(e) => WorkerError::from(e),
        };
        if e.is_permanent() && part.len() > 1 {
            tracing::warn!(error = %e.detail(), size = part.len(), "batch refused; splitting it");
            metrics::split();
            let middle = part.start + part.len() / 2;
            todo.push(middle..part.end);
            todo.push(part.start..middle);
            continue;
        }
        if let Decision::Retry(delay) = retry::decide(&ctx.config.retry, &e, attempts) {
            tracing::warn!(error = %e.detail(), attempts, ?delay, "batch not stored; retrying it");
            metrics::retried(e.label());
            tokio::time::sleep(delay).await;
            attempts += 1;
            todo.push(part);
            continue;
        }
        let part = if e.is_permanent() {
            part
        } else {
            // The parts still to do are exactly the items after this one.
            todo.clear();
            part.start..items.len()
        };
        failed.push((part, e, attempts));
        attempts = 1;
    }
    (done, failed)
}
