//! The one task that keeps this gateway's part of presence: how many
//! sockets each user has here, the grace before one whose last socket
//! closed goes offline (a reconnect within it changes nothing anyone
//! sees), a heartbeat in Redis, and the reaping of gateways whose
//! heartbeat stopped: their users leave their sets, and those left with
//! none go offline. Every so often it mends what Redis lost (restarted
//! empty: every user put back) and what failed calls left undone, at one
//! command a gateway when nothing did.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chat_cache::presence;
use chat_protocol::UserId;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{announce, Deps, Event};

/// How long the goodbye at shutdown may take; gateways that outlive this
/// one reap the rest.
const GOODBYE: Duration = Duration::from_secs(3);

/// A user with a socket here now, or until their grace runs out.
#[derive(Default)]
struct Local {
    sockets: u32,
    /// When their grace runs out, once their last socket here closed.
    leaving: Option<Instant>,
}

struct Tracker {
    deps: Deps,
    users: HashMap<UserId, Local>,
    /// Grace deadlines, soonest first (stale ones are skipped).
    graces: BinaryHeap<Reverse<(Instant, UserId)>>,
    /// Users whose arrival or departure Redis did not take: done again at
    /// the next mend (the arrival if they are still here, else the
    /// departure).
    unsettled: HashSet<UserId>,
    /// Whether this gateway's record in Redis may still name users of a
    /// gateway of its id that died before: checked at the next mend.
    leftovers: bool,
}

