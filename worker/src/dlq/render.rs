//! How results are printed: text for people, or one JSON object per line,
//! and text made safe for a terminal.

use serde::Serialize;

/// Where results go: text for people, or one JSON object per line.
pub(super) struct Out {
    pub(super) json: bool,
}

impl Out {
    /// One result: `value` as a JSON line tagged with `kind`, or `text`.
    pub(super) fn emit(&self, kind: &str, value: &impl Serialize, text: impl FnOnce() -> String) {
        if self.json {
            let mut object = serde_json::to_value(value).unwrap_or_default();
            if let Some(map) = object.as_object_mut() {
                map.insert("kind".into(), kind.into());
            }
            println!("{object}");
        } else {
            println!("{}", text());
        }
    }
}

/// Text safe to print on a terminal: control characters (a NUL in a body,
/// an escape sequence) are shown escaped, everything else as it is.
pub(super) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// At most `max` characters of `s`, printable, with "…" when cut.
pub(super) fn truncate(s: &str, max: usize) -> String {
    let cut: String = s.chars().take(max).collect();
    let ellipsis = if s.chars().count() > max { "…" } else { "" };
    format!("{}{ellipsis}", printable(&cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_for_terminals() {
        assert_eq!(printable("nul \0 é\x1b[2J"), "nul \\u{0} é\\u{1b}[2J");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
