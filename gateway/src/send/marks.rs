//! Read marks go through the workers (`chat.mark.<room>`, stream
//! CHAT_MARKS), which store them in batches in the bulk class; the asker
//! is answered with the marker as stored.

use std::time::Duration;

use chat_proto::{
    internal::{MarkRead, MarkReply},
    v1::ReadMarker,
};
use chat_protocol::{subjects, ErrorCode, RoomId, Seq, UserId};
use prost::Message as _;

use crate::{error::GatewayError, send::ask};

/// Marks `room` read up to `seq` for `user`: the marker as it stands once
/// stored (never lower than before).
pub async fn mark_read(
    nats: &async_nats::Client,
    room: &RoomId,
    user: &UserId,
    seq: Seq,
    timeout: Duration,
) -> Result<ReadMarker, GatewayError> {
    let payload = |inbox| {
        MarkRead {
            room: room.to_string(),
            user: user.to_string(),
            seq: seq.get(),
            reply_to: inbox,
        }
        .encode_to_vec()
    };
    let reply = ask::workers(nats, subjects::mark(room), payload, timeout).await?;
    let reply = MarkReply::decode(reply)
        .map_err(|e| GatewayError::nats(format!("undecodable mark reply: {e}")))?;
    match (reply.marker, ErrorCode::parse(&reply.error)) {
        (Some(marker), _) => Ok(marker),
        (None, Some(code)) => Err(GatewayError::Refused {
            code,
            reason: reply.reason,
        }),
        (None, None) => Err(GatewayError::nats(format!("mark refused: {}", reply.error))),
    }
}
