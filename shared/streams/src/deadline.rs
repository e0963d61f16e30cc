//! Deadlines on NATS calls. A core publish waits for room in the client's
//! outgoing buffer, which stays full while NATS is away (the client
//! reconnecting), and a JetStream publish first does the same: without a
//! deadline either can hold its caller for as long as the outage lasts.

use std::{fmt, future::Future, time::Duration};

use async_nats::{
    jetstream::{self, context::PublishError, publish::PublishAck},
    subject::ToSubject,
    HeaderMap,
};
use bytes::Bytes;

/// A NATS call that failed, or did not finish within its deadline.
#[derive(Debug)]
pub enum Late<E> {
    Failed(E),
    Late(Duration),
}

impl<E: fmt::Display> fmt::Display for Late<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(e) => e.fmt(f),
            Self::Late(limit) => write!(f, "not done within {limit:?} (NATS away?)"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Late<E> {}

/// `call`, failed with [`Late::Late`] past `limit`.
pub async fn within<T, E>(
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, Late<E>> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(Late::Failed),
        Err(_) => Err(Late::Late(limit)),
    }
}

/// A JetStream publish and its ack, within `limit`.
pub async fn stored(
    js: &jetstream::Context,
    subject: impl ToSubject,
    headers: HeaderMap,
    payload: Bytes,
    limit: Duration,
) -> Result<PublishAck, Late<PublishError>> {
    within(limit, async {
        js.publish_with_headers(subject, headers, payload)
            .await?
            .await
    })
    .await
}
