//! One user's socket to a gateway, with the requests a chat user makes
//! (join, send and wait for the reply) and the reads of [`Frames`].

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use chat_client::{Reader, Writer};
use chat_proto::v1::{
    client_frame, server_frame::Kind, Ack, Error as ErrorFrame, ListRooms, MarkRead, ReadMarker,
};
use tokio::task::JoinHandle;

use crate::frames::Frames;

pub struct Session {
    user: String,
    pub writer: Writer,
    pub reader: Reader,
}

impl Frames for Session {
    fn reader(&mut self) -> &mut Reader {
        &mut self.reader
    }
}

impl Session {
    pub fn new(user: &str, writer: Writer, reader: Reader) -> Self {
        Self {
            user: user.into(),
            writer,
            reader,
        }
    }

    /// The two halves, for a test that writes and reads in separate tasks.
    pub fn into_parts(self) -> (Writer, Reader) {
        (self.writer, self.reader)
    }

    /// Joins a room and returns the head seq the gateway reported.
    pub async fn join(&mut self, room: &str) -> u64 {
        self.join_at(room, None).await
    }

    /// Joins a room asking for the messages after `seq` (a reconnect).
    pub async fn join_since(&mut self, room: &str, seq: u64) -> u64 {
        self.join_at(room, Some(seq)).await
    }

    async fn join_at(&mut self, room: &str, since: Option<u64>) -> u64 {
        let request_id = self.writer.join(room, since).await.unwrap();
        let frame = self.next_frame().await;
        assert_eq!(frame.request_id, request_id);
        match frame.kind {
            Some(Kind::Joined(j)) => j.head_seq,
            other => panic!("{} expected joined, got {other:?}", self.user),
        }
    }

    /// Sends and waits for the reply to that request (skipping pushed messages).
    pub async fn send_and_wait(
        &mut self,
        room: &str,
        id: &str,
        body: &str,
    ) -> Result<Ack, ErrorFrame> {
        let request_id = self.writer.send(room, id, body).await.unwrap();
        self.reply_to(&request_id).await
    }

    /// Writes a request and returns the kind of its reply, skipping
    /// pushed frames (for lookups: `roomList`, `searchResults`, `error`).
    pub async fn ask(&mut self, request: client_frame::Kind) -> Kind {
        let request_id = self.writer.request(request).await.unwrap();
        loop {
            let frame = self.next_frame().await;
            if frame.request_id == request_id {
                return frame.kind.expect("a reply has a kind");
            }
        }
    }

    /// Marks `room` read up to `seq`: the marker as stored, or the error
    /// code.
    pub async fn mark_read(&mut self, room: &str, seq: i64) -> Result<ReadMarker, String> {
        let request = client_frame::Kind::MarkRead(MarkRead {
            room: room.into(),
            seq,
        });
        match self.ask(request).await {
            Kind::ReadMarker(marker) => Ok(marker),
            Kind::Error(e) => Err(e.code),
            other => panic!("expected readMarker, got {other:?}"),
        }
    }

    /// The user's room as the room list shows it: (read marker, unread).
    pub async fn listed(&mut self, room: &str) -> (u64, u32) {
        let request = client_frame::Kind::ListRooms(ListRooms {
            cursor: String::new(),
            limit: Some(200),
        });
        let Kind::RoomList(list) = self.ask(request).await else {
            panic!("expected roomList");
        };
        let summary = list.rooms.into_iter().find(|r| r.room == room);
        let summary = summary.expect("the room is listed");
        (summary.read_seq, summary.unread)
    }

    /// Sends to `room` one message at a time, each after the previous one's
    /// reply, until `stop` is set. The task returns each send's
    /// client_msg_id and reply, in order.
    pub fn chat_steadily(
        mut self,
        room: &str,
        stop: &Arc<AtomicBool>,
    ) -> JoinHandle<Vec<(String, Result<Ack, ErrorFrame>)>> {
        let (room, stop) = (room.to_owned(), Arc::clone(stop));
        tokio::spawn(async move {
            let mut replies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let id = format!("{}-{}", self.user, replies.len());
                let reply = self.send_and_wait(&room, &id, "steady").await;
                replies.push((id, reply));
            }
            replies
        })
    }
}
