//! Server publish (`POST /v1/rooms/{room}/messages`): a trusted backend or
//! bot posts a message as a member of the room, with the service token.
//! The send takes a socket's path (`send::ingest`: batched to JetStream,
//! stored once by a worker, fanned out, acked by its receipt) and keeps its
//! promises: answered only once committed, stored once per
//! `Idempotency-Key` (the send's client_msg_id), delivered to members in
//! seq order. The body limits apply; the send rates of people do not.

use axum::{
    extract::{FromRequestParts, State},
    http::{request::Parts, StatusCode},
    Json,
};
use chat_protocol::{
    access::Permissions, envelope::Entry, kind::EntryKind, ClientMsgId, RoomId, UserId,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::GatewayError,
    http::api::{bad_key, idempotency_key, Body, ErrorBody, Params, Service},
    send::ingest::Submission,
    socket::checks::{check_body, target_seq},
    state::AppState,
};

/// The route, for `api::router` to serve with the OpenAPI document. Only
/// POST: GET on the same path (history) is another resource's.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(publish))
}

/// The message to publish.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Publish {
    /// Who the message is from: a member of the room with
    /// `can_send_messages` (a bot is a member like anyone).
    sender: String,
    /// At most `limits.max_body_bytes` bytes (16,384 by default), no NUL.
    body: String,
    /// The seq of the room's chat message this one answers.
    #[serde(default, rename = "replyTo")]
    #[schema(minimum = 1)]
    reply_to: Option<i64>,
}

/// The stored message, as a socket's `ack` names it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Published {
    room: String,
    /// Its place in the room's sequence.
    seq: u64,
    message_id: String,
    /// When it was received, in milliseconds since the Unix epoch.
    server_ts_ms: i64,
}

/// The required `Idempotency-Key`, used as the send's client_msg_id: a
/// retry with the same key is stored once and answered with the same seq.
struct MessageKey(ClientMsgId);

impl FromRequestParts<AppState> for MessageKey {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, GatewayError> {
        let key = idempotency_key(parts)?.ok_or_else(|| {
            GatewayError::InvalidArgument(
                "Idempotency-Key is required: it makes a retried publish safe".into(),
            )
        })?;
        ClientMsgId::parse(key).map(Self).map_err(|_| bad_key())
    }
}

/// Publishes a message as `sender` (service token only). Answered once
/// committed, 201, with its seq; a retry with the same Idempotency-Key
/// stores nothing new and gets the same answer (201 again).
#[utoipa::path(
    post, path = "/v1/rooms/{room}/messages", tag = "messages",
    params(
        ("room" = String, Path),
        ("Idempotency-Key" = String, Header, description = "Required: 1–64 printable ASCII characters, the message's client_msg_id; a retry with the same key is stored once"),
    ),
    request_body = Publish,
    responses(
        (status = 201, description = "Committed (or committed before, under this key)", body = Published),
        (status = 400, description = "Bad room or sender id, body too long or with NUL, bad JSON, missing or bad Idempotency-Key, replyTo below 1 or naming an event", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "A user's JWT (only the service publishes), or the sender is not a member with can_send_messages", body = ErrorBody),
        (status = 429, description = "limits.max_inflight_publishes publishes already await their commit on this gateway; retry with the same key", body = ErrorBody),
        (status = 404, description = "No such room, or replyTo names no message of it (or a deleted one)", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry with the same key", body = ErrorBody),
        (status = 504, description = "Not confirmed in time; retry with the same key", body = ErrorBody),
    )
)]
async fn publish(
    _: Service,
    State(state): State<AppState>,
    MessageKey(client_msg_id): MessageKey,
    Params(room): Params<String>,
    Body(req): Body<Publish>,
) -> Result<(StatusCode, Json<Published>), GatewayError> {
    let received = Instant::now();
    let room = RoomId::parse(room)?;
    let sender = UserId::parse(req.sender)?;
    check_body(&req.body, &state.config.limits)?;
    let _in_flight = state
        .publishes
        .try_acquire()
        .map_err(|_| GatewayError::RateLimited)?;
    let target = req.reply_to.map(|s| target_seq("replyTo", s)).transpose()?;
    may_send(&state, &room, &sender).await?;
    let submission = Submission {
        room,
        sender,
        client_msg_id,
        body: req.body,
        entry: Entry {
            kind: EntryKind::Message,
            target,
        },
    };
    let deadline = received + state.config.limits.ack_timeout;
    let published = state.ingest.publish(submission, deadline).await?;
    let message = state.ingest.committed(published).await?;
    Ok((
        StatusCode::CREATED,
        Json(Published {
            room: message.room,
            seq: message.seq,
            message_id: message.id,
            server_ts_ms: message.ts_ms,
        }),
    ))
}

/// Refuses early what the store would refuse (a sender who may not send)
/// and what it could not store at all (a room that does not exist). The
/// store still has the last word: a sender removed meanwhile is refused
/// there, and that refusal comes back as `forbidden` too.
async fn may_send(state: &AppState, room: &RoomId, sender: &UserId) -> Result<(), GatewayError> {
    match state.membership.access(room, sender).await? {
        Some(access) if access.can(Permissions::SEND_MESSAGES) => Ok(()),
        Some(_) => Err(GatewayError::Forbidden(
            "the sender may not send messages in this room",
        )),
        None if state.store.room_head(room).await?.is_none() => Err(GatewayError::NotFound),
        None => Err(GatewayError::Forbidden(
            "the sender is not a member of this room",
        )),
    }
}
