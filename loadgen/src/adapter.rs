//! One interface over every system the load generator drives: this chat
//! (JSON or protobuf), Socket.IO (Engine.IO v4 over WebSocket), a plain JSON
//! WebSocket protocol (the FastAPI peer and the bare tokio floor), and raw
//! NATS core pub/sub (a floor with no WebSocket at all).

use std::net::IpAddr;

use anyhow::{anyhow, bail, Context};
use chat_client::{ConnectOptions, Event};
use chat_proto::v1::{client_frame, server_frame::Kind, Typing};
use chat_protocol::codec::Encoding;
use futures::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{client::IntoClientRequest, protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Which system is under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// This chat system, JSON encoding.
    Ours,
    /// This chat system, protobuf encoding.
    OursProto,
    /// Socket.IO 4 with the Redis adapter (bench/peers/socketio).
    Socketio,
    /// The plain JSON WebSocket protocol: FastAPI + broadcaster
    /// (bench/peers/fastapi) or the bare tokio floor (`wsfloor`).
    Json,
    /// NATS core pub/sub, one client per connection.
    Nats,
}

/// What arrived on a connection.
pub enum Incoming {
    Joined,
    Ack {
        id: String,
    },
    Message {
        body: String,
    },
    Error {
        code: String,
    },
    Pong,
    /// Engine.IO heartbeat that must be answered.
    EnginePing,
    Closed {
        code: Option<u16>,
    },
    Other,
}

/// How a connection is opened.
pub struct Dial<'a> {
    pub target: Target,
    pub url: &'a str,
    pub user: &'a str,
    pub token: &'a str,
    pub local_addr: Option<IpAddr>,
}

pub enum Tx {
    Ours(chat_client::Writer),
    Ws {
        sink: SplitSink<Ws, Message>,
        socketio: bool,
    },
    Nats(async_nats::Client),
}

pub enum Rx {
    Ours(chat_client::Reader),
    Ws {
        stream: SplitStream<Ws>,
        socketio: bool,
    },
    Nats(Option<async_nats::Subscriber>),
}

/// Small read buffers, as a real client fleet would have.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024)
}

pub async fn connect(dial: &Dial<'_>) -> anyhow::Result<(Tx, Rx)> {
    match dial.target {
        Target::Ours | Target::OursProto => {
            let encoding = if dial.target == Target::Ours {
                Encoding::Json
            } else {
                Encoding::Proto
            };
            let mut options = ConnectOptions::new(dial.url, dial.token, encoding);
            options.local_addr = dial.local_addr;
            options.read_buffer = 16 * 1024;
            let (w, r) = chat_client::connect(&options).await?;
            Ok((Tx::Ours(w), Rx::Ours(r)))
        }
        Target::Json | Target::Socketio => {
            let socketio = dial.target == Target::Socketio;
            let url = if socketio {
                format!(
                    "{}/socket.io/?EIO=4&transport=websocket",
                    dial.url.trim_end_matches('/')
                )
            } else {
                format!("{}/ws?user={}", dial.url.trim_end_matches('/'), dial.user)
            };
            let request = url.into_client_request()?;
            let stream = match dial.local_addr {
                Some(ip) => chat_client::connect_from(ip, request.uri()).await?,
                None => {
                    let uri = request.uri();
                    let stream = TcpStream::connect((
                        uri.host().context("no host")?,
                        uri.port_u16().unwrap_or(80),
                    ))
                    .await?;
                    stream.set_nodelay(true)?;
                    stream
                }
            };
            let (ws, _) =
                client_async_with_config(request, MaybeTlsStream::Plain(stream), Some(ws_config()))
                    .await?;
            let (mut sink, mut stream) = ws.split();
            if socketio {
                // Engine.IO open packet, then connect to the default namespace.
                match stream.next().await {
                    Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
                    other => bail!("no Engine.IO open packet: {other:?}"),
                }
                sink.send(Message::Text("40".into())).await?;
                match stream.next().await {
                    Some(Ok(Message::Text(t))) if t.starts_with("40") => {}
                    other => bail!("Socket.IO connect refused: {other:?}"),
                }
            }
            Ok((Tx::Ws { sink, socketio }, Rx::Ws { stream, socketio }))
        }
        Target::Nats => {
            let client = async_nats::connect(dial.url).await?;
            Ok((Tx::Nats(client), Rx::Nats(None)))
        }
    }
}

fn nats_subject(room: &str) -> String {
    format!("bench.{room}")
}

impl Tx {
    pub async fn join(&mut self, room: &str, rx: &mut Rx) -> anyhow::Result<()> {
        match self {
            Tx::Ours(w) => {
                w.join(room, None).await?;
            }
            Tx::Ws {
                sink,
                socketio: true,
            } => {
                sink.send(Message::Text(format!("42{}", json!(["join", room])).into()))
                    .await?
            }
            Tx::Ws { sink, .. } => {
                sink.send(Message::Text(
                    json!({"type": "join", "room": room}).to_string().into(),
                ))
                .await?
            }
            Tx::Nats(client) => {
                if let Rx::Nats(sub) = rx {
                    *sub = Some(client.subscribe(nats_subject(room)).await?);
                    client.flush().await?;
                }
                return Ok(());
            }
        }
        loop {
            match rx.next().await {
                Some(Incoming::Joined) => return Ok(()),
                Some(Incoming::EnginePing) => self.engine_pong().await?,
                Some(Incoming::Error { code }) => bail!("join refused: {code}"),
                Some(Incoming::Closed { code }) => bail!("closed while joining: {code:?}"),
                Some(_) => continue,
                None => bail!("connection ended while joining"),
            }
        }
    }

