//! The task behind a [`crate::Client`]: owns the socket, reconnects, rejoins
//! rooms with `sinceSeq`, and resends unacknowledged sends in the order they
//! were first submitted (and member commands and lookups until answered, with their
//! command id, so each is applied once).
//!
//! In: [`Command`]s from the client handles, and frames from the current
//! socket. Out: frames written to the socket, each command's answer on its
//! oneshot, and the messages of joined rooms on the application's stream
//! (their signals on another, if asked for).
//!
//! Why one task: correlation (request id → waiter), the per-room last seq
//! and the queue of unacked sends change on every frame and every
//! reconnect; owned by one task they need no lock, and a reconnect sees a
//! consistent picture of what is still owed.

pub(crate) mod changes;
mod commands;
mod conn;
mod reconnect;
mod rooms;
mod sends;
mod server_errors;
mod session;

use chat_proto::v1::Message;
use tokio::sync::mpsc;

use crate::{options::ClientOptions, Backoff, ClientError, Signal};

use changes::Changes;
pub(crate) use commands::Command;
use rooms::Rooms;
use sends::Sends;

pub(crate) struct Driver {
    options: ClientOptions,
    commands: mpsc::UnboundedReceiver<Command>,
    /// `None` once the client stopped, which ends the application's stream.
    messages: Option<mpsc::UnboundedSender<Message>>,
    /// Where pushed signals go, if the application wants them.
    signals: Option<mpsc::UnboundedSender<Signal>>,
    rooms: Rooms,
    /// Every unacked send, in the order submitted: resent in this order.
    sends: Sends,
    /// Member commands not answered yet.
    changes: Changes,
    /// Whether the application watches the feed (every socket then does).
    feed: bool,
    /// Lookups not answered yet.
    /// Reconnect delays; reset after a connection that lasted.
    backoff: Backoff,
    /// Index into `options.urls` of the gateway to try next.
    next_url: usize,
}

impl Driver {
    pub(crate) fn new(
        options: ClientOptions,
        commands: mpsc::UnboundedReceiver<Command>,
        messages: mpsc::UnboundedSender<Message>,
        signals: Option<mpsc::UnboundedSender<Signal>>,
    ) -> Self {
        Self {
            backoff: Backoff::new(options.backoff_base, options.backoff_max),
            sends: Sends::new(&options),
            options,
            commands,
            messages: Some(messages),
            signals,
            rooms: Rooms::default(),
            changes: Changes::default(),
            feed: false,
            next_url: 0,
        }
    }

    /// Gives up: every waiter learns why, the message stream ends, and
    /// later requests are answered with the same reason until the client
    /// is dropped.
    async fn stop(mut self, reason: String) {
        self.messages = None;
        self.signals = None;
        self.rooms.stop(&reason);
        self.sends.stop(&reason);
        self.changes.stop(&reason);
        let stopped = || ClientError::Stopped(reason.clone());
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::Join { reply, .. } => drop(reply.send(Err(stopped()))),
                Command::Leave { reply, .. } => drop(reply.send(Err(stopped()))),
                Command::Send { reply, .. } => drop(reply.send(Err(stopped()))),
                Command::Change { reply, .. } => reply.fail(stopped()),
                Command::Ephemeral(_) | Command::WatchFeed => {}
                Command::Close => return,
            }
        }
    }
}
