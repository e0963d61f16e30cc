//! `GET /v1/rooms/{room}/messages`: a page of a room's history over HTTP,
//! for its members (JWT) and the trusted backend (service token), read by
//! `rooms::pages` like the WebSocket's `history` frame. Answers carry an
//! `ETag` (a client revalidating with `If-None-Match` gets 304 and no body)
//! and are compressed (gzip, br, zstd, as the client accepts) above
//! `COMPRESS_ABOVE` bytes.

use std::hash::{Hash, Hasher};

use axum::{
    extract::{FromRequestParts, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use chat_proto::v1::{HistoryPage, Message};
use chat_protocol::{access::Actor, RoomId};
use serde::{Deserialize, Serialize};
use tower_http::compression::{predicate::SizeAbove, CompressionLayer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::GatewayError,
    http::api::{Authenticated, ErrorBody, Params},
    rooms::pages::PageQuery,
    state::AppState,
};

/// Smaller answers are sent as they are: compressing a few hundred bytes
/// saves less than it costs.
const COMPRESS_ABOVE: u16 = 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(messages))
        .layer(CompressionLayer::new().compress_when(SizeAbove::new(COMPRESS_ABOVE)))
}

/// At most one of `before`, `after` and `around`; none: the newest page.
/// Taken as text and checked here, so that a malformed one is answered
/// `invalid_argument` like any other bad input.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// Messages with seqs below this one (the `before` of the previous page).
    #[param(value_type = Option<i64>, minimum = 1)]
    before: Option<String>,
    /// Messages with seqs above this one (the `after` of the previous page; 0: from the first).
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    /// Messages around this seq, it included.
    #[param(value_type = Option<i64>, minimum = 1)]
    around: Option<String>,
    /// Messages per page: 1 to 200, 50 when absent.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
}

impl PageParams {
    fn query(&self) -> Result<PageQuery, GatewayError> {
        PageQuery::parse(
            number("before", &self.before)?,
            number("after", &self.after)?,
            number("around", &self.around)?,
            number("limit", &self.limit)?,
        )
    }
}

fn number(name: &str, value: &Option<String>) -> Result<Option<i64>, GatewayError> {
    value
        .as_deref()
        .map(|v| {
            v.parse().map_err(|_| {
                GatewayError::InvalidArgument(format!("{name} must be a whole number, not {v:?}"))
            })
        })
        .transpose()
}

/// Query parameters, refused as `invalid_argument` like the path's.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(GatewayError))]
struct QueryParams<T>(T);

/// A page of a room's history, in seq order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PageView {
    room: String,
    messages: Vec<MessageView>,
    /// Older messages exist: ask with `before` = this page's `before`.
    has_before: bool,
    /// Newer messages exist: ask with `after` = this page's `after`.
    has_after: bool,
    /// The first seq of the page (of where it would be, when empty).
    before: u64,
    /// The last seq of the page (of where it would be, when empty).
    after: u64,
}

/// A stored entry, as the WebSocket's `message` frame carries it: a chat
/// message as it stands now, or an event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MessageView {
    room: String,
    seq: u64,
    id: String,
    sender: String,
    /// A chat message's text (empty once deleted); an edit's new text.
    body: String,
    ts_ms: i64,
    client_msg_id: String,
    /// Empty for a chat message; `member_joined`, `member_left`,
    /// `role_changed`, `message_edited`, `message_deleted`,
    /// `reaction_added` or `reaction_removed`.
    kind: String,
    /// The member a change is about.
    member: String,
    /// The member's role and flags after a join or a role change.
    access: Option<AccessView>,
    /// When the message was last edited (0: never).
    edited_ts_ms: i64,
    /// A tombstone: the message was deleted.
    deleted: bool,
    /// The seq and id of the message this one answers (0 and empty: none).
    reply_to: u64,
    reply_to_id: String,
    /// How many messages answer this one.
    reply_count: u32,
    reactions: Vec<ReactionView>,
    /// The newest entry this state includes: events up to it are applied.
    changed_seq: u64,
    /// An event's message: its seq and id.
    target_seq: u64,
    target_id: String,
    /// A reaction event's emoji.
    emoji: String,
}

