//! A user's data (`/v1/users/{user}`), for the service token only: export
//! everything stored for them as JSON lines, or erase them. Erasing ends
//! each membership through the workers, as a removal by the service (every
//! socket of the room hears `member_left`; their read marker goes with
//! it), a last owner first handing the room to its longest-standing other
//! member; then their entries become tombstones, in batches that lock
//! entries, not rooms; then the Redis windows of every room holding an
//! entry of theirs are dropped, and their scheduled messages deleted. Each
//! step can be done again: a request cut short is finished by asking again.

use axum::{
    body::Body,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use chat_protocol::{access::Actor, ErrorCode, RoomId, UserId};
use chat_store::{EntryCursor, Exported};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::GatewayError,
    http::api::{ErrorBody, Params, Service},
    send::commands,
    state::AppState,
};

/// Entries read, or erased, at a time.
const PAGE: i64 = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export))
        .routes(routes!(erase))
}

/// Everything stored for the user, a JSON object per line, each with its
/// `type`: `membership`, `read_marker` and `reaction` records, then every
/// `entry` they wrote (chat messages and their events), by room and seq.
#[utoipa::path(
    get, path = "/v1/users/{user}/export", tag = "users",
    params(("user" = String, Path)),
    responses(
        (status = 200, description = "JSON lines", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "Bad user id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not the service token", body = ErrorBody),
        (status = 503, description = "A dependency is down; retry", body = ErrorBody),
    )
)]
async fn export(
    _: Service,
    State(state): State<AppState>,
    Params(user): Params<String>,
) -> Result<Response, GatewayError> {
    let user = UserId::parse(user)?;
    let standing = lines(&state.store.export_standing(&user).await?);
    let store = state.store.clone();
    // The entries a page at a time, so that a prolific user's export is
    // never held in memory whole; `None` once the last page is out.
    let pages = futures::stream::unfold(Some(None), move |cursor: Option<Option<EntryCursor>>| {
        let (store, user) = (store.clone(), user.clone());
        async move {
            let after = cursor?;
            match store.export_entries(&user, after.as_ref(), PAGE).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = match page.last() {
                        Some(Exported::Entry { room, seq, .. }) => Some((room.clone(), *seq)),
                        _ => None,
                    };
                    Some((Ok(lines(&page)), next.map(Some)))
                }
                Err(e) => Some((Err(GatewayError::from(e)), None)),
            }
        }
    });
    let first = futures::stream::once(async move { Ok::<_, GatewayError>(standing) });
    let body = Body::from_stream(futures::StreamExt::chain(first, pages));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

fn lines(records: &[Exported]) -> Bytes {
    let mut out = Vec::new();
    for record in records {
        // Plain strings and numbers: serializing cannot fail.
        serde_json::to_writer(&mut out, record).expect("a record serializes");
        out.push(b'\n');
    }
    out.into()
}

/// What an erase did (all zeros and empty when asked again).
#[derive(Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Erased {
    /// Rooms the user was removed from.
    rooms_left: Vec<String>,
    /// Of those, rooms whose last owner they were, handed to another member.
    rooms_handed_over: Vec<String>,
    /// Rooms where they stay: its last owner, with nobody to hand it to.
    rooms_kept: Vec<String>,
    entries_erased: u64,
    scheduled_deleted: u64,
}

/// Erases the user: their memberships end (and their read markers), their
/// entries become tombstones (seq kept, body and reactions gone), their
/// scheduled messages go. Asking again finishes an erase cut short and
/// otherwise changes nothing.
#[utoipa::path(
    post, path = "/v1/users/{user}/erase", tag = "users",
    params(("user" = String, Path)),
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = 400, description = "Bad user id", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not the service token", body = ErrorBody),
        (status = 503, description = "A dependency is down; ask again", body = ErrorBody),
        (status = 504, description = "A removal not confirmed in time; ask again", body = ErrorBody),
    )
)]
async fn erase(
    _: Service,
    State(state): State<AppState>,
    Params(user): Params<String>,
) -> Result<Json<Erased>, GatewayError> {
    let user = UserId::parse(user)?;
    let mut erased = Erased::default();
    for room in state.store.user_rooms(&user).await? {
        leave(&state, &user, &room, &mut erased).await?;
    }
    loop {
        let n = state.store.erase_entries(&user, PAGE).await?;
        erased.entries_erased += n;
        if n == 0 {
            break;
        }
    }
    // Every room with an entry of theirs, erased now or by an earlier ask:
    // a window dropped once may have been written again meanwhile only
    // with newer entries, but one an earlier ask failed to drop may not.
    let rooms = state.store.rooms_with_entries(&user).await?;
    // Redis away: 503, and the next ask drops them.
    chat_cache::forget_windows(&mut state.redis.clone(), &rooms).await?;
    erased.scheduled_deleted = state.store.erase_scheduled(&user).await?;
    Ok(Json(erased))
}

/// Removes the user from `room` as the service; a last owner hands the
/// room to its longest-standing other member first.
async fn leave(
    state: &AppState,
    user: &UserId,
    room: &RoomId,
    erased: &mut Erased,
) -> Result<(), GatewayError> {
    let timeout = state.config.limits.ack_timeout;
    let run = |change| async move {
        let id = commands::command_id(None)?;
        commands::run(&state.nats, id, &Actor::Service, room, change, timeout).await
    };
    match run(commands::remove_member(user.to_string())?).await {
        Ok(_) => {}
        Err(GatewayError::Refused {
            code: ErrorCode::Conflict,
            ..
        }) => {
            let Some(heir) = state.store.longest_other_member(room, user).await? else {
                erased.rooms_kept.push(room.to_string());
                return Ok(());
            };
            run(commands::set_access(heir.to_string(), "owner", &[], &[])?).await?;
            run(commands::remove_member(user.to_string())?).await?;
            erased.rooms_handed_over.push(room.to_string());
        }
        // Gone meanwhile (left, or the room deleted).
        Err(GatewayError::Refused {
            code: ErrorCode::NotFound,
            ..
        }) => return Ok(()),
        Err(e) => return Err(e),
    }
    erased.rooms_left.push(room.to_string());
    Ok(())
}
