//! Reading what the server pushes to a socket, as a test expects it: the
//! next frame, the reply to a request, or every message up to a count.
//! Each read fails the test on silence rather than hang it.

use std::{future::Future, sync::Arc, time::Duration};

use chat_client::{Event, Reader};
use chat_proto::v1::{
    server_frame::Kind, Ack, Error as ErrorFrame, Message, ReadMarker, ServerFrame,
};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;

/// How long a test waits for one step (a frame, a reply) before failing.
pub const STEP: Duration = Duration::from_secs(15);

/// Messages and the acks (with their request ids) read from a socket.
pub type Collected = (Vec<Message>, Vec<(String, Ack)>);

/// The reads, for a socket's [`Reader`] or a whole
/// [`Session`](crate::session::Session). The futures are `Send` so that a
/// test can read in a spawned task.
pub trait Frames: Send {
    fn reader(&mut self) -> &mut Reader;

    /// The next frame, failing the test on close, error or silence. The
    /// pushed frames every join and every user's coming and going bring
    /// (`readMarker`, `reads`, `presenceNow`) are skipped: tests that look
    /// at them read with `next_read_marker` or `next_any_frame`.
    fn next_frame(&mut self) -> impl Future<Output = ServerFrame> + Send {
        next_frame(self.reader())
    }

    /// The next frame, whatever it is.
    fn next_any_frame(&mut self) -> impl Future<Output = ServerFrame> + Send {
        any_frame(self.reader())
    }

    /// The next read marker pushed to the socket (after a join), skipping
    /// other frames.
    fn next_read_marker(&mut self) -> impl Future<Output = ReadMarker> + Send {
        next_read_marker(self.reader())
    }

    /// The close frame the server sends next (frames before it are skipped).
    fn expect_close(&mut self) -> impl Future<Output = Option<CloseFrame>> + Send {
        expect_close(self.reader())
    }

    /// The ack or error answering `request_id`, skipping other frames.
    fn reply_to<'a>(
        &'a mut self,
        request_id: &'a str,
    ) -> impl Future<Output = Result<Ack, ErrorFrame>> + Send + 'a {
        reply_to(self.reader(), request_id)
    }

    /// The next error frame and its request id (skipping pushed messages).
    fn next_error(&mut self) -> impl Future<Output = (String, ErrorFrame)> + Send {
        next_error(self.reader())
    }

    /// Reads until `count` messages of the room arrived; also returns acks seen.
    fn collect_messages(
        &mut self,
        count: usize,
        within: Duration,
    ) -> impl Future<Output = Collected> + Send {
        collect(self.reader(), count, 0, None, within)
    }

    /// Reads until `count` messages and at least `acks_expected` acks
    /// arrived. Each ack returns a permit to `window`, as a client that caps
    /// its sends in flight would.
    fn collect(
        &mut self,
        count: usize,
        acks_expected: usize,
        window: Option<Arc<Semaphore>>,
        within: Duration,
    ) -> impl Future<Output = Collected> + Send {
        collect(self.reader(), count, acks_expected, window, within)
    }
}

impl Frames for Reader {
    fn reader(&mut self) -> &mut Reader {
        self
    }
}

async fn next_frame(reader: &mut Reader) -> ServerFrame {
    loop {
        let frame = any_frame(reader).await;
        if !is_status_push(&frame) {
            return frame;
        }
    }
}

/// A pushed read marker, read markers moved, or users online or not: what
/// any socket may get between the frames a test is about.
pub fn is_status_push(frame: &ServerFrame) -> bool {
    frame.request_id.is_empty()
        && matches!(
            frame.kind,
            Some(Kind::ReadMarker(_) | Kind::Reads(_) | Kind::PresenceNow(_))
        )
}

async fn next_read_marker(reader: &mut Reader) -> ReadMarker {
    loop {
        if let Some(Kind::ReadMarker(marker)) = any_frame(reader).await.kind {
            return marker;
        }
    }
}

async fn any_frame(reader: &mut Reader) -> ServerFrame {
    match tokio::time::timeout(STEP, reader.next()).await {
        Ok(Some(Ok(Event::Frame(frame)))) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

async fn expect_close(reader: &mut Reader) -> Option<CloseFrame> {
    loop {
        match tokio::time::timeout(STEP, reader.next()).await {
            Ok(Some(Ok(Event::Frame(_)))) => continue,
            Ok(Some(Ok(Event::Closed(frame)))) => return frame,
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

async fn reply_to(reader: &mut Reader, request_id: &str) -> Result<Ack, ErrorFrame> {
    loop {
        let frame = next_frame(reader).await;
        if frame.request_id != request_id {
            continue;
        }
        return match frame.kind {
            Some(Kind::Ack(ack)) => Ok(ack),
            Some(Kind::Error(e)) => Err(e),
            other => panic!("unexpected reply {other:?}"),
        };
    }
}

async fn next_error(reader: &mut Reader) -> (String, ErrorFrame) {
    loop {
        let frame = next_frame(reader).await;
        if let Some(Kind::Error(e)) = frame.kind {
            return (frame.request_id, e);
        }
    }
}

async fn collect(
    reader: &mut Reader,
    count: usize,
    acks_expected: usize,
    window: Option<Arc<Semaphore>>,
    within: Duration,
) -> Collected {
    let mut messages = Vec::new();
    let mut acks = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while messages.len() < count || acks.len() < acks_expected {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, reader.next()).await {
            Ok(Some(Ok(Event::Frame(frame)))) => match frame.kind {
                Some(Kind::Message(m)) => messages.push(m),
                Some(Kind::Ack(a)) => {
                    acks.push((frame.request_id, a));
                    if let Some(w) = &window {
                        w.add_permits(1);
                    }
                }
                Some(Kind::Error(e)) => panic!("error frame while collecting: {e:?}"),
                _ => {}
            },
            other => panic!(
                "stopped after {} of {count} messages and {} of {acks_expected} acks: {other:?}",
                messages.len(),
                acks.len()
            ),
        }
    }
    (messages, acks)
}

/// Asserts the messages are exactly seqs 1..=n, in order.
pub fn assert_gap_free(messages: &[Message], n: usize, who: &str) {
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let expected: Vec<u64> = (1..=n as u64).collect();
    if seqs != expected {
        let first_bad = seqs.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "{who} saw {} messages, not seqs 1..={n} in order (first difference at index {first_bad:?})",
            seqs.len()
        );
    }
}
