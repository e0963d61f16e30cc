//! Two clients chat through a cluster: one sends, the other reads.
//!
//! ```bash
//! cargo run -p chat-client --example chat_pair -- \
//!     --url ws://127.0.0.1:8080/v1/ws --url ws://127.0.0.1:8081/v1/ws \
//!     --token "$ALICE" --token2 "$BOB" --room lobby
//! ```
//!
//! The reader tries the gateways in reverse order, so with two URLs the
//! pair sits on different gateways; kill one meanwhile and both carry on.

use std::collections::HashSet;

use anyhow::Context;
use chat_client::{Client, ClientEncoding, ClientOptions};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Two clients, one sending and one reading")]
struct Args {
    /// Gateway WebSocket URLs (repeat the flag for several).
    #[arg(long = "url", default_value = "ws://127.0.0.1:8080/v1/ws")]
    urls: Vec<String>,
    /// The sender's access token (see `gateway dev-token`).
    #[arg(long)]
    token: String,
    /// The reader's access token; the sender's by default (two devices of one user).
    #[arg(long)]
    token2: Option<String>,
    #[arg(long, default_value = "lobby")]
    room: String,
    /// How many messages to send.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// The reader speaks protobuf (the sender always speaks JSON).
    #[arg(long)]
    proto: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let reader_encoding = if args.proto {
        ClientEncoding::Proto
    } else {
        ClientEncoding::Json
    };
    let reader_urls: Vec<String> = args.urls.iter().rev().cloned().collect();
    let reader_token = args.token2.clone().unwrap_or_else(|| args.token.clone());
    let (reader, mut inbox) = Client::connect(ClientOptions::new(
        reader_urls,
        reader_token,
        reader_encoding,
    ));
    let (sender, _sender_inbox) = Client::connect(ClientOptions::new(
        args.urls.clone(),
        args.token.clone(),
        ClientEncoding::Json,
    ));

    let joined = reader.join(&args.room, None).await.context("reader join")?;
    println!("reader joined {} at seq {}", joined.room, joined.head_seq);

    // Sent one after another: each send is resent until acked, so a
    // gateway dying here costs a pause, not a message.
    let mut ours = HashSet::new();
    for n in 0..args.count {
        let ack = sender
            .send(&args.room, &format!("hello #{n}"))
            .await
            .context("send")?;
        println!("sender: acked as seq {}", ack.seq);
        ours.insert(ack.client_msg_id);
    }

    while !ours.is_empty() {
        let message = inbox.recv().await.context("the reader stopped")?;
        ours.remove(&message.client_msg_id);
        println!(
            "reader: #{} <{}> {}",
            message.seq, message.sender, message.body
        );
    }
    sender.close();
    reader.close();
    Ok(())
}
