//! Who is online, across the gateways. In: this gateway's sockets opening
//! and closing (`Presence::connected`, `disconnected`) and `presence`
//! frames. Out: each user's set of gateways in Redis
//! (`chat_cache::presence`), and `online` signals to the user's rooms when
//! they come online or go offline (`announce`, through `signals`), which the
//! rooms' tasks push as `presenceNow`. `tracker` owns the local counts,
//! the grace before a user goes offline, the heartbeat and the reaping of
//! gateways that died without a goodbye.

mod announce;
mod tracker;

use std::{future::Future, time::Duration};

use chat_cache::Redis;
use chat_config::millis;
use chat_proto::v1::UserPresence;
use chat_protocol::UserId;
use chat_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{error::GatewayError, signals::Signals};

/// Who is online (`presence`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceConfig {
    /// How long a user whose last socket closed still counts as online
    /// here: a reconnect within it is no change anyone sees.
    #[serde(rename = "grace_ms", with = "millis")]
    pub grace: Duration,
    /// How often this gateway tells Redis it is alive, and looks for
    /// gateways that stopped.
    #[serde(rename = "heartbeat_ms", with = "millis::non_zero")]
    pub heartbeat: Duration,
    /// A gateway silent this long is dead: its users go offline. At most
    /// gateway_ttl_ms + heartbeat_ms after a gateway dies.
    #[serde(rename = "gateway_ttl_ms", with = "millis::non_zero")]
    pub gateway_ttl: Duration,
    /// How often the gateway puts its users back into Redis (after Redis
    /// lost them) and takes out those it no longer holds.
    #[serde(rename = "mend_every_ms", with = "millis::non_zero")]
    pub mend_every: Duration,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_millis(5000),
            heartbeat: Duration::from_millis(2000),
            gateway_ttl: Duration::from_millis(10_000),
            mend_every: Duration::from_millis(60_000),
        }
    }
}

/// Most users one `presence` may ask about.
pub const MAX_ASKED: usize = 100;

/// A socket of this gateway opened or closed.
enum Event {
    Connected(UserId),
    Disconnected(UserId),
}

/// This gateway's handle on presence; cheap to clone.
#[derive(Clone)]
pub struct Presence {
    events: mpsc::UnboundedSender<Event>,
}

/// What the tracker needs from the outside world.
pub struct Deps {
    pub gateway_id: String,
    pub redis: Redis,
    pub store: Store,
    pub signals: Signals,
    pub config: PresenceConfig,
}

impl Presence {
    /// The handle, and the tracker to run until `shutdown` (fired once
    /// every socket has closed), when it says goodbye for its users.
    pub fn start(
        deps: Deps,
        shutdown: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send) {
        let (events, rx) = mpsc::unbounded_channel();
        (Self { events }, tracker::run(deps, rx, shutdown))
    }

    pub fn connected(&self, user: &UserId) {
        let _ = self.events.send(Event::Connected(user.clone()));
    }

    pub fn disconnected(&self, user: &UserId) {
        let _ = self.events.send(Event::Disconnected(user.clone()));
    }
}

/// Which of `users` are online, as `asker` may see them: only users who
/// share a room with the asker show online.
pub async fn who(
    store: &Store,
    redis: &Redis,
    asker: &UserId,
    users: Vec<String>,
) -> Result<Vec<UserPresence>, GatewayError> {
    if users.len() > MAX_ASKED {
        return Err(GatewayError::InvalidArgument(format!(
            "presence asks for {} users; at most {MAX_ASKED}",
            users.len()
        )));
    }
    let users = users
        .into_iter()
        .map(UserId::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let visible = store.sharing_a_room(asker, &users).await?;
    let online = chat_cache::presence::online(&mut redis.clone(), &visible)
        .await
        .map_err(GatewayError::from)?;
    Ok(users
        .into_iter()
        .map(|user| {
            let seen = visible.iter().position(|v| *v == user);
            UserPresence {
                online: seen.is_some_and(|i| online[i]),
                user: user.into(),
            }
        })
        .collect())
}