    pub async fn send(&mut self, room: &str, id: &str, body: &str) -> anyhow::Result<()> {
        match self {
            Tx::Ours(w) => {
                w.send(room, id, body).await?;
            }
            Tx::Ws {
                sink,
                socketio: true,
            } => {
                let frame = json!(["send", {"room": room, "id": id, "body": body}]);
                sink.send(Message::Text(format!("42{frame}").into()))
                    .await?
            }
            Tx::Ws { sink, .. } => {
                let frame = json!({"type": "send", "room": room, "id": id, "body": body});
                sink.send(Message::Text(frame.to_string().into())).await?
            }
            Tx::Nats(client) => {
                client
                    .publish(nats_subject(room), body.to_owned().into())
                    .await?
            }
        }
        Ok(())
    }

    /// Says the user is typing in `room` (ours only; the peers have no
    /// such signal).
    pub async fn typing(&mut self, room: &str) -> anyhow::Result<()> {
        if let Tx::Ours(w) = self {
            let typing = client_frame::Kind::Typing(Typing { room: room.into() });
            w.request(typing).await?;
        }
        Ok(())
    }

    /// Application-level ping (ours only); others have transport pings.
    pub async fn ping(&mut self) -> anyhow::Result<bool> {
        match self {
            Tx::Ours(w) => {
                w.ping().await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub async fn engine_pong(&mut self) -> anyhow::Result<()> {
        if let Tx::Ws {
            sink,
            socketio: true,
        } = self
        {
            sink.send(Message::Text("3".into())).await?;
        }
        Ok(())
    }
}

impl Rx {
    pub async fn next(&mut self) -> Option<Incoming> {
        match self {
            Rx::Ours(r) => Some(match r.next().await? {
                Ok(Event::Frame(frame)) => match frame.kind {
                    Some(Kind::Message(m)) => Incoming::Message { body: m.body },
                    Some(Kind::Ack(a)) => Incoming::Ack {
                        id: a.client_msg_id,
                    },
                    Some(Kind::Joined(_)) => Incoming::Joined,
                    Some(Kind::Error(e)) => Incoming::Error { code: e.code },
                    Some(Kind::Pong(_)) => Incoming::Pong,
                    _ => Incoming::Other,
                },
                Ok(Event::Closed(frame)) => Incoming::Closed {
                    code: frame.map(|f| u16::from(f.code)),
                },
                Err(_) => Incoming::Closed { code: None },
            }),
            Rx::Ws { stream, socketio } => {
                let msg = stream.next().await?;
                Some(match msg {
                    Ok(Message::Text(t)) => parse_text(&t, *socketio).unwrap_or(Incoming::Other),
                    Ok(Message::Close(frame)) => Incoming::Closed {
                        code: frame.map(|f| u16::from(f.code)),
                    },
                    Ok(_) => Incoming::Other,
                    Err(_) => Incoming::Closed { code: None },
                })
            }
            Rx::Nats(sub) => {
                let msg = sub.as_mut()?.next().await?;
                Some(Incoming::Message {
                    body: String::from_utf8_lossy(&msg.payload).into_owned(),
                })
            }
        }
    }
}

fn parse_text(text: &str, socketio: bool) -> anyhow::Result<Incoming> {
    if socketio {
        if text == "2" {
            return Ok(Incoming::EnginePing);
        }
        let Some(payload) = text.strip_prefix("42") else {
            return Ok(Incoming::Other);
        };
        let value: serde_json::Value = serde_json::from_str(payload)?;
        let event = value[0].as_str().ok_or_else(|| anyhow!("no event name"))?;
        return Ok(match event {
            "joined" => Incoming::Joined,
            "ack" => Incoming::Ack {
                id: value[1].as_str().unwrap_or_default().to_owned(),
            },
            "message" => Incoming::Message {
                body: value[1]["body"].as_str().unwrap_or_default().to_owned(),
            },
            _ => Incoming::Other,
        });
    }
    let value: serde_json::Value = serde_json::from_str(text)?;
    Ok(match value["type"].as_str() {
        Some("joined") => Incoming::Joined,
        Some("ack") => Incoming::Ack {
            id: value["id"].as_str().unwrap_or_default().to_owned(),
        },
        Some("message") => Incoming::Message {
            body: value["body"].as_str().unwrap_or_default().to_owned(),
        },
        Some("error") => Incoming::Error {
            code: value["code"].as_str().unwrap_or("error").to_owned(),
        },
        _ => Incoming::Other,
    })
}
