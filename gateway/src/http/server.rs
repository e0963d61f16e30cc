//! The accept loop: HTTP/1.1 with upgrades on each TCP connection, a
//! deadline for the request that opens it, and a graceful stop.
//!
//! `axum::serve` sets no deadline on a connection that never sends its
//! request, so a silent or half-written handshake would hold a socket (and
//! a file descriptor) indefinitely.

use std::{sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, Router};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::add_extension::AddExtension;

/// How long in-flight HTTP requests get to finish after shutdown begins
/// (WebSocket sessions drain separately).
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` fires. Requests carry
/// the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake_timeout);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: back off a little.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Small frames must leave at once: without TCP_NODELAY, Nagle's
        // algorithm meets the client's delayed ACK and adds ~40 ms.
        let _ = tcp.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let service =
            TowerToHyperService::new(AddExtension::new(router.clone(), ConnectInfo(peer)));
        tokio::spawn(async move {
            // hyper's header deadline runs from the first byte; a peer that
            // sends nothing at all is timed here.
            let mut first = [0u8; 1];
            if tokio::time::timeout(handshake_timeout, tcp.peek(&mut first))
                .await
                .is_err()
            {
                crate::metrics::connect("handshake_timeout");
                return;
            }
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .into_owned();
            let _ = watcher.watch(conn).await;
        });
    }
    if tokio::time::timeout(HTTP_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP requests still running after the grace period");
    }
}
