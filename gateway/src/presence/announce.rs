//! A user came online or went offline: every room of theirs hears it, as
//! an `online` signal (`crate::signals`), which each gateway's task of the
//! room pushes to its sockets.

use chat_protocol::UserId;
use chat_store::Store;

use crate::signals::Signals;

pub(super) async fn to_rooms(store: Store, signals: Signals, user: UserId, online: bool) {
    let rooms = match store.user_rooms(&user).await {
        Ok(rooms) => rooms,
        Err(e) => return tracing::debug!(error = %e, "presence not announced"),
    };
    crate::metrics::presence_change(online);
    for room in rooms {
        signals.online(&room, &user, online);
    }
}
