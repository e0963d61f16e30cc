//! What a socket's requests about scheduled messages do: the sender's
//! right to send checked here, keeping and cancelling done by the workers
//! (`send::scheduled`), the list read from Postgres.

use chat_proto::v1::{server_frame::Kind, ScheduledList};
use chat_protocol::UserId;
use chat_store::Scheduled;

use crate::{
    error::GatewayError,
    send::scheduled,
    socket::{dispatch::CANNOT_SEND, request::Scheduling, session::Session},
};

impl Session {
    /// Makes, cancels (through the workers) or lists this user's
    /// scheduled messages.
    pub(super) async fn scheduling(
        &mut self,
        request_id: String,
        request: Scheduling,
    ) -> Result<(), GatewayError> {
        match request {
            Scheduling::Schedule(new) => {
                if !self.may_send(&new.room).await? {
                    return Err(GatewayError::Forbidden(CANNOT_SEND));
                }
                let (nats, user, timeout) = self.to_workers();
                self.answer_later(request_id, scheduled::schedule(nats, user, new, timeout))
            }
            Scheduling::Cancel { room, id } => {
                self.access(&room).await?;
                let (nats, user, timeout) = self.to_workers();
                self.answer_later(request_id, scheduled::cancel(nats, user, room, id, timeout))
            }
            Scheduling::List { room } => {
                self.access(&room).await?;
                let pending = self.state.store.pending_scheduled(&room, &self.member.user);
                let messages = pending.await?.iter().map(Scheduled::to_proto).collect();
                let room = room.to_string();
                let list = ScheduledList { room, messages };
                self.reply(request_id, Kind::ScheduledList(list)).await;
                Ok(())
            }
        }
    }

    /// What a request to the workers takes along: NATS, who asks, how
    /// long to wait.
    fn to_workers(&self) -> (async_nats::Client, UserId, std::time::Duration) {
        let limits = &self.state.config.limits;
        (
            self.state.nats.clone(),
            self.member.user.clone(),
            limits.ack_timeout,
        )
    }
}
