//! A pulled send. A gateway publishes its sends in batches (one JetStream
//! message holding many envelopes); a replayed dead letter or a bulk send is
//! one envelope alone. Either way each send goes to its room's lane on its
//! own, and the JetStream message is acked, or nakked for redelivery, only
//! once every send it carries is settled: stored and published, answered,
//! or parked on the dead-letter stream.
//!
//! A send dropped unsettled (a panic) leaves its message unacked, so
//! JetStream redelivers it whole after `ack_wait`; the sends of it that were
//! stored are found stored again (the store is idempotent).

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, AckKind};
use bytes::Bytes;
use chat_proto::internal::Envelope;
use chat_protocol::{
    envelope::{self, Decoded, Entry},
    subjects, RoomId,
};
use prost::Message as _;
use tracing::Span;

use crate::{error::WorkerError, metrics, retry::Settle};

/// One send out of a pulled JetStream message.
pub struct Pulled {
    pub envelope: Envelope,
    pub room: RoomId,
    /// A chat message or an event, and its target.
    pub entry: Entry,
    delivery: Arc<Delivery>,
}

/// A pulled JetStream message, shared by the sends it carries.
struct Delivery {
    msg: jetstream::Message,
    /// Whether it is a gateway's batch (else one envelope alone).
    batch: bool,
    /// Sends not settled yet; the last one to settle acks.
    open: AtomicUsize,
    /// The longest redelivery delay one of its sends asked for.
    retry: Mutex<Option<Duration>>,
    /// When it was pulled: its sends' stages are timed from here.
    pulled_at: Instant,
}

impl Pulled {
    /// The sends a pulled message carries, in the order they were accepted;
    /// an error if it is not a send or a batch of sends (which no retry will
    /// change), the message handed back with it.
    pub fn split(
        msg: jetstream::Message,
    ) -> Result<Vec<Pulled>, Box<(jetstream::Message, WorkerError)>> {
        if msg.info().is_ok_and(|info| info.delivered > 1) {
            metrics::redelivered();
        }
        let batch = subjects::ingest_kind(msg.subject.as_str()) == subjects::Ingest::Batch;
        let sends = match decode(batch, &msg.payload) {
            Ok(sends) => sends,
            Err(e) => return Err(Box::new((msg, e))),
        };
        for send in &sends {
            if send.envelope.received_us > 0 {
                let queued = chat_protocol::secs_since_us(send.envelope.received_us);
                metrics::stage(metrics::Stage::Queued, queued);
            }
        }
        let delivery = Arc::new(Delivery {
            msg,
            batch,
            open: AtomicUsize::new(sends.len()),
            retry: Mutex::new(None),
            pulled_at: Instant::now(),
        });
        Ok(sends
            .into_iter()
            .map(|send| Pulled {
                envelope: send.envelope,
                room: send.room,
                entry: send.entry,
                delivery: Arc::clone(&delivery),
            })
            .collect())
    }

    /// When the message it came in was pulled.
    pub fn pulled_at(&self) -> Instant {
        self.delivery.pulled_at
    }

    /// How many times JetStream has delivered the message it came in.
    pub fn delivered(&self) -> u32 {
        self.delivery
            .msg
            .info()
            .map(|i| i.delivered.max(1) as u32)
            .unwrap_or(1)
    }

    /// The send alone, as its dead letter keeps it (and a replay publishes it).
    pub fn payload(&self) -> Bytes {
        if self.delivery.batch {
            Bytes::from(self.envelope.encode_to_vec())
        } else {
            self.delivery.msg.payload.clone()
        }
    }

    /// A span continuing the sender's trace, when the send carries one.
    pub fn span(&self) -> Option<Span> {
        let headers = self.delivery.msg.headers.as_ref();
        if chat_telemetry::map_has_trace(&self.envelope.trace) {
            let span = tracing::info_span!("store", room = %self.room);
            chat_telemetry::continue_trace_map(&span, &self.envelope.trace);
            Some(span)
        } else if chat_telemetry::has_trace(headers) {
            let span = tracing::info_span!("store", room = %self.room);
            chat_telemetry::continue_trace(&span, headers);
            Some(span)
        } else {
            None
        }
    }

    /// The message it came in, to keep alive while the send is under way.
    pub fn alive(&self) -> Alive {
        Alive(Arc::clone(&self.delivery))
    }

