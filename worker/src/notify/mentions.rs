//! Who a message's text mentions: `@user` tokens, as user ids.

use chat_protocol::UserId;

/// Most users one message may notify by mention: a paste of a long list
/// is not a reason to call the webhook for each.
pub const MAX_MENTIONS: usize = 20;

/// The users `body` mentions, each once, in order of first mention, at
/// most [`MAX_MENTIONS`]. A mention is `@` at the start or after a
/// character that cannot be in a user id, then a user id; a trailing `.`
/// ends the sentence, not the id, and more `@`s before it are not part of
/// it.
pub fn mentioned(body: &str) -> Vec<UserId> {
    let mut found: Vec<UserId> = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() && found.len() < MAX_MENTIONS {
        let starts = bytes[i] == b'@' && (i == 0 || !in_id(bytes[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let end = (i + 1..bytes.len())
            .find(|&j| !in_id(bytes[j]))
            .unwrap_or(bytes.len());
        // The id's bytes are ASCII, so these are char boundaries.
        let token = body[i + 1..end]
            .trim_start_matches('@')
            .trim_end_matches('.');
        if let Ok(user) = UserId::parse(token) {
            if !found.contains(&user) {
                found.push(user);
            }
        }
        i = end.max(i + 1);
    }
    found
}

/// The bytes of a user id.
fn in_id(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(body: &str) -> Vec<String> {
        mentioned(body).into_iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn mentions_are_at_tokens_once_each() {
        assert_eq!(names("hi @bob and @carol.x, @bob!"), ["bob", "carol.x"]);
        assert_eq!(names("@ann."), ["ann"]);
        assert_eq!(names("mail me at ann@example.com"), Vec::<String>::new());
        assert_eq!(names("@ @@ @é"), Vec::<String>::new());
        assert_eq!(names("(@dan) «@eve»"), ["dan", "eve"]);
    }

    #[test]
    fn at_most_twenty_are_taken() {
        let body: String = (0..30).map(|i| format!("@u{i} ")).collect();
        assert_eq!(mentioned(&body).len(), MAX_MENTIONS);
    }
}
