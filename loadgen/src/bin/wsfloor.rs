//! `wsfloor`: the floor for WebSocket fan-out: a bare tokio WebSocket server
//! that relays each message to the room's sockets, with no broker, no
//! database, no auth. It speaks the plain JSON protocol of the FastAPI peer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::json;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::broadcast,
};
use tokio_tungstenite::tungstenite::Utf8Bytes;

mod floors;

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
    let Some((mut source, out_tx, writer)) = floors::accept(stream).await else {
        return;
    };
    while let Some((frame, room)) = floors::next_frame(&mut source).await {
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
