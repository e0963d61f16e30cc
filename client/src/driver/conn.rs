//! One open socket and what is outstanding on it: the request ids written
//! and what each was for, so replies find their waiter. All of it dies with
//! the socket; what must survive a reconnect lives in the driver.

use std::collections::HashMap;

use chat_proto::v1::{client_frame, WatchFeed};
use tokio::{sync::oneshot, time::Instant};

use crate::{ClientError, Reader, Writer};

/// What a request id on the current socket was for.
pub(super) enum Request {
    Join(String),
    Leave(oneshot::Sender<Result<(), ClientError>>),
    Send {
        room: String,
        client_msg_id: String,
    },
    /// Our own liveness probe on a quiet socket.
    Ping,
    /// A member command, by command id.
    Change(String),
    /// `watchFeed`: answered by feed frames until one without `more`.
    Feed,
}

/// One open socket and what is outstanding on it.
pub(super) struct Conn {
    pub(super) writer: Writer,
    pub(super) reader: Reader,
    pub(super) requests: HashMap<String, Request>,
    /// Sends written and not yet answered on this socket.
    pub(super) in_flight: usize,
    pub(super) last_heard: Instant,
}

impl Conn {
    pub(super) fn new(writer: Writer, reader: Reader) -> Self {
        Self {
            writer,
            reader,
            requests: HashMap::new(),
            in_flight: 0,
            last_heard: Instant::now(),
        }
    }
}

/// Why a socket is given up.
pub(super) enum Disconnect {
    /// Reconnect (to the next gateway) and resume.
    Retry(String),
    /// Stop for good: credentials refused.
    Fatal(String),
    /// The application closed the client.
    Shutdown,
}

pub(super) async fn write_change(
    conn: &mut Conn,
    id: String,
    frame: client_frame::Kind,
) -> Result<(), Disconnect> {
    let request = conn.writer.request(frame).await.map_err(retry)?;
    conn.requests.insert(request, Request::Change(id));
    Ok(())
}

/// Watches the feed on this socket.
pub(super) async fn write_watch_feed(conn: &mut Conn) -> Result<(), Disconnect> {
    let request = conn
        .writer
        .request(client_frame::Kind::WatchFeed(WatchFeed {}))
        .await
        .map_err(retry)?;
    conn.requests.insert(request, Request::Feed);
    Ok(())
}

pub(super) async fn write_join(
    conn: &mut Conn,
    room: &str,
    since: Option<u64>,
) -> Result<(), Disconnect> {
    let id = conn.writer.join(room, since).await.map_err(retry)?;
    conn.requests.insert(id, Request::Join(room.to_owned()));
    Ok(())
}

pub(super) fn retry(e: ClientError) -> Disconnect {
    Disconnect::Retry(e.to_string())
}
