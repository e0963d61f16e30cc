//! The envelopes of accepted sends on the ingest stream, as the worker
//! reads them. Anything can publish there, so decoding trusts nothing.

use chat_proto::internal::{Envelope, EnvelopeBatch};
use prost::Message;

use crate::{ids::IdError, RoomId};

/// Why an ingest payload is not a send the worker can store.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a protobuf envelope: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("bad room id: {0}")]
    Room(#[from] IdError),
    #[error("empty batch")]
    Empty,
}

/// Decodes an ingest payload and validates the room it names.
pub fn decode(payload: &[u8]) -> Result<(Envelope, RoomId), EnvelopeError> {
    let envelope = Envelope::decode(payload)?;
    let room = RoomId::parse(envelope.room.clone())?;
    Ok((envelope, room))
}

/// Decodes a gateway's batch: every envelope valid, or the batch is refused
/// whole (a gateway never publishes a bad one, so it is nobody's send).
pub fn decode_batch(payload: &[u8]) -> Result<Vec<(Envelope, RoomId)>, EnvelopeError> {
    let batch = EnvelopeBatch::decode(payload)?;
    if batch.envelopes.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    batch
        .envelopes
        .into_iter()
        .map(|envelope| {
            let room = RoomId::parse(envelope.room.clone())?;
            Ok((envelope, room))
        })
        .collect()
}
