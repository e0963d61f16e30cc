//! The envelope of an accepted send on the ingest stream, as the worker
//! reads it. Anything can publish there, so decoding trusts nothing.

use chat_proto::internal::Envelope;
use prost::Message;

use crate::{ids::IdError, RoomId};

/// Why an ingest payload is not a send the worker can store.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a protobuf envelope: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("bad room id: {0}")]
    Room(#[from] IdError),
}

/// Decodes an ingest payload and validates the room it names.
pub fn decode(payload: &[u8]) -> Result<(Envelope, RoomId), EnvelopeError> {
    let envelope = Envelope::decode(payload)?;
    let room = RoomId::parse(envelope.room.clone())?;
    Ok((envelope, room))
}
