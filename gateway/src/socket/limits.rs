//! What one client may cost everyone else: how fast a socket and a user may
//! send (token buckets, `governor`), and how many sockets one user or one
//! client address may hold on this gateway. Per gateway: a user spread over
//! several gateways gets each gateway's allowance.

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::http::HeaderMap;
use chat_protocol::UserId;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::{config::Limits, error::GatewayError, metrics};

/// How often users' buckets that have refilled are forgotten (a full
/// bucket is the same as none).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The gateway's limits, shared by the upgrade handler and every socket.
pub struct Limiter {
    /// One bucket per user, shared by all their sockets here. It outlives
    /// the sockets until it has refilled, so reconnecting buys nothing.
    user_sends: DefaultKeyedRateLimiter<UserId>,
    /// One bucket per user for reads (history, search, room lists).
    user_reads: DefaultKeyedRateLimiter<UserId>,
    /// Each socket's own bucket.
    conn_sends: Quota,
    /// Consecutive refused sends that close a socket.
    close_after: u32,
    users: Arc<Sockets<UserId>>,
    addresses: Arc<Sockets<IpAddr>>,
    trust_forwarded_for: bool,
}

impl Limiter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            user_sends: RateLimiter::keyed(quota(
                limits.send_rate_per_user,
                limits.send_burst_per_user,
            )),
            user_reads: RateLimiter::keyed(quota(
                limits.read_rate_per_user,
                limits.read_burst_per_user,
            )),
            conn_sends: quota(
                limits.send_rate_per_connection,
                limits.send_burst_per_connection,
            ),
            close_after: limits.rate_limited_close_after.get(),
            users: Sockets::new(limits.max_connections_per_user.get()),
            addresses: Sockets::new(limits.max_connections_per_ip.get()),
            trust_forwarded_for: limits.trust_forwarded_for,
        }
    }

    /// Forgets refilled user buckets every minute until `shutdown`, so
    /// memory follows the users who sent recently, not all who ever did.
    pub async fn prune(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    self.user_sends.retain_recent();
                    self.user_reads.retain_recent();
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Spends one of the user's reads; `rate_limited` when none is left.
    pub fn read(&self, user: &UserId) -> Result<(), GatewayError> {
        if self.user_reads.check_key(user).is_err() {
            metrics::limit_refused("read_rate_user");
            return Err(GatewayError::RateLimited);
        }
        Ok(())
    }

    /// The client's address: the TCP peer, or with `trust_forwarded_for`
    /// the last `X-Forwarded-For` entry (the one our proxy appended; the
    /// ones before it are whatever the client claimed).
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let forwarded = || {
            let last = headers.get_all("x-forwarded-for").iter().next_back()?;
            last.to_str().ok()?.rsplit(',').next()?.trim().parse().ok()
        };
        let ip = if self.trust_forwarded_for {
            forwarded().unwrap_or(peer.ip())
        } else {
            peer.ip()
        };
        // An IPv4 client of a dual-stack listener counts as itself.
        ip.to_canonical()
    }

    /// Counts a socket against its client address, or refuses it.
    pub fn admit_address(&self, ip: IpAddr) -> Result<Slot<IpAddr>, GatewayError> {
        self.addresses.admit(ip).ok_or_else(|| {
            metrics::limit_refused("connections_per_ip");
            GatewayError::TooManySockets("this address has as many sockets open as it may")
        })
    }

    /// Counts a socket against its user, or refuses it.
    pub fn admit_user(&self, user: &UserId) -> Result<Slot<UserId>, GatewayError> {
        self.users.admit(user.clone()).ok_or_else(|| {
            metrics::limit_refused("connections_per_user");
            GatewayError::TooManySockets("this user has as many sockets open as they may")
        })
    }

    /// A new socket's send allowance.
    pub fn send_budget(&self) -> SendBudget {
        SendBudget {
            bucket: RateLimiter::direct(self.conn_sends),
            refused_in_a_row: 0,
        }
    }
}

/// `rate` per second, `burst` at once.
fn quota(rate: NonZeroU32, burst: NonZeroU32) -> Quota {
    Quota::per_second(rate).allow_burst(burst)
}

/// One socket's send allowance: its own bucket, and how many of its sends
/// in a row have been refused.
pub struct SendBudget {
    bucket: DefaultDirectRateLimiter,
    refused_in_a_row: u32,
}

