//! After commit: tell every gateway with members of the room, and the
//! sender's gateway, that the message is stored.

use bytes::Bytes;
use chat_proto::{
    internal::{Envelope, Receipt},
    v1::Message,
};
use chat_shared::{subjects, RoomId};
use prost::Message as _;

use crate::error::WorkerError;

/// Publishes the stored message on the room's fan-out subject and the commit
/// receipt on the accepting gateway's subject. Both are core NATS: a lost
/// one is recovered by the gateway (gap fill, or store lookup on timeout).
pub async fn publish(
    nats: &async_nats::Client,
    room: &RoomId,
    envelope: &Envelope,
    message: &Message,
) -> Result<(), WorkerError> {
    nats.publish(subjects::fanout(room), Bytes::from(message.encode_to_vec()))
        .await
        .map_err(WorkerError::nats)?;
    if subjects::is_receipts(&envelope.reply_to) {
        let receipt = Receipt {
            ticket: envelope.ticket,
            message: Some(message.clone()),
        };
        nats.publish(
            envelope.reply_to.clone(),
            Bytes::from(receipt.encode_to_vec()),
        )
        .await
        .map_err(WorkerError::nats)?;
    }
    Ok(())
}