    /// Settles this send; the last send of its message to settle acks the
    /// message, or naks it (with the longest delay asked for) if any send
    /// of it asked to be retried.
    pub async fn settle(self, settle: Settle) {
        let delivery = self.delivery;
        if let Settle::Retry(delay) = settle {
            let mut retry = delivery.retry.lock().expect("poisoned");
            *retry = Some(retry.map_or(delay, |longest| longest.max(delay)));
        }
        if delivery.open.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let retry = delivery.retry.lock().expect("poisoned").take();
        let kind = match retry {
            Some(delay) => AckKind::Nak(Some(delay)),
            None => AckKind::Ack,
        };
        if let Err(e) = delivery.msg.ack_with(kind).await {
            // Redelivery will find the rows and fan out again; harmless.
            tracing::warn!(error = %e, "ack failed");
        }
    }
}

/// A pulled payload as the sends to store: a gateway's batch or one
/// envelope alone. Anything else is permanent.
fn decode(batch: bool, payload: &[u8]) -> Result<Vec<Decoded>, WorkerError> {
    let decoded = if batch {
        envelope::decode_batch(payload)
    } else {
        envelope::decode(payload).map(|send| vec![send])
    };
    decoded.map_err(|e| WorkerError::BadEnvelope(e.to_string()))
}

/// The message a send came in, kept alive while its sends wait or are
/// being stored.
pub struct Alive(Arc<Delivery>);

/// Restarts the ack timer of each message once, however many of its sends
/// are among `messages`: the work is still under way.
pub async fn keep_alive<'a>(messages: impl IntoIterator<Item = &'a Alive>) {
    let mut seen = HashSet::new();
    for Alive(delivery) in messages {
        if !seen.insert(Arc::as_ptr(delivery) as usize) {
            continue;
        }
        metrics::in_progress_ack();
        if let Err(e) = delivery.msg.ack_with(AckKind::Progress).await {
            // JetStream redelivers it after ack_wait; storing it twice is harmless.
            tracing::warn!(error = %e, "in-progress ack failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::internal::EnvelopeBatch;
    use proptest::prelude::*;

    fn envelope(room: String, body: String, ticket: u64) -> Envelope {
        Envelope {
            room,
            sender: "alice".into(),
            client_msg_id: format!("c{ticket}"),
            body,
            received_ts_ms: 1,
            reply_to: "chat.receipt.gw1".into(),
            ticket,
            ..Envelope::default()
        }
    }

    proptest! {
        /// Whatever is published on the ingest stream, alone or as a batch,
        /// the worker gets sends or an error that dead-letters it at once;
        /// it never panics.
        #[test]
        fn any_payload_is_sends_or_a_permanent_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            batch in any::<bool>(),
        ) {
            match decode(batch, &bytes) {
                Ok(sends) => prop_assert!(!sends.is_empty()),
                Err(e) => {
                    prop_assert!(matches!(e, WorkerError::BadEnvelope(_)));
                    prop_assert!(e.is_permanent());
                }
            }
        }

        /// What a gateway publishes decodes to itself, in order, the rooms
        /// validated.
        #[test]
        fn a_gateways_batch_decodes_to_itself(
            sends in proptest::collection::vec(("[a-z0-9_-]{1,32}", ".{0,64}"), 1..20),
        ) {
            let envelopes: Vec<Envelope> = sends
                .into_iter()
                .enumerate()
                .map(|(n, (room, body))| envelope(room, body, n as u64))
                .collect();
            let payload = EnvelopeBatch { envelopes: envelopes.clone() }.encode_to_vec();
            let back = decode(true, &payload).unwrap();
            prop_assert_eq!(back.len(), envelopes.len());
            for (decoded, sent) in back.into_iter().zip(envelopes) {
                prop_assert_eq!(decoded.room.as_str(), sent.room.as_str());
                prop_assert_eq!(decoded.envelope, sent);
            }
        }

        /// A lone envelope (a replayed dead letter, a bulk send) decodes to itself.
        #[test]
        fn a_lone_envelope_decodes_to_itself(room in "[a-z0-9_-]{1,32}", body in ".{0,64}") {
            let sent = envelope(room, body, 7);
            let back = decode(false, &sent.encode_to_vec()).unwrap();
            prop_assert_eq!(back.len(), 1);
            prop_assert_eq!(back[0].room.as_str(), sent.room.as_str());
            prop_assert_eq!(&back[0].envelope, &sent);
        }
    }

    #[test]
    fn a_batch_with_one_bad_room_or_none_at_all_is_refused_whole() {
        let good = envelope("lobby".into(), "hi".into(), 1);
        let bad = envelope("no.dots".into(), "hi".into(), 2);
        let payload = EnvelopeBatch {
            envelopes: vec![good, bad],
        }
        .encode_to_vec();
        assert!(matches!(
            decode(true, &payload),
            Err(WorkerError::BadEnvelope(_))
        ));
        let empty = EnvelopeBatch::default().encode_to_vec();
        assert!(matches!(
            decode(true, &empty),
            Err(WorkerError::BadEnvelope(_))
        ));
    }
}
