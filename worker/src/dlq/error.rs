//! Errors of the dead-letter tools, each saying what was being done.

use async_nats::jetstream::{
    context::{GetStreamError, PublishError},
    stream::{DeleteMessageError, RawMessageError},
};
use chat_protocol::subjects;

/// What can go wrong with the dead-letter stream or one dead letter.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("cannot reach NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("dead-letter stream {name}: {0}", name = subjects::DEAD_LETTER_STREAM)]
    Stream(#[from] GetStreamError),
    #[error("no dead letter with seq {0}")]
    NotFound(u64),
    #[error("reading dead letter {seq}: {source}")]
    Read { seq: u64, source: RawMessageError },
    #[error("republishing: {0}")]
    Publish(#[from] chat_streams::Late<PublishError>),
    #[error("deleting the dead letter: {0}")]
    Delete(#[from] DeleteMessageError),
    #[error("the dead letter was already gone when deleted")]
    AlreadyDeleted,
}
