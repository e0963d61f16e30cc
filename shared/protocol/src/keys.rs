//! Every Redis key, built in one place. All keys start with `chat:`. A
//! room's keys carry the room as their hash tag (`{<room>}`): in a Redis
//! Cluster they live in one slot, on one node, whatever else changes.

use crate::ids::{RoomId, UserId};

/// `chat:member:{<room>}:<user>` → "-" (not a member) or the member's role
/// and flags (`admin:15`), with a TTL; set by the worker that changes them.
pub fn membership(room: &RoomId, user: &UserId) -> String {
    format!("chat:member:{{{room}}}:{user}")
}

/// `chat:ticket:<ticket>` → user id: a one-time WebSocket ticket, deleted on use.
pub fn ticket(ticket: &str) -> String {
    format!("chat:ticket:{ticket}")
}

/// `chat:window:{<room>}`: sorted set of the room's newest entries as they
/// stand, scored by seq; each member is its version (16 hex digits: the
/// newest seq its state includes) then the protobuf `Message`
/// (chat_cache::remember). Gateways fill gaps and serve history pages from
/// it and read its top score as a cheap hint of the room's head.
pub fn window(room: &RoomId) -> String {
    format!("chat:window:{{{room}}}")
}

/// `chat:presence:{<user>}`: set of the gateways where the user has a
/// socket (or had one until a few seconds ago); online while not empty.
pub fn presence(user: &UserId) -> String {
    format!("chat:presence:{{{user}}}")
}

/// `chat:gateway-users:{<gateway>}`: set of the users a gateway put in
/// their presence sets, so that whoever finds it dead takes them out.
pub fn gateway_users(gateway: &str) -> String {
    format!("chat:gateway-users:{{{gateway}}}")
}

/// `chat:gateways`: sorted set of gateway ids scored by their last
/// heartbeat (ms since the epoch); one whose score grows old is dead.
pub const GATEWAYS: &str = "chat:gateways";

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster hashes only what is between the first `{` and `}`:
    /// a room's keys share a slot.
    #[test]
    fn a_rooms_keys_carry_the_room_as_their_hash_tag() {
        let room = RoomId::parse("lobby").unwrap();
        let user = UserId::parse("ada").unwrap();
        assert_eq!(window(&room), "chat:window:{lobby}");
        assert_eq!(membership(&room, &user), "chat:member:{lobby}:ada");
        assert_eq!(presence(&user), "chat:presence:{ada}");
        assert_eq!(gateway_users("gw-1"), "chat:gateway-users:{gw-1}");
    }
}
