//! What the application asks of the driver, and how each request is taken:
//! recorded as owed (so a reconnect still honours it) and, when a socket is
//! open, written at once.

use chat_proto::v1::{client_frame, Ack, Joined};
use tokio::sync::oneshot;

use super::{
    changes::Reply,
    conn::{retry, write_change, write_join, write_watch_feed, Conn, Disconnect, Request},
    Driver,
};
use crate::ClientError;

/// A request to the driver. Replies come back on the oneshot.
pub(crate) enum Command {
    Join {
        room: String,
        since: Option<u64>,
        reply: oneshot::Sender<Result<Joined, ClientError>>,
    },
    Leave {
        room: String,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// An entry of a room's sequence: a `send`, `edit`, `delete` or
    /// `react` frame, with its room and client_msg_id.
    Send {
        room: String,
        client_msg_id: String,
        frame: client_frame::Kind,
        reply: oneshot::Sender<Result<Ack, ClientError>>,
    },
    /// A member command frame (its command id set), an `openDirect` or a
    /// history read (`id` then only names it here).
    Change {
        id: String,
        frame: client_frame::Kind,
        reply: Reply,
    },
    /// A frame that is never answered unless refused (`typing`): written
    /// if a socket is open, else dropped.
    Ephemeral(client_frame::Kind),
    /// Watch the feed of the user's rooms, on this socket and every next.
    WatchFeed,
    Close,
}

impl Driver {
    /// Takes one request from the application; writes it if online.
    pub(super) async fn accept(
        &mut self,
        command: Command,
        conn: Option<&mut Conn>,
    ) -> Result<(), Disconnect> {
        match command {
            Command::Join { room, since, reply } => {
                if self.rooms.follow(room.clone(), since, reply) {
                    if let Some(conn) = conn {
                        write_join(conn, &room, since).await?;
                    }
                }
            }
            Command::Leave { room, reply } => {
                // Forgotten at once: nothing of the room is delivered from
                // here on, and a reconnect does not rejoin it.
                self.rooms.forget(&room);
                match conn {
                    Some(conn) => {
                        let id = conn.writer.leave(&room).await.map_err(retry)?;
                        conn.requests.insert(id, Request::Leave(reply));
                    }
                    None => {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Command::Send {
                room,
                client_msg_id,
                frame,
                reply,
            } => self.sends.push(room, client_msg_id, frame, reply),
            Command::Change { id, frame, reply } => {
                if let Some(conn) = conn {
                    write_change(conn, id.clone(), frame.clone()).await?;
                }
                self.changes.insert(id, frame, reply);
            }
            Command::WatchFeed => {
                self.feed = true;
                if let Some(conn) = conn {
                    write_watch_feed(conn).await?;
                }
            }
            Command::Ephemeral(frame) => {
                if let Some(conn) = conn {
                    conn.writer.request(frame).await.map_err(retry)?;
                }
            }
            // Callers end the connection themselves before getting here.
            Command::Close => {}
        }
        Ok(())
    }
}
