//! What a room's sockets hear besides its messages: who is typing, who
//! came online or went offline, whose read marker moved, and the user's own
//! read marker after each join; and the feed of the user's rooms. Ephemeral: the server drops them for a
//! socket that cannot keep up, and they are not replayed on reconnect (the
//! next one says it again).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use chat_proto::v1::{server_frame::Kind, Feed, PresenceNow, ReadMarker, Reads, TypingNow};
use tokio::sync::mpsc;

/// One pushed signal.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    /// Who is typing in a room now.
    Typing(TypingNow),
    /// Users of a room who came online or went offline.
    Presence(PresenceNow),
    /// Members of a room whose read marker moved.
    Reads(Reads),
    /// This user's read marker and unread count in a room just joined.
    ReadMarker(ReadMarker),
    /// The feed of the user's rooms ([`crate::Client::watch_feed`]): rooms
    /// as they stand now. `whole`: part of the answer to a watch (after
    /// each reconnect too), which lists every room; rooms not in it once
    /// one without `more` arrives are no longer the user's.
    Feed { feed: Feed, whole: bool },
}

impl Signal {
    /// The signal a pushed frame carries, if it is one.
    pub(crate) fn of(kind: Kind) -> Option<Self> {
        Some(match kind {
            Kind::TypingNow(now) => Self::Typing(now),
            Kind::PresenceNow(now) => Self::Presence(now),
            Kind::Reads(reads) => Self::Reads(reads),
            Kind::ReadMarker(marker) => Self::ReadMarker(marker),
            Kind::Feed(feed) => Self::Feed { feed, whole: false },
            _ => return None,
        })
    }
}

/// The signals of joined rooms, as they come (see
/// [`crate::Client::connect_with_signals`]). Unbounded like `Messages`:
/// read it steadily.
#[derive(Debug)]
pub struct Signals(pub(crate) mpsc::UnboundedReceiver<Signal>);

impl Signals {
    pub async fn recv(&mut self) -> Option<Signal> {
        self.0.recv().await
    }
}

impl futures::Stream for Signals {
    type Item = Signal;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Signal>> {
        self.0.poll_recv(cx)
    }
}
