//! A user came online or went offline: every room of theirs hears it, as
//! an `online` signal on the room's subject (`chat.signal.<room>`), which
//! each gateway's task of the room pushes to its sockets.

use chat_proto::internal::{room_signal::Kind, RoomSignal};
use chat_protocol::{subjects, UserId};
use chat_store::Store;
use prost::Message as _;

pub(super) async fn to_rooms(store: Store, nats: async_nats::Client, user: UserId, online: bool) {
    let rooms = match store.user_rooms(&user).await {
        Ok(rooms) => rooms,
        Err(e) => return tracing::debug!(error = %e, "presence not announced"),
    };
    crate::metrics::presence_change(online);
    for room in rooms {
        let signal = RoomSignal {
            room: room.to_string(),
            user: user.to_string(),
            kind: Some(Kind::Online(online)),
        };
        let payload = signal.encode_to_vec().into();
        if let Err(e) = nats.publish(subjects::signal(&room), payload).await {
            return tracing::debug!(error = %e, "presence not announced");
        }
    }
}
