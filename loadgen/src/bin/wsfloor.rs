//! `wsfloor`: the floor for WebSocket fan-out: a bare tokio WebSocket server
//! that relays each message to the room's sockets, with no broker, no
//! database, no auth. It speaks the plain JSON protocol of the FastAPI peer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{stream::SplitSink, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{broadcast, mpsc},
};
use tokio_tungstenite::{
    tungstenite::{protocol::WebSocketConfig, Message, Utf8Bytes},
    WebSocketStream,
};

type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9300".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("wsfloor listening on {addr}");
    let rooms: Rooms = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, Arc::clone(&rooms)));
    }
}

/// One socket: this task relays what it reads, a writer task sends what the
/// socket's rooms and acks queue for it.
async fn serve(stream: TcpStream, rooms: Rooms) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (sink, mut source) = ws.split();
    let (out_tx, out_rx) = mpsc::channel::<Utf8Bytes>(4096);
    let writer = tokio::spawn(write(sink, out_rx));
    while let Some(Ok(Message::Text(text))) = source.next().await {
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let room = frame["room"].as_str().unwrap_or_default().to_owned();
        match frame["type"].as_str() {
            Some("join") => {
                let mut rx = rooms
                    .lock()
                    .unwrap()
                    .entry(room.clone())
                    .or_insert_with(|| broadcast::channel(65536).0)
                    .subscribe();
                let out = out_tx.clone();
                tokio::spawn(async move {
                    while let Ok(text) = rx.recv().await {
                        if out.send(text).await.is_err() {
                            return;
                        }
                    }
                });
                let _ = out_tx
                    .send(json!({"type": "joined", "room": room}).to_string().into())
                    .await;
            }
            Some("send") => {
                let message = json!({"type": "message", "room": room, "id": frame["id"], "body": frame["body"]});
                let sender = rooms.lock().unwrap().get(&room).cloned();
                if let Some(sender) = sender {
                    let _ = sender.send(message.to_string().into());
                }
                let _ = out_tx
                    .send(json!({"type": "ack", "id": frame["id"]}).to_string().into())
                    .await;
            }
            _ => {}
        }
    }
    writer.abort();
}

/// Writes queued frames, flushing only once the queue is empty.
async fn write(
    mut sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    mut out_rx: mpsc::Receiver<Utf8Bytes>,
) {
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
