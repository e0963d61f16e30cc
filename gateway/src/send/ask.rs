//! Asking the workers something that they answer once it is stored: the
//! question goes on a stream (JetStream), so a worker's crash redelivers
//! it, and carries an inbox that the worker answers on.

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;

use crate::error::GatewayError;

/// Publishes the question `payload(inbox)` on `subject` and waits for the
/// answer on the inbox (or `timeout`).
pub async fn workers(
    nats: &async_nats::Client,
    subject: String,
    payload: impl FnOnce(String) -> Vec<u8>,
    timeout: Duration,
) -> Result<Bytes, GatewayError> {
    let inbox = nats.new_inbox();
    let mut replies = nats
        .subscribe(inbox.clone())
        .await
        .map_err(GatewayError::nats)?;
    // No `Nats-Msg-Id`: JetStream would drop a resend within its window,
    // and the resend's asker would never hear back. The workers apply each
    // question once (a command once per id; a mark moves a marker up only).
    let js = async_nats::jetstream::new(nats.clone());
    let question = payload(inbox).into();
    chat_streams::stored(&js, subject, HeaderMap::new(), question, timeout)
        .await
        .map_err(GatewayError::nats)?;
    let reply = tokio::time::timeout(timeout, replies.next())
        .await
        .map_err(|_| GatewayError::Timeout)?
        .ok_or_else(|| GatewayError::nats("reply subscription ended"))?;
    Ok(reply.payload)
}
