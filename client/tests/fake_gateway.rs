//! The `Client` against a scripted gateway: cases a real cluster rarely
//! produces on demand (a replay that overlaps what was seen, `rate_limited`).

use std::time::Duration;

use chat_client::{Client, ClientEncoding, ClientOptions, Message};
use chat_proto::v1::{
    client_frame, server_frame::Kind, Ack, ClientFrame, Error, Joined, ServerFrame,
};
use chat_protocol::codec::{Encoding, Payload};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::{
    accept_hdr_async,
    tungstenite::{
        handshake::server::{ErrorResponse, Request, Response},
        http::HeaderValue,
        protocol::{frame::coding::CloseCode, CloseFrame},
        Message as Ws,
    },
    WebSocketStream,
};

type Socket = WebSocketStream<TcpStream>;

async fn accept(listener: &TcpListener) -> Socket {
    let (tcp, _) = listener.accept().await.unwrap();
    accept_hdr_async(tcp, echo_subprotocol).await.unwrap()
}

/// Answers with the JSON subprotocol, which the client insists on.
#[allow(clippy::result_large_err)] // the callback's signature is tungstenite's
fn echo_subprotocol(_: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    response.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("chat.v1.json"),
    );
    Ok(response)
}

async fn read(socket: &mut Socket) -> ClientFrame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        if let Ws::Text(text) = msg {
            return Encoding::Json
                .decode(&Payload::Text(text.to_string()))
                .unwrap();
        }
    }
}

async fn write(socket: &mut Socket, request_id: &str, kind: Kind) {
    let frame = ServerFrame {
        request_id: request_id.into(),
        kind: Some(kind),
    };
    let Payload::Text(text) = Encoding::Json.encode(&frame) else {
        unreachable!("json is text")
    };
    socket.send(Ws::Text(text.into())).await.unwrap();
}

fn message(seq: u64) -> Kind {
    Kind::Message(Message {
        room: "r".into(),
        seq,
        body: format!("m{seq}"),
        ..Default::default()
    })
}

fn ack(client_msg_id: &str, seq: u64) -> Kind {
    Kind::Ack(Ack {
        room: "r".into(),
        client_msg_id: client_msg_id.into(),
        seq,
        ..Default::default()
    })
}

/// Reads a send; returns its request id and client_msg_id.
async fn read_send(socket: &mut Socket) -> (String, String) {
    let frame = read(socket).await;
    match frame.kind {
        Some(client_frame::Kind::Send(s)) => (frame.request_id, s.client_msg_id),
        other => panic!("expected a send, got {other:?}"),
    }
}

async fn answer_join(socket: &mut Socket, head_seq: u64) -> Option<u64> {
    let frame = read(socket).await;
    let Some(client_frame::Kind::Join(join)) = frame.kind else {
        panic!("expected a join, got {frame:?}");
    };
    write(
        socket,
        &frame.request_id,
        Kind::Joined(Joined {
            room: join.room,
            head_seq,
        }),
    )
    .await;
    join.since_seq
}

fn client(listener: &TcpListener) -> ClientOptions {
    let url = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
    ClientOptions::new([url], "token", ClientEncoding::Json)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
}

#[tokio::test]
async fn a_resume_drops_the_overlap_and_resends_only_unacked_sends_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (client, mut messages) = Client::connect(client(&listener));
    let gateway = async {
        let mut first = accept(&listener).await;
        assert_eq!(answer_join(&mut first, 0).await, None);
        for seq in 1..=3 {
            write(&mut first, "", message(seq)).await;
        }
        let sends = [
            read_send(&mut first).await,
            read_send(&mut first).await,
            read_send(&mut first).await,
        ];
        write(&mut first, &sends[0].0, ack(&sends[0].1, 4)).await;
        write(&mut first, "", message(4)).await;
        first
            .close(Some(CloseFrame {
                code: CloseCode::from(4008),
                reason: "slow_consumer".into(),
            }))
            .await
            .unwrap();

        let mut second = accept(&listener).await;
        assert_eq!(
            answer_join(&mut second, 6).await,
            Some(4),
            "resumes after 4"
        );
        // The replay overlaps what the client saw.
        for seq in 3..=6 {
            write(&mut second, "", message(seq)).await;
        }
        let resent = [read_send(&mut second).await, read_send(&mut second).await];
        assert_eq!(
            [resent[0].1.as_str(), resent[1].1.as_str()],
            ["s1", "s2"],
            "only the unacked, in order"
        );
        write(&mut second, &resent[0].0, ack("s1", 5)).await;
        write(&mut second, &resent[1].0, ack("s2", 6)).await;
        second
    };
    let app = async {
        client.join("r", None).await.unwrap();
        let acks: Vec<_> = ["s0", "s1", "s2"]
            .iter()
            .map(|id| client.submit("r", id, "x"))
            .collect();
        let mut seqs = Vec::new();
        for _ in 0..6 {
            seqs.push(messages.recv().await.unwrap().seq);
        }
        let acked: Vec<u64> = futures::future::join_all(acks)
            .await
            .into_iter()
            .map(|a| a.unwrap().seq)
            .collect();
        (seqs, acked)
    };
    let (_socket, (seqs, acked)) = tokio::join!(gateway, app);
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "each seq once, in order");
    assert_eq!(acked, [4, 5, 6]);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), messages.recv())
            .await
            .is_err(),
        "no duplicate trails"
    );
}

#[tokio::test]
async fn the_window_caps_sends_in_flight_and_rate_limited_sends_are_resent_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (client, _messages) = Client::connect(client(&listener).max_inflight_sends(2));
    let acks: Vec<_> = (0..4)
        .map(|n| client.submit("r", &format!("s{n}"), "x"))
        .collect();
    let mut socket = accept(&listener).await;
    let first = [read_send(&mut socket).await, read_send(&mut socket).await];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), socket.next())
            .await
            .is_err(),
        "nothing beyond the window"
    );
    for (request_id, _) in &first {
        let refused = Kind::Error(Error {
            code: "rate_limited".into(),
            message: "slow down".into(),
        });
        write(&mut socket, request_id, refused).await;
    }
    let mut order = Vec::new();
    for seq in 1..=4 {
        let (request_id, id) = read_send(&mut socket).await;
        write(&mut socket, &request_id, ack(&id, seq)).await;
        order.push(id);
    }
    assert_eq!(order, ["s0", "s1", "s2", "s3"]);
    for (n, a) in futures::future::join_all(acks)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(a.unwrap().seq, n as u64 + 1);
    }
}

#[tokio::test]
async fn a_send_refused_rate_limited_too_often_fails_with_a_typed_error_and_the_next_goes_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = client(&listener)
        .max_inflight_sends(1)
        .rate_limited_attempts(3);
    let (client, _messages) = Client::connect(options);
    let refused = client.submit("r", "s0", "x");
    let next = client.submit("r", "s1", "x");
    let mut socket = accept(&listener).await;
    for _ in 0..3 {
        let (request_id, id) = read_send(&mut socket).await;
        assert_eq!(id, "s0", "the refused send is retried first, alone");
        let error = Kind::Error(Error {
            code: "rate_limited".into(),
            message: "sending faster than this socket may; slow down".into(),
        });
        write(&mut socket, &request_id, error).await;
    }
    let (request_id, id) = read_send(&mut socket).await;
    assert_eq!(id, "s1");
    write(&mut socket, &request_id, ack(&id, 1)).await;
    let err = refused.await.unwrap_err();
    assert!(
        matches!(&err, chat_client::ClientError::RateLimited(m) if m.contains("slow down")),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("rate_limited"));
    assert_eq!(next.await.unwrap().seq, 1);
}
