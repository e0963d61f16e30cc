//! `chat`: a small interactive client. Lines typed are sent to the room;
//! messages of the room are printed as they arrive.

use anyhow::Context;
use chat_client::{connect, ConnectOptions, Event};
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(about = "Chat from a terminal")]
struct Cli {
    /// Gateway WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/ws")]
    url: String,
    /// Access token (see `gateway dev-token`).
    #[arg(long, env = "CHAT_TOKEN")]
    token: String,
    /// Room to join.
    #[arg(long, default_value = "lobby")]
    room: String,
    /// Speak protobuf instead of JSON.
    #[arg(long)]
    proto: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let encoding = if cli.proto {
        Encoding::Proto
    } else {
        Encoding::Json
    };
    let (mut writer, mut reader) = connect(&ConnectOptions::new(&cli.url, &cli.token, encoding))
        .await
        .context("connecting")?;
    writer.join(&cli.room, None).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                if !line.trim().is_empty() {
                    let id = uuid::Uuid::now_v7().to_string();
                    writer.send(&cli.room, &id, &line).await?;
                }
            }
            event = reader.next() => match event {
                Some(Ok(Event::Frame(frame))) => match frame.kind {
                    Some(Kind::Message(m)) => println!("#{} <{}> {}", m.seq, m.sender, m.body),
                    Some(Kind::Joined(j)) => eprintln!("joined {} at seq {}", j.room, j.head_seq),
                    Some(Kind::Error(e)) => eprintln!("error {}: {}", e.code, e.message),
                    _ => {}
                },
                Some(Ok(Event::Closed(frame))) => {
                    eprintln!("closed: {frame:?}");
                    break;
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
        }
    }
    writer.close().await;
    Ok(())
}
