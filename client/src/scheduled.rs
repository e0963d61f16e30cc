//! Scheduled messages: kept by the server at once, sent at their time.

use chat_proto::v1::{
    client_frame::Kind, CancelScheduled, ListScheduled, ScheduledList, ScheduledMessage, Send,
};

use crate::{
    client::{fresh_id, Client},
    driver::changes::Reply,
    ClientError,
};

impl Client {
    /// Schedules `body` to be sent in `room` at `deliver_at_ms` (Unix ms,
    /// in the future, at most 30 days ahead): the message as kept, state
    /// "pending". At that time it is delivered like any message, its `id`
    /// the scheduled one. Asked again after a reconnect until answered
    /// (one `client_msg_id`, so it is kept once).
    pub async fn schedule(
        &self,
        room: &str,
        body: &str,
        deliver_at_ms: i64,
    ) -> Result<ScheduledMessage, ClientError> {
        let frame = Kind::Send(Send {
            room: room.into(),
            client_msg_id: fresh_id(),
            body: body.into(),
            reply_to: None,
            deliver_at_ms: Some(deliver_at_ms),
        });
        self.ask(fresh_id(), frame, Reply::Scheduled).await
    }

    /// Cancels this user's scheduled message `id` before its time: state
    /// "cancelled"; refused with code `conflict` once it was sent.
    pub async fn cancel_scheduled(
        &self,
        room: &str,
        id: &str,
    ) -> Result<ScheduledMessage, ClientError> {
        let frame = Kind::CancelScheduled(CancelScheduled {
            room: room.into(),
            id: id.into(),
        });
        self.ask(fresh_id(), frame, Reply::Scheduled).await
    }

    /// This user's messages in `room` waiting for their time, soonest first.
    pub async fn scheduled(&self, room: &str) -> Result<ScheduledList, ClientError> {
        let frame = Kind::ListScheduled(ListScheduled { room: room.into() });
        self.ask(fresh_id(), frame, Reply::ScheduledList).await
    }
}
