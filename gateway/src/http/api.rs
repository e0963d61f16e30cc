//! What the HTTP API's resources share: the caller's authentication, JSON
//! body and path extractors that refuse with our error codes, the error
//! body, and the OpenAPI document (`/v1/openapi.json`) generated from the
//! handlers of every resource's router.

use axum::{
    extract::{FromRequest, FromRequestParts},
    http::request::Parts,
    routing::get,
    Json, Router,
};
use chat_protocol::access::Actor;
use serde::Serialize;
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    OpenApi, ToSchema,
};
use utoipa_axum::router::OpenApiRouter;

use crate::{error::GatewayError, http::auth::bearer, state::AppState};

/// The resources' routes (each resource's `routes()`, merged), served
/// with their OpenAPI document.
pub fn router(resources: OpenApiRouter<AppState>) -> Router<AppState> {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(resources)
        .split_for_parts();
    let document = serde_json::to_value(&api).expect("the OpenAPI document serializes");
    router.route(
        "/v1/openapi.json",
        get(move || std::future::ready(Json(document.clone()))),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat room API",
        version = "1",
        description = "Rooms, members, roles and permissions; history pages, messages published by trusted backends, direct rooms, a user's rooms and search. Changes are answered once committed; the rules of who may change whom are in docs/protocol.md."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The request's actor, authenticated: the trusted backend (service token)
/// or a user (JWT). Refused (401) before the path or body is even parsed:
/// handlers take it as their first argument.
pub struct Authenticated(pub Actor);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GatewayError> {
        let service = state.config.admin_token.expose();
        match bearer(&parts.headers) {
            Some(token) if !service.is_empty() && constant_time_eq(token, service) => {
                Ok(Self(Actor::Service))
            }
            Some(_) => state
                .verifier
                .verify_bearer(&parts.headers)
                .map(|user| Self(Actor::User(user)))
                .map_err(|_| {
                    GatewayError::Unauthorized("a valid service token or JWT is required")
                }),
            None => Err(GatewayError::Unauthorized(
                "a service token or a user's JWT is required",
            )),
        }
    }
}

/// The trusted backend only: no token or a bad one is 401, as for every
/// route; a valid user's JWT is 403 (the user is known, and not allowed).
pub struct Service;

impl FromRequestParts<AppState> for Service {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, GatewayError> {
        match Authenticated::from_request_parts(parts, state).await?.0 {
            Actor::Service => Ok(Self),
            Actor::User(_) => Err(GatewayError::Forbidden(
                "only the service token may do this",
            )),
        }
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A JSON body whose rejection is our `invalid_argument`, not axum's text.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(GatewayError))]
pub struct Body<T>(pub T);

/// Path parameters, refused the same way.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(GatewayError))]
pub struct Params<T>(pub T);

/// The request's `Idempotency-Key` header: `None` when absent, refused
/// when present but not text or empty.
pub fn idempotency_key(parts: &Parts) -> Result<Option<&str>, GatewayError> {
    match parts.headers.get("idempotency-key").map(|k| k.to_str()) {
        None => Ok(None),
        Some(Ok(key)) if !key.is_empty() => Ok(Some(key)),
        Some(_) => Err(bad_key()),
    }
}

pub fn bad_key() -> GatewayError {
    GatewayError::InvalidArgument("Idempotency-Key must be a valid client message id".into())
}

/// An error answer: a stable code (docs/protocol.md) and a message for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// e.g. `invalid_argument`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `timeout`.
    code: String,
    message: String,
}
