//! The dead-letter stream, read one message per request: slower than a
//! consumer, but it leaves nothing behind on the server, and the dead
//! letters an incident leaves are read in seconds.

use std::time::Duration;

use async_nats::{
    header::NATS_MESSAGE_ID,
    jetstream::{
        self,
        stream::{RawMessageErrorKind, Stream},
    },
    HeaderMap, HeaderValue,
};
use chat_protocol::subjects;

use super::{
    error::DlqError,
    letter::{DeadLetter, Decoded},
};
use crate::config::WorkerConfig;

/// The dead-letter stream, and JetStream to republish to.
pub(super) struct DeadLetters {
    js: jetstream::Context,
    /// How long a republish may take (`stream.publish_timeout_ms`).
    limit: Duration,
    pub(super) stream: Stream,
}

impl DeadLetters {
    pub(super) async fn open(config: &WorkerConfig) -> Result<Self, DlqError> {
        let nats = chat_streams::connect_options("chat-worker-dlq".into())
            .connect(chat_streams::servers(config.nats_url.expose()))
            .await?;
        let js = jetstream::new(nats);
        let stream = js.get_stream(subjects::DEAD_LETTER_STREAM).await?;
        let limit = config.stream.publish_timeout;
        Ok(Self { js, limit, stream })
    }

    pub(super) async fn get(&self, seq: u64) -> Result<DeadLetter, DlqError> {
        match self.stream.get_raw_message(seq).await {
            Ok(msg) => Ok(DeadLetter::new(msg)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                Err(DlqError::NotFound(seq))
            }
            Err(source) => Err(DlqError::Read { seq, source }),
        }
    }

    /// Publishes the envelope to its room's bulk subject (a command to its
    /// command subject) and waits for JetStream's ack; returns its seq
    /// in that stream.
    pub(super) async fn republish(
        &self,
        letter: &DeadLetter,
        decoded: &Decoded,
    ) -> Result<u64, DlqError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_MESSAGE_ID,
            HeaderValue::from(subjects::replay_id(letter.msg.sequence).as_str()),
        );
        headers.insert(
            chat_streams::headers::REPLAY_OF,
            HeaderValue::from(letter.msg.sequence),
        );
        let payload = letter.msg.payload.clone();
        let ack =
            chat_streams::stored(&self.js, decoded.subject(), headers, payload, self.limit).await?;
        Ok(ack.sequence)
    }

    pub(super) async fn delete(&self, seq: u64) -> Result<(), DlqError> {
        match self.stream.delete_message(seq).await? {
            true => Ok(()),
            false => Err(DlqError::AlreadyDeleted),
        }
    }
}