#[derive(Serialize, ToSchema)]
struct AccessView {
    role: String,
    permissions: Vec<String>,
}

/// One emoji on a message: how many reacted with it, and whether the asker did.
#[derive(Serialize, ToSchema)]
struct ReactionView {
    emoji: String,
    count: u32,
    mine: bool,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            room: m.room,
            seq: m.seq,
            id: m.id,
            sender: m.sender,
            body: m.body,
            ts_ms: m.ts_ms,
            client_msg_id: m.client_msg_id,
            kind: m.kind,
            member: m.member,
            access: m.access.map(|a| AccessView {
                role: a.role,
                permissions: a.permissions,
            }),
            edited_ts_ms: m.edited_ts_ms,
            deleted: m.deleted,
            reply_to: m.reply_to,
            reply_to_id: m.reply_to_id,
            reply_count: m.reply_count,
            reactions: m
                .reactions
                .into_iter()
                .map(|r| ReactionView {
                    emoji: r.emoji,
                    count: r.count,
                    mine: r.mine,
                })
                .collect(),
            changed_seq: m.changed_seq,
            target_seq: m.target_seq,
            target_id: m.target_id,
            emoji: m.emoji,
        }
    }
}

impl From<HistoryPage> for PageView {
    fn from(p: HistoryPage) -> Self {
        Self {
            room: p.room,
            messages: p.messages.into_iter().map(MessageView::from).collect(),
            has_before: p.has_before,
            has_after: p.has_after,
            before: p.before,
            after: p.after,
        }
    }
}

/// A page of the room's history, for the service or a member of the room.
#[utoipa::path(
    get, path = "/v1/rooms/{room}/messages", tag = "messages",
    params(
        ("room" = String, Path),
        PageParams,
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a page read before: 304 if it is unchanged"),
    ),
    responses(
        (status = 200, description = "The page, with its ETag; Server-Timing names where it was read (redis, replica or primary)", body = PageView),
        (status = 304, description = "Unchanged since the ETag given in If-None-Match"),
        (status = 400, description = "Bad room id, cursor or limit; more than one cursor", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "The user made more than limits.read_rate_per_user reads a second (bursts of read_burst_per_user); retry shortly", body = ErrorBody),
        (status = 403, description = "Not a member of the room (users)", body = ErrorBody),
        (status = 404, description = "No such room (service)", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry", body = ErrorBody),
    )
)]
async fn messages(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    Params(room): Params<String>,
    QueryParams(params): QueryParams<PageParams>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let room = RoomId::parse(room)?;
    let query = params.query()?;
    if let Actor::User(user) = &actor {
        state.limiter.read(user)?;
        if state.membership.access(&room, user).await?.is_none() {
            return Err(GatewayError::Forbidden("not a member of this room"));
        }
    }
    let asker = match &actor {
        Actor::User(user) => Some(user),
        Actor::Service => None,
    };
    let page = state
        .pages
        .read(&room, query, asker)
        .await?
        .ok_or(GatewayError::NotFound)?;
    // Where the page was read (redis, replica, primary), for whoever
    // measures pages from outside (bench/run.sh history).
    let timing = (
        HeaderName::from_static("server-timing"),
        HeaderValue::from_static(page.source),
    );
    let body = serde_json::to_vec(&PageView::from(page.into_proto())).expect("a page serializes");
    let etag = etag(&body);
    let cache = [
        (header::ETAG, etag.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        ),
    ];
    if matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let json = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok((cache, [json, timing], body).into_response())
}

/// A weak validator of the answer's bytes (weak: the same page compressed
/// differently is the same page).
fn etag(body: &[u8]) -> HeaderValue {
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    HeaderValue::from_str(&format!("W/\"{:016x}\"", hasher.finish()))
        .expect("hex is a valid header value")
}

/// Whether `If-None-Match` names this ETag (compared weakly) or is `*`.
fn matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default().trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == ours)
}
