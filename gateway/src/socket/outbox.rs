//! What flows to a socket: replies, and stored messages encoded at most once
//! per encoding however many sockets receive them.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex, OnceLock,
};

use axum::extract::ws::Message as WsMessage;
use chat_proto::v1::{server_frame::Kind, Message, ServerFrame};
use chat_protocol::{access::Access, codec::Encoding, ErrorCode, RoomId, Seq, UserId};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

/// A stored message on its way to many sockets.
pub struct Delivery {
    pub message: Message,
    /// The encoded frame per encoding (cheap to clone: shared bytes).
    json: OnceLock<WsMessage>,
    proto: OnceLock<WsMessage>,
}

impl Delivery {
    pub fn new(message: Message) -> Arc<Self> {
        Arc::new(Self {
            message,
            json: OnceLock::new(),
            proto: OnceLock::new(),
        })
    }

    pub fn seq(&self) -> Seq {
        Seq::new(self.message.seq)
    }

    /// The frame in the socket's encoding, encoded by the first socket that needs it.
    pub fn to_ws(&self, encoding: Encoding) -> WsMessage {
        let frame = || ServerFrame {
            request_id: String::new(),
            kind: Some(Kind::Message(self.message.clone())),
        };
        let cached = match encoding {
            Encoding::Json => &self.json,
            Encoding::Proto => &self.proto,
        };
        cached
            .get_or_init(|| frame_to_ws(encoding, &frame()))
            .clone()
    }
}

/// One item of a socket's outgoing queue. Both variants are one pointer
/// wide: the queue's slots are allocated per socket, so small slots keep
/// idle sockets cheap.
pub enum Outbound {
    Frame(Box<ServerFrame>),
    Message(Arc<Delivery>),
    /// A replayed message; its permit bounds how many of a replay's messages
    /// sit in the queue at once, and is released once it is written.
    Replay(Box<(Arc<Delivery>, OwnedSemaphorePermit)>),
    /// A WebSocket ping, to see that a quiet peer is still there.
    Ping,
}

impl Outbound {
    pub fn frame(frame: ServerFrame) -> Self {
        Self::Frame(Box::new(frame))
    }

    pub fn replayed(delivery: Arc<Delivery>, permit: OwnedSemaphorePermit) -> Self {
        Self::Replay(Box::new((delivery, permit)))
    }
}

/// Encodes a reply frame for a socket.
pub fn frame_to_ws(encoding: Encoding, frame: &ServerFrame) -> WsMessage {
    encoding.encode(frame).into_message()
}

/// Asks a socket to close, once, with the first reason given.
#[derive(Default)]
pub struct CloseSignal {
    token: CancellationToken,
    reason: OnceLock<(ErrorCode, String)>,
}

impl CloseSignal {
    pub fn close(&self, code: ErrorCode, why: impl Into<String>) {
        let _ = self.reason.set((code, why.into()));
        self.token.cancel();
    }

    /// Closes normally (1000), unless a reason was given before.
    pub fn finish(&self) {
        self.token.cancel();
    }

    pub async fn closed(&self) {
        self.token.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }

    pub fn reason(&self) -> Option<&(ErrorCode, String)> {
        self.reason.get()
    }
}

/// A room's handle on one socket.
#[derive(Clone)]
pub struct Member {
    pub conn: u64,
    pub user: UserId,
    pub out: mpsc::Sender<Outbound>,
    pub close: Arc<CloseSignal>,
    pub changes: Arc<AccessChanges>,
}

/// Changes to the socket's access in rooms it joined, made by room tasks
/// (a role changed, the user removed), for the socket's session to apply
/// before its next frame: it checks frames for joined rooms against the
/// access it holds, not the cache.
#[derive(Default)]
pub struct AccessChanges {
    any: AtomicBool,
    /// `None`: no longer a member.
    changes: Mutex<Vec<(RoomId, Option<Access>)>>,
}

impl AccessChanges {
    pub fn add(&self, room: RoomId, access: Option<Access>) {
        self.changes.lock().expect("poisoned").push((room, access));
        self.any.store(true, Ordering::Release);
    }

    /// The changes since the last call, oldest first. Called for every
    /// frame: with none made it only reads a flag (no lock, no write).
    pub fn take(&self) -> Vec<(RoomId, Option<Access>)> {
        if !self.any.load(Ordering::Acquire) || !self.any.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.changes.lock().expect("poisoned"))
    }
}

impl Member {
    /// Queues without waiting: a socket that cannot keep up is closed
    /// (`slow_consumer`) rather than skipped, so it never sees a gap; it
    /// reconnects and resumes from its last seq.
    /// Queues an ephemeral frame (who is typing) if there is room; a full
    /// queue drops it rather than the socket: the next one says it all.
    pub fn offer_ephemeral(&self, item: Outbound) {
        if self.out.try_send(item).is_err() {
            crate::metrics::queue_drop();
        }
    }

    pub fn offer(&self, item: Outbound) -> bool {
        match self.out.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                crate::metrics::queue_drop();
                self.close.close(
                    ErrorCode::SlowConsumer,
                    "socket queue full; resume with since_seq",
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}