impl SendBudget {
    /// Spends one send from the socket's bucket, then from its user's. The
    /// socket's comes first, so a flooding socket is stopped by its own
    /// bucket without draining its user's other sockets.
    pub fn spend(&mut self, limiter: &Limiter, user: &UserId) -> Result<(), GatewayError> {
        let refused = if self.bucket.check().is_err() {
            Some(("send_rate_connection", "this socket"))
        } else if limiter.user_sends.check_key(user).is_err() {
            Some(("send_rate_user", "this user's sockets together"))
        } else {
            None
        };
        match refused {
            None => {
                self.refused_in_a_row = 0;
                Ok(())
            }
            Some((label, whose)) => {
                metrics::limit_refused(label);
                self.refused_in_a_row = self.refused_in_a_row.saturating_add(1);
                Err(GatewayError::SendRate(whose))
            }
        }
    }

    /// Whether the socket kept sending through `close_after` refusals.
    pub fn is_flooding(&self, limiter: &Limiter) -> bool {
        self.refused_in_a_row >= limiter.close_after
    }
}

/// Open sockets per key (a user, an address), each key capped at `max`.
struct Sockets<K> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

/// One open socket counted against its key; uncounted when dropped.
pub struct Slot<K: Hash + Eq> {
    sockets: Arc<Sockets<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Sockets<K> {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn admit(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            sockets: Arc::clone(self),
            key,
        })
    }
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self
            .sockets
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    fn limits() -> Limits {
        let n = |n: u32| NonZeroU32::new(n).unwrap();
        Limits {
            send_rate_per_connection: n(1),
            send_burst_per_connection: n(3),
            send_rate_per_user: n(1),
            send_burst_per_user: n(5),
            rate_limited_close_after: n(2),
            max_connections_per_user: NonZeroUsize::new(2).unwrap(),
            max_connections_per_ip: NonZeroUsize::MIN,
            ..Limits::default()
        }
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name.to_string()).unwrap()
    }

    #[test]
    fn a_socket_gets_its_burst_then_refusals_and_is_flooding_after_enough() {
        let limiter = Limiter::new(&limits());
        let mut budget = limiter.send_budget();
        let alice = user("alice");
        for _ in 0..3 {
            budget.spend(&limiter, &alice).unwrap();
        }
        assert!(matches!(
            budget.spend(&limiter, &alice),
            Err(GatewayError::SendRate("this socket"))
        ));
        assert!(!budget.is_flooding(&limiter));
        assert!(budget.spend(&limiter, &alice).is_err());
        assert!(budget.is_flooding(&limiter));
    }

    #[test]
    fn a_users_sockets_share_the_user_bucket() {
        let limiter = Limiter::new(&limits());
        let (mut one, mut two) = (limiter.send_budget(), limiter.send_budget());
        let alice = user("alice");
        for _ in 0..3 {
            one.spend(&limiter, &alice).unwrap();
        }
        two.spend(&limiter, &alice).unwrap();
        two.spend(&limiter, &alice).unwrap();
        assert!(matches!(
            two.spend(&limiter, &alice),
            Err(GatewayError::SendRate("this user's sockets together"))
        ));
        // Another user is not affected.
        limiter.send_budget().spend(&limiter, &user("bob")).unwrap();
    }

    #[test]
    fn sockets_are_capped_per_key_and_released_on_drop() {
        let limiter = Limiter::new(&limits());
        let alice = user("alice");
        let first = limiter.admit_user(&alice).unwrap();
        let _second = limiter.admit_user(&alice).unwrap();
        assert!(limiter.admit_user(&alice).is_err());
        assert!(limiter.admit_user(&user("bob")).is_ok());
        drop(first);
        assert!(limiter.admit_user(&alice).is_ok());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let slot = limiter.admit_address(ip).unwrap();
        assert!(limiter.admit_address(ip).is_err());
        drop(slot);
        // Only `_second` is still open; dropped slots leave no entry behind.
        assert_eq!(limiter.users.open.lock().unwrap().get(&alice), Some(&1));
        assert_eq!(limiter.users.open.lock().unwrap().len(), 1);
        assert!(limiter.addresses.open.lock().unwrap().is_empty());
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted_and_only_its_last_entry() {
        let peer: SocketAddr = "[::ffff:127.0.0.9]:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        let untrusting = Limiter::new(&limits());
        assert_eq!(
            untrusting.client_ip(peer, &headers),
            "127.0.0.9".parse::<IpAddr>().unwrap()
        );
        let trusting = Limiter::new(&Limits {
            trust_forwarded_for: true,
            ..limits()
        });
        assert_eq!(
            trusting.client_ip(peer, &headers),
            "2.2.2.2".parse::<IpAddr>().unwrap()
        );
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(
            trusting.client_ip(peer, &headers),
            "127.0.0.9".parse::<IpAddr>().unwrap()
        );
    }
}
