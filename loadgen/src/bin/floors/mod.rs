//! What the floors (`wsfloor`, `durablefloor`) share: a socket accepted
//! with small buffers, and a writer task that flushes only once its queue
//! is empty.

use futures::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use serde_json::Value;
use tokio::{net::TcpStream, sync::mpsc, task::JoinHandle};
use tokio_tungstenite::{
    tungstenite::{protocol::WebSocketConfig, Message, Utf8Bytes},
    WebSocketStream,
};

type Ws = WebSocketStream<TcpStream>;

/// The socket's frames in; a queue out, drained by the returned writer.
pub async fn accept(
    socket: TcpStream,
) -> Option<(SplitStream<Ws>, mpsc::Sender<Utf8Bytes>, JoinHandle<()>)> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let ws = tokio_tungstenite::accept_async_with_config(socket, Some(config))
        .await
        .ok()?;
    let (sink, source) = ws.split();
    let (out_tx, out_rx) = mpsc::channel::<Utf8Bytes>(4096);
    Some((source, out_tx, tokio::spawn(write(sink, out_rx))))
}

/// The socket's next text frame that is JSON, with its `room`; `None` once
/// the socket ends.
pub async fn next_frame(source: &mut SplitStream<Ws>) -> Option<(Value, String)> {
    while let Some(Ok(Message::Text(text))) = source.next().await {
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let room = frame["room"].as_str().unwrap_or_default().to_owned();
        return Some((frame, room));
    }
    None
}

/// Writes queued frames, flushing only once the queue is empty.
async fn write(mut sink: SplitSink<Ws, Message>, mut out_rx: mpsc::Receiver<Utf8Bytes>) {
    while let Some(text) = out_rx.recv().await {
        if sink.feed(Message::Text(text)).await.is_err() {
            return;
        }
        while let Ok(text) = out_rx.try_recv() {
            if sink.feed(Message::Text(text)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
