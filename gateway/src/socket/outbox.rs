//! What flows to a socket: replies, stored messages encoded at most once
//! per encoding however many sockets receive them, and ephemeral frames.
//! The queue is bounded in frames and, for stored messages, in bytes. When
//! it is full an ephemeral frame waits in the socket's stash as the latest
//! state of its kind and room, and a stored message is not queued: its
//! room tells the socket to resync instead (a `resync`, in the stash too).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use axum::extract::ws::Message as WsMessage;
use chat_proto::v1::{server_frame::Kind, Message, Resync, ServerFrame};
use chat_protocol::{access::Access, codec::Encoding, ErrorCode, RoomId, Seq, UserId};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::socket::stash::Stash;

/// Slots of a socket's queue that stored messages and ephemeral frames
/// leave free, for the frames a socket must get at once (`joined`,
/// `left`, a ping).
pub const RESERVED: usize = 4;

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
    /// Ephemeral frames wait in the stash: the writer sends them.
    Stashed,
}

impl Outbound {
    pub fn frame(frame: ServerFrame) -> Self {
        Self::Frame(Box::new(frame))
    }

    pub fn replayed(delivery: Arc<Delivery>, permit: OwnedSemaphorePermit) -> Self {
        Self::Replay(Box::new((delivery, permit)))
    }
}

/// Bytes of a data frame's payload (what the byte bound counts).
pub fn ws_len(msg: &WsMessage) -> usize {
    match msg {
        WsMessage::Text(text) => text.len(),
        WsMessage::Binary(bytes) => bytes.len(),
        _ => 0,
    }
}

/// Encodes a reply frame for a socket.
pub fn frame_to_ws(encoding: Encoding, frame: &ServerFrame) -> WsMessage {
    encoding.encode(frame).into_message()
}

/// Asks a socket to close, once, with the first reason given: at once
/// (`close`), or once its session has answered the sends it accepted
/// (`ask`, for a close by the gateway's choice made outside the session).
pub struct CloseSignal {
    token: CancellationToken,
    reason: OnceLock<(ErrorCode, String)>,
    asked: CancellationToken,
    asked_reason: OnceLock<(ErrorCode, String)>,
    /// How long an asked close waits for the session at most: a session
    /// stuck writing to a peer that reads nothing is closed anyway.
    answer_within: Duration,
}

impl CloseSignal {
    pub fn new(answer_within: Duration) -> Self {
        Self {
            token: CancellationToken::new(),
            reason: OnceLock::new(),
            asked: CancellationToken::new(),
            asked_reason: OnceLock::new(),
            answer_within,
        }
    }

    /// Asks the session to answer what it accepted, then close; closes
    /// anyway after `answer_within`.
    pub fn ask(self: &Arc<Self>, code: ErrorCode, why: impl Into<String>) {
        let why = why.into();
        if self.asked_reason.set((code, why.clone())).is_err() {
            return;
        }
        self.asked.cancel();
        let close = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(close.answer_within) => close.close(code, why),
                () = close.closed() => {}
            }
        });
    }

    /// Resolves once a close was asked for; its reason.
    pub async fn asked(&self) -> (ErrorCode, String) {
        self.asked.cancelled().await;
        self.asked_reason
            .get()
            .cloned()
            .unwrap_or((ErrorCode::SlowConsumer, String::new()))
    }

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
    pub encoding: Encoding,
    pub out: mpsc::Sender<Outbound>,
    pub queue: Arc<QueueState>,
    pub close: Arc<CloseSignal>,
    pub changes: Arc<AccessChanges>,
}

/// What those who queue for a socket and its writer share besides the
/// queue itself.
pub struct QueueState {
    /// Bytes of the stored messages queued, at most `max_bytes` (a
    /// message bigger than that alone still goes, to an empty queue).
    bytes: AtomicUsize,
    max_bytes: usize,
    pub stash: Stash,
}

impl QueueState {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            max_bytes,
            stash: Stash::default(),
        }
    }

    fn take_bytes(&self, size: usize) -> bool {
        let before = self.bytes.fetch_add(size, Ordering::AcqRel);
        if before == 0 || before + size <= self.max_bytes {
            return true;
        }
        self.bytes.fetch_sub(size, Ordering::AcqRel);
        false
    }

    /// A queued stored message of `size` bytes was written.
    pub fn written(&self, size: usize) {
        self.bytes.fetch_sub(size, Ordering::AcqRel);
    }
}

/// What became of a stored message offered to a socket.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// The queue had no room (frames or bytes): nothing was queued.
    Full,
    /// The socket is gone.
    Closed,
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
    /// Queues an ephemeral frame (typing, presence, reads) if there is room
    /// beyond the reserved slots, else keeps it in the stash as the latest
    /// state of its kind and room, for the writer to send once it can.
    pub fn offer_ephemeral(&self, frame: ServerFrame) {
        if self.out.capacity() > RESERVED {
            match self.out.try_send(Outbound::frame(frame)) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(Outbound::Frame(frame))) => {
                    return self.stash(*frame)
                }
                Err(mpsc::error::TrySendError::Full(_)) => return,
            }
        }
        self.stash(frame);
    }

    fn stash(&self, frame: ServerFrame) {
        crate::metrics::queue_drop("ephemeral");
        self.keep(frame);
    }

    fn keep(&self, frame: ServerFrame) {
        self.queue.stash.keep(frame);
        // Wakes a writer that emptied the queue meanwhile. Never in a
        // reserved slot: with the queue that full, the writer has frames to
        // write, and sends the stash after them.
        if self.out.capacity() > RESERVED {
            let _ = self.out.try_send(Outbound::Stashed);
        }
    }

    /// Queues a stored message unless the queue is full, in frames (beyond
    /// the reserved slots) or in bytes.
    pub fn offer_delivery(&self, delivery: &Arc<Delivery>) -> Offered {
        let size = ws_len(&delivery.to_ws(self.encoding));
        if self.out.capacity() <= RESERVED || !self.queue.take_bytes(size) {
            return Offered::Full;
        }
        match self.out.try_send(Outbound::Message(Arc::clone(delivery))) {
            Ok(()) => Offered::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queue.written(size);
                Offered::Full
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offered::Closed,
        }
    }

    /// Tells the socket it fell behind in `room` at `from_seq`: through
    /// the stash, sent after what the queue holds (which is all of the room
    /// before `from_seq`).
    pub fn offer_resync(&self, room: &RoomId, from_seq: Seq) {
        crate::metrics::queue_drop("resync");
        self.keep(ServerFrame {
            request_id: String::new(),
            kind: Some(Kind::Resync(Resync {
                room: room.to_string(),
                from_seq: from_seq.get(),
            })),
        });
    }

    /// Queues a frame the socket must get (`joined`, `left`, a ping)
    /// without waiting: a socket without room for it is closed
    /// (`slow_consumer`) rather than skipped; it reconnects and resumes.
    pub fn offer(&self, item: Outbound) -> bool {
        match self.out.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow_consumer("socket queue full; resume with since_seq");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Closes the socket (4008) once its session has answered the sends
    /// it accepted: they may be stored, and the client should know.
    pub fn slow_consumer(&self, why: &str) {
        crate::metrics::queue_drop("closed");
        self.close.ask(ErrorCode::SlowConsumer, why);
    }
}
