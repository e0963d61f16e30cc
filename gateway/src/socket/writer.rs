//! A socket's writer: drains its bounded outbox into the WebSocket, batching
//! what is queued into one flush, each write under a deadline, and the
//! ephemeral frames its stash kept while the queue was full; then the close
//! frame.

use std::{sync::Arc, time::Duration};

use ::metrics::{Counter, Histogram};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use chat_proto::v1::{server_frame::Kind, ServerFrame};
use chat_protocol::codec::Encoding;
use futures::{stream::SplitSink, SinkExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::{
    metrics,
    socket::outbox::{frame_to_ws, ws_len, CloseSignal, Delivery, Outbound, QueueState},
};

/// Starts the socket's writer. A writer that stopped (peer gone, write
/// timed out) ends the reader too.
pub fn spawn_writer(
    sink: SplitSink<WebSocket, WsMessage>,
    queue: (mpsc::Receiver<Outbound>, Arc<QueueState>),
    close: Arc<CloseSignal>,
    encoding: Encoding,
    write_timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    let write = write_loop(sink, queue, Arc::clone(&close), encoding, write_timeout);
    tokio::spawn(
        async move {
            write.await;
            close.finish()
        }
        .in_current_span(),
    )
}

/// Drains the socket's queue into the socket. A write that blocks longer
/// than `write_timeout` (the peer stopped reading at the TCP level) ends
/// the socket.
async fn write_loop(
    sink: SplitSink<WebSocket, WsMessage>,
    (mut queue, state): (mpsc::Receiver<Outbound>, Arc<QueueState>),
    close: Arc<CloseSignal>,
    encoding: Encoding,
    write_timeout: Duration,
) {
    let mut sink = TimedSink {
        sink,
        timeout: write_timeout,
    };
    let encoder = Encoder {
        counted: OutCounters::new(encoding),
        encoding,
        state: Arc::clone(&state),
    };
    let to_ws = |item| encoder.to_ws(item);
    // Made once, not per batch: it registers a waiter under a lock.
    let closed = close.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            item = queue.recv() => {
                let Some(item) = item else { break };
                // Batch whatever else is queued into one flush, then what
                // the stash kept while the queue was full.
                let mut next = Some(item);
                while let Some(item) = next {
                    if let Some(ws) = to_ws(item) {
                        if sink.feed(ws).await.is_err() {
                            return;
                        }
                    }
                    next = queue.try_recv().ok();
                }
                for frame in state.stash.take() {
                    if sink.feed(frame_to_ws(encoding, &frame)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            () = &mut closed => break,
        }
    }
    // Flush replies queued before the close (an error frame, say), then close.
    while let Ok(item) = queue.try_recv() {
        if let Some(ws) = to_ws(item) {
            if sink.feed(ws).await.is_err() {
                return;
            }
        }
    }
    let frame = match close.reason() {
        Some((code, reason)) => CloseFrame {
            code: code.close_code(),
            reason: reason.as_str().into(),
        },
        None => CloseFrame {
            code: 1000,
            reason: "".into(),
        },
    };
    // A peer that cannot take the close frame gets no second wait.
    if sink.send(WsMessage::Close(Some(frame))).await.is_ok() {
        let _ = sink.close().await;
    }
}

/// Turns queued items into WebSocket messages, counting them.
struct Encoder {
    counted: OutCounters,
    encoding: Encoding,
    state: Arc<QueueState>,
}

impl Encoder {
    fn to_ws(&self, item: Outbound) -> Option<WsMessage> {
        match item {
            Outbound::Frame(frame) => {
                self.counted.reply(&frame);
                Some(frame_to_ws(self.encoding, &frame))
            }
            Outbound::Message(delivery) => {
                self.counted.message(&delivery);
                let ws = delivery.to_ws(self.encoding);
                self.state.written(ws_len(&ws));
                Some(ws)
            }
            // Not in the delivery-latency histogram: replays are old by design.
            Outbound::Replay(replayed) => {
                self.counted.message.increment(1);
                Some(replayed.0.to_ws(self.encoding))
            }
            Outbound::Ping => Some(WsMessage::Ping(Default::default())),
            // The stash is sent after the batch that holds this.
            Outbound::Stashed => None,
        }
    }
}

/// The socket's sink with a deadline on every operation.
struct TimedSink {
    sink: SplitSink<WebSocket, WsMessage>,
    timeout: Duration,
}

impl TimedSink {
    async fn feed(&mut self, msg: WsMessage) -> Result<(), ()> {
        timed(self.timeout, self.sink.feed(msg)).await
    }

    async fn flush(&mut self) -> Result<(), ()> {
        timed(self.timeout, self.sink.flush()).await
    }

    async fn send(&mut self, msg: WsMessage) -> Result<(), ()> {
        timed(self.timeout, self.sink.send(msg)).await
    }

    async fn close(&mut self) -> Result<(), ()> {
        timed(self.timeout, self.sink.close()).await
    }
}

async fn timed(
    timeout: Duration,
    op: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), ()> {
    match tokio::time::timeout(timeout, op).await {
        Ok(result) => result.map_err(drop),
        Err(_) => {
            metrics::write_timeout();
            Err(())
        }
    }
}

/// A socket's outgoing-frame counters, fetched once so the hot path only
/// increments.
struct OutCounters {
    message: Counter,
    reply: Counter,
    error: Counter,
    delivery: Histogram,
}

impl OutCounters {
    fn new(encoding: Encoding) -> Self {
        Self {
            message: metrics::frames_out("message", encoding),
            reply: metrics::frames_out("reply", encoding),
            error: metrics::frames_out("error", encoding),
            delivery: metrics::delivery_latency(),
        }
    }

    fn message(&self, delivery: &Delivery) {
        self.message.increment(1);
        metrics::record_delivery(&self.delivery, delivery.message.ts_ms);
    }

    fn reply(&self, frame: &ServerFrame) {
        match frame.kind {
            Some(Kind::Error(_)) => self.error.increment(1),
            _ => self.reply.increment(1),
        }
    }
}
