//! The checks a frame's fields pass before anything else, shared by the
//! socket's frames and the HTTP API: a seq as a client names it, a
//! message's body, a reaction's emoji.

use chat_protocol::Seq;

use crate::{config::Limits, error::GatewayError};

/// A message's seq as a client names it: seqs start at 1.
pub fn target_seq(name: &str, seq: i64) -> Result<Seq, GatewayError> {
    u64::try_from(seq)
        .ok()
        .filter(|&s| s >= 1)
        .map(Seq::new)
        .ok_or_else(|| GatewayError::InvalidArgument(format!("{name} is {seq}; seqs start at 1")))
}

/// Most bytes of a reaction's emoji: a grapheme of several code points
/// (a family, a flag with a skin tone) or a short name (`:party:`).
const MAX_EMOJI_BYTES: usize = 64;

/// A reaction is one short token: not empty, no spaces or control characters.
pub fn check_emoji(emoji: &str) -> Result<(), GatewayError> {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Err(GatewayError::InvalidArgument(format!(
            "emoji must be 1 to {MAX_EMOJI_BYTES} bytes"
        )));
    }
    if emoji.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(GatewayError::InvalidArgument(
            "emoji must not contain spaces or control characters".into(),
        ));
    }
    Ok(())
}

/// The limits of a message's body, the same for a socket's send and a
/// server publish: at most `max_body_bytes`, no NUL.
pub fn check_body(body: &str, limits: &Limits) -> Result<(), GatewayError> {
    let limit = limits.max_body_bytes.get();
    if body.len() > limit {
        return Err(GatewayError::InvalidArgument(format!(
            "body is {} bytes; the limit is {limit}",
            body.len()
        )));
    }
    // Postgres text cannot hold NUL; refused here, it never reaches a batch.
    if body.contains('\0') {
        return Err(GatewayError::InvalidArgument(
            "body must not contain NUL characters".into(),
        ));
    }
    Ok(())
}
