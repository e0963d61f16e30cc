//! What the application asks of the driver, and how each request is taken:
//! recorded as owed (so a reconnect still honours it) and, when a socket is
//! open, written at once.

use chat_proto::v1::{client_frame, server_frame, Ack, Applied, Joined};
use tokio::sync::oneshot;

use super::{
    conn::{retry, write_change, write_join, write_read, Conn, Disconnect, Request},
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
    Send {
        room: String,
        client_msg_id: String,
        body: String,
        reply: oneshot::Sender<Result<Ack, ClientError>>,
    },
    /// A member command frame, its command id set.
    Change {
        id: String,
        frame: client_frame::Kind,
        reply: oneshot::Sender<Result<Applied, ClientError>>,
    },
    /// A lookup frame (list rooms, search), answered with the reply's kind.
    Read {
        frame: client_frame::Kind,
        reply: oneshot::Sender<Result<server_frame::Kind, ClientError>>,
    },
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
                body,
                reply,
            } => self.sends.push(room, client_msg_id, body, reply),
            Command::Change { id, frame, reply } => {
                if let Some(conn) = conn {
                    write_change(conn, id.clone(), frame.clone()).await?;
                }
                self.changes.insert(id, frame, reply);
            }
            Command::Read { frame, reply } => {
                let id = self.reads.insert(frame.clone(), reply);
                if let Some(conn) = conn {
                    write_read(conn, id, frame).await?;
                }
            }
            // Callers end the connection themselves before getting here.
            Command::Close => {}
        }
        Ok(())
    }
}