pub(super) async fn run(
    deps: Deps,
    mut events: mpsc::UnboundedReceiver<Event>,
    shutdown: CancellationToken,
) {
    let mut tracker = Tracker {
        deps,
        users: HashMap::new(),
        graces: BinaryHeap::new(),
        unsettled: HashSet::new(),
        leftovers: true,
    };
    // A gateway of this id that died before: its users leave first.
    tracker.leave_leftovers().await;
    let mut beat = tokio::time::interval(tracker.deps.config.heartbeat);
    let mut mend = tokio::time::interval(tracker.deps.config.mend_every);
    loop {
        let grace = tracker.graces.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => tracker.on_event(event).await,
                None => break,
            },
            () = tokio::time::sleep_until(grace.unwrap_or_else(Instant::now)), if grace.is_some() => {
                tracker.graces_due().await;
            }
            _ = beat.tick() => tracker.beat().await,
            _ = mend.tick() => tracker.mend().await,
            () = shutdown.cancelled() => break,
        }
    }
    // Sockets closed before shutdown fired; their events are still queued.
    while let Ok(event) = events.try_recv() {
        tracker.on_event(event).await;
    }
    let _ = tokio::time::timeout(GOODBYE, tracker.goodbye()).await;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Tracker {
    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected(user) => {
                let local = self.users.entry(user.clone()).or_default();
                local.sockets += 1;
                let arrived = local.sockets == 1 && local.leaving.take().is_none();
                if arrived {
                    self.arrive(user).await;
                }
            }
            Event::Disconnected(user) => {
                let Some(local) = self.users.get_mut(&user) else {
                    return;
                };
                local.sockets = local.sockets.saturating_sub(1);
                if local.sockets == 0 {
                    let at = Instant::now() + self.deps.config.grace;
                    local.leaving = Some(at);
                    self.graces.push(Reverse((at, user)));
                }
            }
        }
    }

    async fn arrive(&mut self, user: UserId) {
        let mut redis = self.deps.redis.clone();
        match presence::arrive(&mut redis, &user, &self.deps.gateway_id).await {
            Ok(true) => self.announce(user, true),
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "presence not recorded");
                self.unsettled.insert(user);
            }
        }
    }

    /// Users whose grace ran out with no socket back: they leave.
    async fn graces_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.graces.peek() {
            if *at > now {
                break;
            }
            let Reverse((at, user)) = self.graces.pop().expect("peeked");
            let current = self.users.get(&user).and_then(|l| l.leaving);
            if current == Some(at) {
                self.users.remove(&user);
                let gateway = self.deps.gateway_id.clone();
                if !self.depart(user.as_str(), &gateway).await {
                    self.unsettled.insert(user);
                }
            }
        }
    }

    /// Takes `user` out of their set for `gateway`; false if Redis failed.
    async fn depart(&self, user: &str, gateway: &str) -> bool {
        let mut redis = self.deps.redis.clone();
        match presence::depart(&mut redis, user, gateway).await {
            Ok(true) => {
                if let Ok(user) = UserId::parse(user) {
                    self.announce(user, false);
                }
                true
            }
            Ok(false) => true,
            Err(e) => {
                tracing::debug!(error = %e, "presence not cleared");
                false
            }
        }
    }

    fn announce(&self, user: UserId, online: bool) {
        let (store, signals) = (self.deps.store.clone(), self.deps.signals.clone());
        tokio::spawn(announce::to_rooms(store, signals, user, online));
    }

    /// This gateway is alive; gateways silent for longer than the TTL are
    /// reaped, each by the one gateway that claims it.
    async fn beat(&mut self) {
        let mut redis = self.deps.redis.clone();
        let now = now_ms();
        if let Err(e) = presence::heartbeat(&mut redis, &self.deps.gateway_id, now).await {
            return tracing::debug!(error = %e, "presence heartbeat failed");
        }
        let ttl = self.deps.config.gateway_ttl.as_millis() as i64;
        let Ok(silent) = presence::silent_since(&mut redis, now - ttl).await else {
            return;
        };
        for gateway in silent {
            if presence::claim(&mut redis, &gateway).await.unwrap_or(false) {
                tracing::info!(gateway, "reaping the presence of a silent gateway");
                if !self.reap(&gateway).await {
                    tracing::warn!(gateway, "reaping failed; again at the next heartbeat");
                }
            }
        }
    }

    /// Takes every user of `gateway` out of their sets, then its own set;
    /// false (and the gateway left to be reaped again) if Redis failed.
    async fn reap(&self, gateway: &str) -> bool {
        let mut redis = self.deps.redis.clone();
        let Ok(users) = presence::users_of(&mut redis, gateway).await else {
            return false;
        };
        let mut done = true;
        for user in &users {
            done &= self.depart(user, gateway).await;
        }
        if done {
            done = presence::forget(&mut redis, gateway).await.is_ok();
        }
        if !done {
            // Silent since the epoch: the next heartbeat anywhere reaps it.
            let _ = presence::heartbeat(&mut redis, gateway, 0).await;
        }
        done
    }

    /// Users that a gateway of this id, dead before this one started, left
    /// in their sets: out, unless they are back here since.
    async fn leave_leftovers(&mut self) {
        let mut redis = self.deps.redis.clone();
        let gateway = self.deps.gateway_id.clone();
        let Ok(recorded) = presence::users_of(&mut redis, &gateway).await else {
            return;
        };
        self.leftovers = false;
        for user in recorded {
            let Ok(user) = UserId::parse(user) else {
                continue;
            };
            if !self.users.contains_key(&user) && !self.depart(user.as_str(), &gateway).await {
                self.unsettled.insert(user);
            }
        }
    }

    /// Settles what failed before, and puts every user back into their
    /// sets if Redis lost this gateway's record of them (restarted empty).
    async fn mend(&mut self) {
        if self.leftovers {
            self.leave_leftovers().await;
        }
        let mut redis = self.deps.redis.clone();
        let gateway = self.deps.gateway_id.clone();
        for user in std::mem::take(&mut self.unsettled) {
            if self.users.contains_key(&user) {
                self.arrive(user).await;
            } else if !self.depart(user.as_str(), &gateway).await {
                self.unsettled.insert(user);
            }
        }
        if self.users.is_empty() {
            return;
        }
        match presence::recorded(&mut redis, &gateway).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("presence lost by Redis: putting this gateway's users back");
                let held: Vec<UserId> = self.users.keys().cloned().collect();
                for chunk in held.chunks(500) {
                    if presence::reassert(&mut redis, chunk, &gateway)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "presence not mended"),
        }
    }

    /// At shutdown: every user still held leaves, then the gateway. If
    /// Redis failed any of it, the gateway stays on the heartbeat set, and
    /// another reaps what is left once its heartbeat is old.
    async fn goodbye(&mut self) {
        let gateway = self.deps.gateway_id.clone();
        let mut done = true;
        let leaving = std::mem::take(&mut self.users).into_keys();
        for user in leaving.chain(std::mem::take(&mut self.unsettled)) {
            done &= self.depart(user.as_str(), &gateway).await;
        }
        let mut redis = self.deps.redis.clone();
        if done && presence::forget(&mut redis, &gateway).await.is_ok() {
            let _ = presence::claim(&mut redis, &gateway).await;
        }
    }
}
