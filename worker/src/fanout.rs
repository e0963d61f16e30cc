//! After commit: tell every gateway with members of the room, and the
//! sender's gateway, that the message is stored. A batch's messages go out
//! as one NATS message per room (`Fanout`) and one per accepting gateway
//! (`Receipts`), not one of each per send. Also the answer to a gateway's
//! delivery canary, which has nothing to store.

use std::collections::HashMap;

use async_nats::HeaderMap;
use chat_proto::{
    internal::{Envelope, Fanout, Receipt, Receipts},
    v1::Message,
};
use chat_protocol::{subjects, ErrorCode, RoomId};
use prost::Message as _;
use tracing::Span;

use crate::{ctx::Ctx, error::WorkerError};

/// What one stored batch publishes, gathered per room and per gateway.
#[derive(Default)]
pub struct Outbox {
    rooms: Vec<RoomOut>,
    room_index: HashMap<RoomId, usize>,
    receipts: HashMap<String, Vec<Receipt>>,
}

/// A room's messages of the batch, and which items of the batch they are.
struct RoomOut {
    room: RoomId,
    messages: Vec<Message>,
    items: Vec<usize>,
    /// The trace context of the room's first traced send, if any.
    headers: Option<HeaderMap>,
}

impl Outbox {
    /// Item `item` (its envelope) was stored as `message`: fanned out to
    /// the room, and a receipt for the gateway that accepted it.
    pub fn stored(
        &mut self,
        item: usize,
        room: &RoomId,
        envelope: &Envelope,
        mut message: Message,
        span: Option<&Span>,
    ) {
        // The receipt leaves the body out: the sender's gateway acks with
        // the seq and id, so the body crosses NATS once, in the fan-out.
        let body = std::mem::take(&mut message.body);
        self.receipt(envelope, message.clone(), String::new(), "");
        message.body = body;
        let at = *self.room_index.entry(room.clone()).or_insert_with(|| {
            self.rooms.push(RoomOut {
                room: room.clone(),
                messages: Vec::new(),
                items: Vec::new(),
                headers: None,
            });
            self.rooms.len() - 1
        });
        let out = &mut self.rooms[at];
        if let (None, Some(span)) = (&out.headers, span) {
            let mut headers = HeaderMap::new();
            span.in_scope(|| chat_telemetry::inject_trace(&mut headers));
            out.headers = chat_telemetry::has_trace(Some(&headers)).then_some(headers);
        }
        out.messages.push(message);
        out.items.push(item);
    }

    /// The store refused the send for good (`code`, and why): its sender
    /// gets that answer rather than a timeout. The receipt's message holds
    /// only what identifies the send.
    pub fn refused(&mut self, envelope: &Envelope, code: ErrorCode, reason: &str) {
        let message = identity(envelope);
        self.receipt(envelope, message, code.as_str().to_owned(), reason);
    }

    /// The send changed nothing and took no seq (a reaction already there):
    /// its sender is answered with seq 0.
    pub fn unchanged(&mut self, envelope: &Envelope) {
        self.receipt(envelope, identity(envelope), String::new(), "");
    }

    /// Only to a gateway's receipt subject: anything can publish to the
    /// ingest stream, and a `reply_to` elsewhere is ignored.
    fn receipt(&mut self, envelope: &Envelope, message: Message, refused: String, reason: &str) {
        if !subjects::is_receipts(&envelope.reply_to) {
            return;
        }
        self.receipts
            .entry(envelope.reply_to.clone())
            .or_default()
            .push(Receipt {
                ticket: envelope.ticket,
                message: Some(message),
                refused,
                reason: reason.to_owned(),
            });
    }

    /// Publishes each room's messages, then each gateway's receipts (core
    /// NATS: a lost one is recovered by the gateway, by gap fill or a store
    /// lookup). Returns the items whose room's fan-out could not be
    /// published: they must not be acked. A receipt that cannot be
    /// published is only logged: the gateway reads the send back from the
    /// store when NATS returns.
    pub async fn publish(self, ctx: &Ctx) -> Vec<usize> {
        let mut failed = Vec::new();
        for out in self.rooms {
            let payload = Fanout {
                messages: out.messages,
                published_us: chat_protocol::now_us(),
            }
            .encode_to_vec()
            .into();
            let subject = subjects::fanout(&out.room);
            let published = ctx.publish(subject, out.headers, payload).await;
            if let Err(e) = published {
                tracing::warn!(room = %out.room, error = %e, "fan-out not published");
                failed.extend(out.items);
            }
        }
        for (subject, receipts) in self.receipts {
            let payload = Receipts { receipts }.encode_to_vec().into();
            if let Err(e) = ctx.publish(subject, None, payload).await {
                tracing::warn!(error = %e, "receipts not published");
            }
        }
        failed
    }
}

