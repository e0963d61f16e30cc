//! Who is connecting: JWT verification, one-time tickets for browsers, and
//! the Origin allowlist. All of it happens before the WebSocket upgrade.

use axum::http::{header, HeaderMap, HeaderValue, Method};
use chat_auth::Claims;
use chat_cache::Redis;
use chat_protocol::{keys, UserId};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use rand::RngCore;
use redis::AsyncCommands;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{config::JwtConfig, error::GatewayError};

/// Checks access tokens against the configured key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn new(config: &JwtConfig) -> Result<Self, jsonwebtoken::errors::Error> {
        let (key, algorithm) = if config.rs256_public_key_pem.is_empty() {
            (
                DecodingKey::from_secret(config.hs256_secret.expose().as_bytes()),
                Algorithm::HS256,
            )
        } else {
            (
                DecodingKey::from_rsa_pem(config.rs256_public_key_pem.as_bytes())?,
                Algorithm::RS256,
            )
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self { key, validation })
    }

    /// The user a token names, if it is well-formed, correctly signed, already
    /// valid (`nbf`) and not expired (`exp`), give or take the leeway.
    pub fn verify(&self, token: &str) -> Result<UserId, GatewayError> {
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            tracing::debug!(error = %e, "token refused");
            GatewayError::Unauthorized("invalid or expired token")
        })?;
        UserId::parse(data.claims.sub).map_err(|_| GatewayError::Unauthorized("invalid subject"))
    }

    /// Verifies the `Authorization: Bearer` header.
    pub fn verify_bearer(&self, headers: &HeaderMap) -> Result<UserId, GatewayError> {
        let token = bearer(headers).ok_or(GatewayError::Unauthorized("missing bearer token"))?;
        self.verify(token)
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Issues a one-time ticket that stands for `user` for `ttl_secs`.
pub async fn issue_ticket(
    redis: &mut Redis,
    user: &UserId,
    ttl_secs: u64,
) -> Result<String, GatewayError> {
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    let ticket = hex::encode(raw);
    let _: () = redis
        .set_ex(keys::ticket(&ticket), user.as_str(), ttl_secs)
        .await?;
    Ok(ticket)
}

/// Trades a ticket for its user, deleting it so it cannot be used twice.
pub async fn redeem_ticket(redis: &mut Redis, ticket: &str) -> Result<UserId, GatewayError> {
    if ticket.len() != 48 || !ticket.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GatewayError::Unauthorized("invalid ticket"));
    }
    let user: Option<String> = redis.get_del(keys::ticket(ticket)).await?;
    let user = user.ok_or(GatewayError::Unauthorized(
        "unknown, expired or used ticket",
    ))?;
    UserId::parse(user).map_err(|_| GatewayError::Unauthorized("invalid ticket"))
}

/// CORS for the ticket endpoint: a page served from an allowlisted origin
/// may call it (preflight included); no other origin gets CORS headers, so
/// browsers keep other pages from reading a ticket.
pub fn ticket_cors(allowed: &[String]) -> CorsLayer {
    let origin = if allowed.iter().any(|a| a == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(allowed.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// Refuses browsers whose `Origin` is not allowlisted. Clients that send no
/// `Origin` (not browsers) pass: they authenticate with a bearer token.
/// With `own_page` (the gateway serves the web page), a page from the host
/// the request is addressed to passes too: browsers do not let other pages
/// claim that origin.
pub fn check_origin(
    headers: &HeaderMap,
    allowed: &[String],
    own_page: bool,
) -> Result<(), GatewayError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let same_origin = || {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        host.is_some() && origin_host == host
    };
    if allowed.iter().any(|a| a == "*" || a == origin) || (own_page && same_origin()) {
        Ok(())
    } else {
        Err(GatewayError::Forbidden("origin not allowed"))
    }
}
