//! The send path: publish a client's message to JetStream, then wait for the
//! worker's commit receipt. A send is acknowledged to the client only with
//! the stored message's seq, never on JetStream's word alone.
//!
//! The sends go to JetStream in batches (`batches`). A socket's next send
//! is queued only once its previous one is in the stream, so however
//! batches overtake each other (a retried one), a socket's sends keep
//! their order.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_nats::jetstream;
use chat_proto::{
    internal::{Envelope, Receipt, Receipts},
    v1::Message,
};
use chat_protocol::{envelope::Entry, subjects, ClientMsgId, ErrorCode, RoomId, Seq, UserId};
use chat_store::Store;
use prost::Message as _;
use tokio::{
    sync::{oneshot, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    error::GatewayError,
    listen,
    send::batches::{Batches, Queued},
};

/// A send waiting for its receipt.
struct Waiter {
    room: RoomId,
    sender: UserId,
    client_msg_id: ClientMsgId,
    reply: oneshot::Sender<Result<Message, GatewayError>>,
}

impl Waiter {
    /// Whether a receipt's message is this send's: a ticket alone could be
    /// stale (an envelope accepted by an earlier run of this gateway).
    fn matches(&self, m: &Message) -> bool {
        m.room == self.room.as_str()
            && m.sender == self.sender.as_str()
            && m.client_msg_id == self.client_msg_id.as_str()
    }
}

/// A client's send, checked and ready to publish.
pub struct Submission {
    pub room: RoomId,
    pub sender: UserId,
    pub client_msg_id: ClientMsgId,
    pub body: String,
    /// A chat message (a reply if it has a target), or an event.
    pub entry: Entry,
}

/// A send JetStream holds, waiting for its commit.
pub struct Published {
    ticket: u64,
    receipt: oneshot::Receiver<Result<Message, GatewayError>>,
    room: RoomId,
    sender: UserId,
    client_msg_id: ClientMsgId,
}

/// Sends waiting for their receipt, by ticket.
type Waiting = Mutex<HashMap<u64, Waiter>>;

pub struct Ingest {
    store: Store,
    receipts_subject: String,
    /// To the partitions' batch publishers; they stop once this is dropped.
    batches: Batches,
    waiting: Waiting,
    next_ticket: AtomicU64,
    timeout: Duration,
    /// Changes on every NATS reconnect: receipts published meanwhile are lost.
    reconnected: watch::Receiver<()>,
}

impl Ingest {
    pub fn new(
        js: jetstream::Context,
        store: Store,
        gateway_id: &str,
        partitions: u32,
        timeout: Duration,
        reconnected: watch::Receiver<()>,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, impl Future<Output = ()>) {
        let (batches, publisher) = Batches::start(&js, gateway_id, partitions, &shutdown);
        let ingest = Arc::new(Self {
            store,
            receipts_subject: subjects::receipts(gateway_id),
            batches,
            waiting: Mutex::new(HashMap::new()),
            // Tickets start at a random point so that a receipt for an
            // envelope accepted before a restart (gateway ids are stable)
            // does not carry a ticket this run has handed out.
            next_ticket: AtomicU64::new(rand::random::<u64>() >> 1),
            timeout,
            reconnected,
        });
        (ingest, publisher)
    }

    /// Subscribes to this gateway's receipts (before the first send); the
    /// future it returns takes them until shutdown.
    pub async fn listen(
        self: &Arc<Self>,
        nats: &async_nats::Client,
        shutdown: CancellationToken,
    ) -> Result<impl Future<Output = ()>, GatewayError> {
        let this = Arc::clone(self);
        let subject = self.receipts_subject.clone();
        listen::until_shutdown(nats, subject, shutdown, move |msg| {
            match Receipts::decode(msg.payload) {
                Ok(batch) => this.on_receipts(batch),
                Err(_) => tracing::warn!("undecodable receipts"),
            }
            std::future::ready(())
        })
        .await
    }

    fn on_receipts(&self, batch: Receipts) {
        for receipt in batch.receipts {
            match receipt {
                Receipt {
                    ticket,
                    message: Some(message),
                    refused,
                    reason,
                } => self.on_receipt(ticket, message, &refused, reason),
                _ => tracing::warn!("receipt without a message"),
            }
        }
    }

    /// A receipt: the stored message, or (`refused` set) the store's
    /// refusal and why (a worker of the previous release gives no reason).
    fn on_receipt(&self, ticket: u64, message: Message, refused: &str, reason: String) {
        let mut waiting = self.waiting.lock().expect("poisoned");
        match waiting.get(&ticket) {
            Some(waiter) if waiter.matches(&message) => {
                let waiter = waiting.remove(&ticket).expect("present");
                let outcome = match refused {
                    "" => Ok(message),
                    code => Err(GatewayError::Refused {
                        code: ErrorCode::parse(code).unwrap_or(ErrorCode::Forbidden),
                        reason: match reason.as_str() {
                            "" => "you may not send in this room".into(),
                            _ => reason,
                        },
                    }),
                };
                let _ = waiter.reply.send(outcome);
            }
            Some(_) => tracing::warn!(ticket, "receipt for another send; ignored"),
            None => {}
        }
    }

    /// Hands a send to JetStream (in the gateway's next batch) and returns
    /// once JetStream holds it. A failed publish is retried until the
    /// earliest deadline of its batch; only then does the send fail.
    #[tracing::instrument(skip_all, fields(room = %send.room), err(level = "debug"))]
    pub async fn publish(
        &self,
        send: Submission,
        deadline: Instant,
    ) -> Result<Published, GatewayError> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let envelope = Envelope {
            room: send.room.to_string(),
            sender: send.sender.to_string(),
            client_msg_id: send.client_msg_id.as_str().to_owned(),
            body: send.body,
            received_ts_ms: chat_protocol::now_ms(),
            received_us: chat_protocol::now_us(),
            reply_to: self.receipts_subject.clone(),
            ticket,
            trace: chat_telemetry::trace_map(),
            kind: send.entry.kind.as_str().to_owned(),
            target_seq: send.entry.target.map_or(0, Seq::get),
        };
        let (reply, receipt) = oneshot::channel();
        let waiter = Waiter {
            room: send.room,
            sender: send.sender,
            client_msg_id: send.client_msg_id,
            reply,
        };
        let published = Published {
            ticket,
            receipt,
            room: waiter.room.clone(),
            sender: waiter.sender.clone(),
            client_msg_id: waiter.client_msg_id.clone(),
        };
        self.waiting
            .lock()
            .expect("poisoned")
            .insert(ticket, waiter);
        let (stored, in_stream) = oneshot::channel();
        let queued = Queued {
            envelope,
            deadline,
            stored,
        };
        let outcome = if self.batches.queue(&published.room, queued) {
            in_stream
                .await
                .unwrap_or_else(|_| Err("batch publisher stopped".into()))
        } else {
            Err("batch publisher stopped".into())
        };
        match outcome {
            Ok(()) => Ok(published),
            Err(e) => {
                self.waiting.lock().expect("poisoned").remove(&ticket);
                Err(GatewayError::nats(e))
            }
        }
    }

    /// Waits for a published send's commit and returns the stored message.
    pub async fn committed(&self, published: Published) -> Result<Message, GatewayError> {
        let Published {
            ticket,
            receipt,
            room,
            sender,
            client_msg_id,
        } = published;
        let mut reconnected = self.reconnected.clone();
        reconnected.borrow_and_update();
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(receipt, deadline);
        let read_back = || self.store.find_sent(&room, &sender, client_msg_id.as_str());
        // The receipt may be lost (it is core NATS); the store knows.
        let last_look = || async {
            read_back()
                .await
                .map_err(GatewayError::from)
                .and_then(|m| m.ok_or(GatewayError::Timeout))
        };
        let result = loop {
            tokio::select! {
                received = &mut receipt => break match received {
                    Ok(outcome) => outcome,
                    Err(_) => last_look().await,
                },
                () = &mut deadline => break last_look().await,
                // Receipts published while NATS was away are gone: a send
                // committed meanwhile is acked from the store now, not after
                // the timeout. One not stored yet waits for its receipt.
                Ok(()) = reconnected.changed() => if let Ok(Some(message)) = read_back().await {
                    break Ok(message);
                },
            }
        };
        self.waiting.lock().expect("poisoned").remove(&ticket);
        result
    }
}
