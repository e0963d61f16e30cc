//! The connection lifecycle: connect to the gateways in turn, run each
//! socket until it fails, back off between attempts, and stop for good when
//! the credentials are refused or the attempts run out. Requests keep being
//! taken while offline, for the next socket.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

use super::{conn::Disconnect, Command, Driver};
use crate::{connect, ClientError, ConnectOptions};

impl Driver {
    pub(crate) async fn run(mut self) {
        if self.options.urls.is_empty() {
            return self.stop("no gateway url given".into()).await;
        }
        let reason = loop {
            let url = self.options.urls[self.next_url % self.options.urls.len()].clone();
            self.next_url = self.next_url.wrapping_add(1);
            let options = ConnectOptions {
                credentials: self.options.credentials.clone(),
                ..ConnectOptions::new(url, "", self.options.encoding)
            };
            let timeout = self.options.connect_timeout;
            let attempt = tokio::time::timeout(timeout, async { connect(&options).await });
            let failure = match self.while_offline(attempt).await {
                None => return,
                Some(Err(_)) => "handshake timed out".to_string(),
                Some(Ok(Err(ClientError::Refused(status @ (401 | 403))))) => {
                    break format!("{} refused the credentials (HTTP {status})", options.url)
                }
                Some(Ok(Err(e))) => e.to_string(),
                Some(Ok(Ok((writer, reader)))) => {
                    let started = Instant::now();
                    match self.run_connection(writer, reader).await {
                        Disconnect::Shutdown => return,
                        Disconnect::Fatal(reason) => break reason,
                        Disconnect::Retry(reason) => {
                            // A connection that served a while was a success:
                            // the next attempt waits little again.
                            if started.elapsed() > Duration::from_secs(2) {
                                self.backoff.reset();
                            }
                            reason
                        }
                    }
                }
            };
            if let Some(max) = self.options.max_reconnect_attempts {
                if self.backoff.attempts() >= max {
                    break format!("gave up after {max} attempts: {failure}");
                }
            }
            let delay = self.backoff.next_delay();
            if self
                .while_offline(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return;
            }
        };
        self.stop(reason).await;
    }

    /// Runs `fut` while taking the application's requests (queued for the
    /// next socket). `None` if the application closed the client meanwhile.
    async fn while_offline<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                command = self.commands.recv() => match command {
                    None | Some(Command::Close) => return None,
                    Some(command) => self.accept(command, None).await.ok()?,
                },
            }
        }
    }
}
