//! One socket's sends, published to JetStream strictly one after another,
//! so the stream, and with it the room's seqs, holds them in the order the
//! socket sent them (users see their own messages in the order they typed
//! them). Only the wait for each commit runs concurrently.
//!
//! A send that cannot be published even after retries closes the socket
//! (`unavailable`, 1012): the sends pipelined behind it are then neither
//! published nor answered, so a client that resends its unacknowledged sends
//! in order after reconnecting keeps its order.

use std::panic::AssertUnwindSafe;

use chat_proto::v1::{server_frame::Kind, Ack, ServerFrame};
use chat_protocol::ErrorCode;
use futures::FutureExt;
use tokio::{
    sync::{mpsc, OwnedSemaphorePermit},
    time::Instant,
};
use tracing::{Instrument, Span};

use crate::{
    error::GatewayError,
    metrics,
    send::ingest::Submission,
    socket::outbox::{Member, Outbound},
    state::AppState,
};

/// A send on its way through the publisher.
pub struct Outgoing {
    pub request_id: String,
    pub submission: Submission,
    pub received: Instant,
    /// The socket's in-flight slot, given back with the reply.
    pub permit: OwnedSemaphorePermit,
    pub span: Span,
}

/// Starts a socket's publisher; it ends when the returned sender is dropped.
pub fn start(state: AppState, member: Member) -> mpsc::UnboundedSender<Outgoing> {
    // Unbounded: the socket's in-flight permits bound it.
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(rx, state, member).in_current_span());
    tx
}

async fn run(mut rx: mpsc::UnboundedReceiver<Outgoing>, state: AppState, member: Member) {
    let ack_timeout = state.config.limits.ack_timeout;
    while let Some(send) = rx.recv().await {
        let Outgoing {
            request_id,
            submission,
            received,
            permit,
            span,
        } = send;
        let publish = async {
            fail::fail_point!("send-task");
            state
                .ingest
                .publish(submission, received + ack_timeout)
                .await
        };
        let published = match AssertUnwindSafe(publish.instrument(span.clone()))
            .catch_unwind()
            .await
        {
            Ok(published) => published,
            Err(_) => {
                metrics::panicked("send");
                Err(GatewayError::Panicked)
            }
        };
        match published {
            Ok(published) => {
                let (state, out) = (state.clone(), member.out.clone());
                let commit = async move {
                    let result = state.ingest.committed(published).await;
                    if result.is_ok() {
                        metrics::send_acked(received.elapsed());
                    }
                    reply(&out, request_id, result).await;
                    drop(permit);
                };
                tokio::spawn(commit.instrument(span));
            }
            Err(GatewayError::Panicked) => {
                reply(&member.out, request_id, Err(GatewayError::Panicked)).await;
            }
            Err(e) => {
                reply(&member.out, request_id, Err(e)).await;
                member.close.close(
                    ErrorCode::Unavailable,
                    "cannot reach the message stream; reconnect and resend in order",
                );
                return;
            }
        }
    }
}

async fn reply(
    out: &mpsc::Sender<Outbound>,
    request_id: String,
    result: Result<chat_proto::v1::Message, GatewayError>,
) {
    metrics::send_answered(match &result {
        Ok(_) => "acked",
        Err(e) => e.code().as_str(),
    });
    let kind = match result {
        Ok(m) => Kind::Ack(Ack {
            room: m.room,
            client_msg_id: m.client_msg_id,
            message_id: m.id,
            seq: m.seq,
            server_ts_ms: m.ts_ms,
        }),
        Err(e) => e.to_kind(),
    };
    let _ = out
        .send(Outbound::frame(ServerFrame {
            request_id,
            kind: Some(kind),
        }))
        .await;
}
