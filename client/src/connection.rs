//! One socket: the handshake, and raw `Writer`/`Reader` halves that write
//! requests and read server frames, with no retry. The resilient [`crate::Client`]
//! is built on these; tests use them directly to speak (and misspeak) the protocol.

use crate::ClientError;
use bytes::Bytes;
use chat_proto::v1::{
    client_frame::Kind, ClientFrame, Join, Leave, OpenDirect, Ping, Send, ServerFrame,
};
use chat_protocol::codec::{Encoding, Payload};
use futures::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    client_async_with_config, connect_async_with_config,
    tungstenite::{
        self,
        client::IntoClientRequest,
        http::HeaderValue,
        protocol::{frame::CloseFrame, WebSocketConfig},
        Message as WsMessage,
    },
    MaybeTlsStream, WebSocketStream,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the client proves who it is.
#[derive(Clone, Debug)]
pub enum Credentials {
    Bearer(String),
    Ticket(String),
    None,
}

/// Everything needed to open a socket.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `ws://host:port/v1/ws`
    pub url: String,
    pub credentials: Credentials,
    pub encoding: Encoding,
    /// Sent as the `Origin` header, as a browser would.
    pub origin: Option<String>,
    /// WebSocket read buffer size.
    pub read_buffer: usize,
    /// Local address to connect from: load tests spread sockets over
    /// 127.0.0.x to get past one address's ephemeral ports (plain `ws://` only).
    pub local_addr: Option<IpAddr>,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>, token: impl Into<String>, encoding: Encoding) -> Self {
        Self {
            url: url.into(),
            credentials: Credentials::Bearer(token.into()),
            encoding,
            origin: None,
            read_buffer: 64 * 1024,
            local_addr: None,
        }
    }
}

/// What the server sent.
// Nearly every event is a frame: boxing it would cost an allocation per
// frame to shrink the rare close.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event {
    Frame(ServerFrame),
    /// The server closed the socket, with its close frame if it sent one.
    Closed(Option<CloseFrame>),
}

/// The sending half of a connection.
pub struct Writer {
    sink: SplitSink<Socket, WsMessage>,
    encoding: Encoding,
    next_request: u64,
}

/// The receiving half of a connection.
pub struct Reader {
    stream: SplitStream<Socket>,
    encoding: Encoding,
}

/// Opens a socket; a refused handshake is `ClientError::Refused(status)`.
pub async fn connect(options: &ConnectOptions) -> Result<(Writer, Reader), ClientError> {
    let url = match &options.credentials {
        Credentials::Ticket(t) => format!("{}?ticket={t}", options.url),
        _ => options.url.clone(),
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| ClientError::Url(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(options.encoding.subprotocol()),
    );
    if let Credentials::Bearer(token) = &options.credentials {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| ClientError::Url(e.to_string()))?;
        headers.insert("Authorization", value);
    }
    if let Some(origin) = &options.origin {
        let value = HeaderValue::from_str(origin).map_err(|e| ClientError::Url(e.to_string()))?;
        headers.insert("Origin", value);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(options.read_buffer)
        .max_message_size(Some(16 << 20));
    let connected = match options.local_addr {
        None => connect_async_with_config(request, Some(config), true).await,
        Some(ip) => {
            let stream = connect_from(ip, request.uri()).await?;
            client_async_with_config(request, MaybeTlsStream::Plain(stream), Some(config)).await
        }
    };
    let (socket, _) = match connected {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(response)) => {
            return Err(ClientError::Refused(response.status().as_u16()))
        }
        Err(e) => return Err(e.into()),
    };
    let (sink, stream) = socket.split();
    Ok((
        Writer {
            sink,
            encoding: options.encoding,
            next_request: 1,
        },
        Reader {
            stream,
            encoding: options.encoding,
        },
    ))
}

/// Opens a TCP connection to the URI's host from a chosen local address.
pub async fn connect_from(
    ip: IpAddr,
    uri: &tungstenite::http::Uri,
) -> Result<TcpStream, ClientError> {
    let host = uri
        .host()
        .ok_or_else(|| ClientError::Url("no host".into()))?;
    let port = uri.port_u16().unwrap_or(80);
    let remote = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ClientError::Url(e.to_string()))?
        .next()
        .ok_or_else(|| ClientError::Url(format!("{host} does not resolve")))?;
    let socket = if ip.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| ClientError::Ws(e.into()))?;
    socket
        .bind(SocketAddr::new(ip, 0))
        .map_err(|e| ClientError::Ws(e.into()))?;
    let stream = socket
        .connect(remote)
        .await
        .map_err(|e| ClientError::Ws(e.into()))?;
    stream
        .set_nodelay(true)
        .map_err(|e| ClientError::Ws(e.into()))?;
    Ok(stream)
}

impl Writer {
    /// Sends a request and returns its request id.
    pub async fn request(&mut self, kind: Kind) -> Result<String, ClientError> {
        let request_id = self.next_request.to_string();
        self.next_request += 1;
        let frame = ClientFrame {
            request_id: request_id.clone(),
            kind: Some(kind),
        };
        let msg: WsMessage = self.encoding.encode(&frame).into_message();
        self.sink.send(msg).await?;
        Ok(request_id)
    }

    pub async fn join(
        &mut self,
        room: &str,
        since_seq: Option<u64>,
    ) -> Result<String, ClientError> {
        self.request(Kind::Join(Join {
            room: room.into(),
            since_seq,
        }))
        .await
    }

    pub async fn leave(&mut self, room: &str) -> Result<String, ClientError> {
        self.request(Kind::Leave(Leave { room: room.into() })).await
    }

    pub async fn send(
        &mut self,
        room: &str,
        client_msg_id: &str,
        body: &str,
    ) -> Result<String, ClientError> {
        self.request(Kind::Send(Send {
            room: room.into(),
            client_msg_id: client_msg_id.into(),
            body: body.into(),
            reply_to: None,
            deliver_at_ms: None,
        }))
        .await
    }

    /// Asks for the direct room of this user and `user`.
    pub async fn open_direct(&mut self, user: &str) -> Result<String, ClientError> {
        self.request(Kind::OpenDirect(OpenDirect { user: user.into() }))
            .await
    }

    pub async fn ping(&mut self) -> Result<String, ClientError> {
        self.request(Kind::Ping(Ping {})).await
    }

    /// Sends anything at all, for testing how the server takes bad input.
    pub async fn raw(&mut self, msg: WsMessage) -> Result<(), ClientError> {
        self.sink.send(msg).await?;
        Ok(())
    }

    /// Sends raw bytes in the socket's own frame type.
    pub async fn raw_payload(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let msg = match self.encoding {
            Encoding::Json => WsMessage::Text(String::from_utf8_lossy(bytes).into_owned().into()),
            Encoding::Proto => WsMessage::Binary(Bytes::copy_from_slice(bytes)),
        };
        self.raw(msg).await
    }

    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

impl Reader {
    /// The next frame or the close; `None` once the socket is gone.
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            let msg = match self.stream.next().await? {
                Ok(msg) => msg,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return None
                }
                Err(e) => return Some(Err(e.into())),
            };
            let payload = match msg {
                WsMessage::Text(t) => Payload::Text(t.to_string()),
                WsMessage::Binary(b) => Payload::Binary(b),
                WsMessage::Close(frame) => return Some(Ok(Event::Closed(frame))),
                _ => continue,
            };
            return Some(
                self.encoding
                    .decode::<ServerFrame>(&payload)
                    .map(Event::Frame)
                    .map_err(Into::into),
            );
        }
    }
}
