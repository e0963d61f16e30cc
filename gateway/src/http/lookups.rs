//! A user's lookups over HTTP, with their JWT: their rooms
//! (`GET /v1/me/rooms`) and search (`GET /v1/search`,
//! `GET /v1/rooms/{room}/search`). Parsed and answered by `lookup`, as
//! the socket's `listRooms` and `search` frames are; the JSON is the
//! frames' own (`roomList`, `searchResults`).

use axum::{
    extract::{FromRequestParts, State},
    Json,
};
use chat_proto::v1::{RoomList, SearchResults};
use chat_protocol::{access::Actor, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::GatewayError,
    http::api::{Authenticated, ErrorBody, Params},
    lookup::{my_rooms::ListRooms, search::Search},
    state::AppState,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_rooms))
        .routes(routes!(search))
        .routes(routes!(search_room))
}

/// Query parameters, refused as `invalid_argument` like the rest.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(GatewayError))]
struct Query<T>(T);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// The `nextCursor` of the page before; absent for the first page.
    cursor: Option<String>,
    /// Page size, 1 to 200; 50 when absent.
    limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// 1 to 256 bytes: words, "quoted phrases", `or`, `-excluded` words.
    q: String,
    /// The `nextCursor` of the page before; absent for the first page.
    cursor: Option<String>,
    /// Page size, 1 to 200; 50 when absent.
    limit: Option<u32>,
}

/// The user a lookup is for: the service has no rooms of its own.
/// The user a lookup is for, once it spent one of their reads.
fn reader(state: &AppState, actor: Actor) -> Result<UserId, GatewayError> {
    match actor {
        Actor::User(user) => {
            state.limiter.read(&user)?;
            Ok(user)
        }
        Actor::Service => Err(GatewayError::Forbidden(
            "a lookup is a user's: call it with the user's JWT",
        )),
    }
}

/// The rooms the user belongs to, newest activity first: each with its
/// last entry, head seq and the user's role and flags.
#[utoipa::path(
    get, path = "/v1/me/rooms", tag = "lookups",
    params(Page),
    responses(
        (status = 200, description = "One page of the user's rooms", body = RoomListDoc),
        (status = 400, description = "Malformed cursor, limit outside 1..=200", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "The user made more than limits.read_rate_per_user reads a second (bursts of read_burst_per_user); retry shortly", body = ErrorBody),
        (status = 403, description = "The service token: it belongs to no rooms", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry", body = ErrorBody),
    )
)]
async fn my_rooms(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<RoomList>, GatewayError> {
    let list = ListRooms::parse(page.cursor.as_deref().unwrap_or_default(), page.limit)?;
    Ok(Json(list.run(&state.store, &reader(&state, actor)?).await?))
}

/// Searches the chat messages of all the user's rooms: best match first,
/// then newest.
#[utoipa::path(
    get, path = "/v1/search", tag = "lookups",
    params(SearchQuery),
    responses(
        (status = 200, description = "One page of hits", body = SearchResultsDoc),
        (status = 400, description = "Empty or over-long query, malformed cursor, limit outside 1..=200", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "The user made more than limits.read_rate_per_user reads a second (bursts of read_burst_per_user); retry shortly", body = ErrorBody),
        (status = 403, description = "The service token: it belongs to no rooms", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry", body = ErrorBody),
    )
)]
async fn search(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<SearchResults>, GatewayError> {
    run_search(&state, actor, "", query).await
}

/// Searches the chat messages of one of the user's rooms.
#[utoipa::path(
    get, path = "/v1/rooms/{room}/search", tag = "lookups",
    params(("room" = String, Path), SearchQuery),
    responses(
        (status = 200, description = "One page of hits", body = SearchResultsDoc),
        (status = 400, description = "Bad room id, empty or over-long query, malformed cursor, limit outside 1..=200", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "The user made more than limits.read_rate_per_user reads a second (bursts of read_burst_per_user); retry shortly", body = ErrorBody),
        (status = 403, description = "Not a member of the room (or the service token)", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry", body = ErrorBody),
    )
)]
async fn search_room(
    Authenticated(actor): Authenticated,
    State(state): State<AppState>,
    Params(room): Params<String>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<SearchResults>, GatewayError> {
    run_search(&state, actor, &room, query).await
}

async fn run_search(
    state: &AppState,
    actor: Actor,
    room: &str,
    query: SearchQuery,
) -> Result<Json<SearchResults>, GatewayError> {
    let cursor = query.cursor.as_deref().unwrap_or_default();
    let search = Search::parse(query.q, room, cursor, query.limit)?;
    Ok(Json(
        search.run(&state.store, &reader(state, actor)?).await?,
    ))
}

// The JSON of the frames (proto3's JSON mapping: 64-bit integers as
// strings, empty fields left out), described for the OpenAPI document.

/// One page of the user's rooms; `nextCursor` absent on the last.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Read by the OpenAPI document only.
struct RoomListDoc {
    rooms: Option<Vec<RoomSummaryDoc>>,
    next_cursor: Option<String>,
}

/// A room: its last entry (absent when none), head seq, the user's
/// access, read marker and unread chat messages of others up to the head
/// (counted to 1,000).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Read by the OpenAPI document only.
struct RoomSummaryDoc {
    room: Option<String>,
    /// uint64, as a string.
    head_seq: Option<String>,
    access: Option<AccessDoc>,
    last_message: Option<MessageDoc>,
    /// uint64, as a string.
    read_seq: Option<String>,
    unread: Option<u32>,
}

/// One page of hits; `nextCursor` absent on the last.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Read by the OpenAPI document only.
struct SearchResultsDoc {
    hits: Option<Vec<SearchHitDoc>>,
    next_cursor: Option<String>,
}

/// A matching chat message and its rank (higher is better).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Read by the OpenAPI document only.
struct SearchHitDoc {
    message: Option<MessageDoc>,
    rank: Option<f32>,
}

/// A role and flags, as in the `message` frame's `access`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Read by the OpenAPI document only.
struct AccessDoc {
    role: Option<String>,
    permissions: Option<Vec<String>>,
}

/// A stored entry, as the `message` frame carries it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Read by the OpenAPI document only.
struct MessageDoc {
    room: Option<String>,
    /// uint64, as a string.
    seq: Option<String>,
    id: Option<String>,
    sender: Option<String>,
    body: Option<String>,
    /// int64 milliseconds, as a string.
    ts_ms: Option<String>,
    client_msg_id: Option<String>,
    kind: Option<String>,
    member: Option<String>,
    access: Option<AccessDoc>,
}