/// What identifies a send in a receipt that carries no stored entry.
fn identity(envelope: &Envelope) -> Message {
    Message {
        room: envelope.room.clone(),
        sender: envelope.sender.clone(),
        client_msg_id: envelope.client_msg_id.clone(),
        ..Message::default()
    }
}

/// Publishes a room's change (an event in its sequence) on its fan-out
/// subject, like a stored message; no gateway waits for a receipt.
pub async fn publish_event(ctx: &Ctx, room: &RoomId, event: &Message) -> Result<(), WorkerError> {
    let payload = Fanout {
        messages: vec![event.clone()],
        published_us: chat_protocol::now_us(),
    };
    let payload = payload.encode_to_vec().into();
    ctx.publish(subjects::fanout(room), None, payload).await
}

/// Answers a gateway's delivery canary on its canary subject: a receipt
/// with the canary's ticket and no message. Any other reply subject is
/// ignored, as for receipts: anything can publish to the ingest stream.
pub async fn answer_canary(ctx: &Ctx, envelope: &Envelope) -> Result<(), WorkerError> {
    if !subjects::is_canary_answers(&envelope.reply_to) {
        return Ok(());
    }
    let answer = Receipt {
        ticket: envelope.ticket,
        message: None,
        ..Receipt::default()
    };
    let payload = answer.encode_to_vec().into();
    ctx.publish(envelope.reply_to.clone(), None, payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(room: &str, gateway: &str, ticket: u64) -> Envelope {
        Envelope {
            room: room.into(),
            sender: "alice".into(),
            client_msg_id: format!("c{ticket}"),
            reply_to: gateway.into(),
            ticket,
            ..Envelope::default()
        }
    }

    fn stored(outbox: &mut Outbox, item: usize, e: &Envelope, seq: u64) {
        let room = RoomId::parse(&e.room).unwrap();
        let message = Message {
            room: e.room.clone(),
            seq,
            body: format!("body {seq}"),
            ..Message::default()
        };
        outbox.stored(item, &room, e, message, None);
    }

    /// A batch becomes one fan-out per room, its messages and items in
    /// batch order, and one receipt message per accepting gateway, without
    /// the bodies; a `reply_to` that is no gateway's receipt subject gets
    /// nothing.
    #[test]
    fn a_batch_is_grouped_per_room_and_per_gateway() {
        let (g1, g2) = (subjects::receipts("g1"), subjects::receipts("g2"));
        let mut outbox = Outbox::default();
        stored(&mut outbox, 0, &envelope("a", &g1, 10), 1);
        stored(&mut outbox, 1, &envelope("b", &g2, 11), 1);
        stored(&mut outbox, 2, &envelope("a", &g2, 12), 2);
        stored(&mut outbox, 3, &envelope("b", "chat.room.b", 13), 2);
        outbox.refused(&envelope("a", &g1, 14), ErrorCode::Forbidden, "no");

        let rooms: Vec<(&str, Vec<u64>, &[usize])> = outbox
            .rooms
            .iter()
            .map(|r| {
                let seqs = r.messages.iter().map(|m| m.seq).collect();
                (r.room.as_str(), seqs, r.items.as_slice())
            })
            .collect();
        assert_eq!(
            rooms,
            vec![
                ("a", vec![1, 2], &[0, 2][..]),
                ("b", vec![1, 2], &[1, 3][..])
            ]
        );

        let tickets = |subject: &str| -> Vec<(u64, String)> {
            outbox.receipts[subject]
                .iter()
                .map(|r| (r.ticket, r.refused.clone()))
                .collect()
        };
        assert_eq!(
            tickets(&g1),
            vec![(10, String::new()), (14, "forbidden".to_owned())]
        );
        assert_eq!(tickets(&g2), vec![(11, String::new()), (12, String::new())]);
        assert_eq!(outbox.receipts.len(), 2);
        let bodies: Vec<&str> = outbox.rooms[0]
            .messages
            .iter()
            .map(|m| m.body.as_str())
            .collect();
        assert_eq!(bodies, ["body 1", "body 2"], "the fan-out carries bodies");
        assert!(
            outbox
                .receipts
                .values()
                .flatten()
                .all(|r| r.message.as_ref().is_some_and(|m| m.body.is_empty())),
            "receipts leave the body out"
        );
    }
}
