//! The envelopes of accepted sends on the ingest stream, as the worker
//! reads them. Anything can publish there, so decoding trusts nothing.

use chat_proto::internal::{Envelope, EnvelopeBatch};
use prost::Message;

use crate::{ids::IdError, kind::EntryKind, RoomId, Seq};

/// Why an ingest payload is not a send the worker can store.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a protobuf envelope: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("bad room id: {0}")]
    Room(#[from] IdError),
    #[error("empty batch")]
    Empty,
    #[error("not an entry a sender may make: kind {kind:?}, target seq {target}")]
    Entry { kind: String, target: u64 },
}

/// A decoded send: its envelope, the room it names, and what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub envelope: Envelope,
    pub room: RoomId,
    pub entry: Entry,
}

/// What a send makes: a chat message (replying to `target`, if set) or an
/// event changing the message at `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub target: Option<Seq>,
}

impl Entry {
    /// What the envelope asks: a chat message, or an event with a target.
    /// Changes to members never come this way (they are commands).
    pub fn of(envelope: &Envelope) -> Result<Self, EnvelopeError> {
        let target = (envelope.target_seq > 0).then(|| Seq::new(envelope.target_seq));
        match EntryKind::parse(&envelope.kind) {
            Some(kind @ EntryKind::Message) => Ok(Self { kind, target }),
            Some(kind) if kind.is_message_event() && target.is_some() => Ok(Self { kind, target }),
            _ => Err(EnvelopeError::Entry {
                kind: envelope.kind.clone(),
                target: envelope.target_seq,
            }),
        }
    }
}

fn checked(envelope: Envelope) -> Result<Decoded, EnvelopeError> {
    let room = RoomId::parse(envelope.room.clone())?;
    let entry = Entry::of(&envelope)?;
    Ok(Decoded {
        envelope,
        room,
        entry,
    })
}

/// Decodes an ingest payload and validates the room and entry it names.
pub fn decode(payload: &[u8]) -> Result<Decoded, EnvelopeError> {
    checked(Envelope::decode(payload)?)
}

/// Decodes a gateway's batch: every envelope valid, or the batch is refused
/// whole (a gateway never publishes a bad one, so it is nobody's send).
pub fn decode_batch(payload: &[u8]) -> Result<Vec<Decoded>, EnvelopeError> {
    let batch = EnvelopeBatch::decode(payload)?;
    if batch.envelopes.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    batch.envelopes.into_iter().map(checked).collect()
}
