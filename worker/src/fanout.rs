//! After commit: tell every gateway with members of the room, and the
//! sender's gateway, that the message is stored. Also the answer to a
//! gateway's delivery canary, which has nothing to store.

use async_nats::HeaderMap;
use bytes::Bytes;
use chat_proto::{
    internal::{Envelope, Receipt},
    v1::Message,
};
use chat_protocol::{subjects, ErrorCode, RoomId};
use prost::Message as _;

use crate::error::WorkerError;

/// Publishes the stored message on the room's fan-out subject and the commit
/// receipt on the accepting gateway's subject. Both are core NATS: a lost
/// one is recovered by the gateway (gap fill, or store lookup on timeout).
/// The current span's trace context rides along in headers when tracing is on.
pub async fn publish(
    nats: &async_nats::Client,
    room: &RoomId,
    envelope: &Envelope,
    message: &Message,
) -> Result<(), WorkerError> {
    let mut headers = HeaderMap::new();
    chat_telemetry::inject_trace(&mut headers);
    let headers = chat_telemetry::has_trace(Some(&headers)).then_some(headers);
    let send = |subject: String, payload: Vec<u8>| {
        let headers = headers.clone();
        async move {
            let payload = Bytes::from(payload);
            match headers {
                Some(headers) => nats.publish_with_headers(subject, headers, payload).await,
                None => nats.publish(subject, payload).await,
            }
            .map_err(WorkerError::nats)
        }
    };
    send(subjects::fanout(room), message.encode_to_vec()).await?;
    if subjects::is_receipts(&envelope.reply_to) {
        let receipt = Receipt {
            ticket: envelope.ticket,
            message: Some(message.clone()),
            refused: String::new(),
        };
        send(envelope.reply_to.clone(), receipt.encode_to_vec()).await?;
    }
    Ok(())
}

/// Publishes a room's change (an event in its sequence) on its fan-out
/// subject, like a stored message; no gateway waits for a receipt.
pub async fn publish_event(
    nats: &async_nats::Client,
    room: &RoomId,
    event: &Message,
) -> Result<(), WorkerError> {
    nats.publish(subjects::fanout(room), event.encode_to_vec().into())
        .await
        .map_err(WorkerError::nats)
}

/// Tells the accepting gateway that the store refused the send for good
/// (`code`), so its sender gets that answer rather than a timeout.
pub async fn refuse(
    nats: &async_nats::Client,
    envelope: &Envelope,
    code: ErrorCode,
) -> Result<(), WorkerError> {
    if !subjects::is_receipts(&envelope.reply_to) {
        return Ok(());
    }
    let receipt = Receipt {
        ticket: envelope.ticket,
        message: Some(Message {
            room: envelope.room.clone(),
            sender: envelope.sender.clone(),
            client_msg_id: envelope.client_msg_id.clone(),
            ..Message::default()
        }),
        refused: code.as_str().to_owned(),
    };
    nats.publish(envelope.reply_to.clone(), receipt.encode_to_vec().into())
        .await
        .map_err(WorkerError::nats)
}

/// Answers a gateway's delivery canary on its canary subject: a receipt
/// with the canary's ticket and no message. Any other reply subject is
/// ignored, as for receipts: anything can publish to the ingest stream.
pub async fn answer_canary(
    nats: &async_nats::Client,
    envelope: &Envelope,
) -> Result<(), WorkerError> {
    if !subjects::is_canary_answers(&envelope.reply_to) {
        return Ok(());
    }
    let answer = Receipt {
        ticket: envelope.ticket,
        message: None,
        refused: String::new(),
    };
    nats.publish(envelope.reply_to.clone(), answer.encode_to_vec().into())
        .await
        .map_err(WorkerError::nats)
}
