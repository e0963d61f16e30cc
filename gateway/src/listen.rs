//! The core NATS subscriptions a gateway keeps for its whole life (every
//! room's announcements and signals, its own receipts): subscribed
//! before the gateway serves sockets, each message handed on until
//! shutdown.

use std::future::Future;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::error::GatewayError;

/// Subscribes to `subject` now; the future it returns hands each message
/// to `each`, one at a time, until shutdown (or until NATS closes the
/// subscription).
pub async fn until_shutdown<F, Fut>(
    nats: &async_nats::Client,
    subject: String,
    shutdown: CancellationToken,
    mut each: F,
) -> Result<impl Future<Output = ()>, GatewayError>
where
    F: FnMut(async_nats::Message) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut sub = nats.subscribe(subject).await.map_err(GatewayError::nats)?;
    Ok(async move {
        loop {
            let msg = tokio::select! {
                msg = sub.next() => msg,
                () = shutdown.cancelled() => None,
            };
            match msg {
                Some(msg) => each(msg).await,
                None => break,
            }
        }
    })
}
