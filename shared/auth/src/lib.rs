//! The claims of a chat access token, and minting one (for `dev-token`, the
//! tests and the load generator; production tokens come from your IdP).

use jsonwebtoken::{encode, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// What the gateway reads from a verified JWT.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default)]
    pub iat: u64,
}

/// Mints an HS256 token for `user` valid for `ttl_secs`.
pub fn mint_hs256(secret: &str, user: &str, ttl_secs: u64) -> String {
    let now = (chat_protocol::now_ms() / 1000) as u64;
    let claims = Claims {
        sub: user.to_owned(),
        exp: now + ttl_secs,
        iat: now,
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}
