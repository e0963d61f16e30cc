//! Opaque page cursors: the fields of a position, tagged with what they
//! page through, as hex. Clients pass them back untouched; anything else
//! (another list's cursor, an edited one) is refused as `invalid_argument`.

use crate::error::GatewayError;

/// The cursor naming `fields` of a position of `kind`.
pub fn encode(kind: &str, fields: &[String]) -> String {
    let mut text = String::from(kind);
    for field in fields {
        text.push('\n');
        text.push_str(field);
    }
    hex::encode(text)
}

/// The `N` fields of a cursor of `kind`, or `invalid_argument`.
pub fn decode<const N: usize>(kind: &str, cursor: &str) -> Result<[String; N], GatewayError> {
    let bad = || GatewayError::InvalidArgument("malformed cursor: pass back a nextCursor".into());
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.split('\n');
    if parts.next() != Some(kind) {
        return Err(bad());
    }
    let fields: Vec<String> = parts.map(str::to_owned).collect();
    fields.try_into().map_err(|_| bad())
}

/// A field of a decoded cursor as a number, or `invalid_argument`.
pub fn number<T: std::str::FromStr>(field: &str) -> Result<T, GatewayError> {
    field.parse().map_err(|_| {
        GatewayError::InvalidArgument("malformed cursor: pass back a nextCursor".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_refuses_other_kinds_and_noise() {
        let cursor = encode("rooms1", &["1".into(), "lobby".into()]);
        assert_eq!(
            decode::<2>("rooms1", &cursor).unwrap(),
            ["1".to_string(), "lobby".to_string()]
        );
        assert!(decode::<2>("search1", &cursor).is_err());
        assert!(decode::<3>("rooms1", &cursor).is_err());
        assert!(decode::<2>("rooms1", "zz").is_err());
        assert!(decode::<2>("rooms1", "").is_err());
        assert!(number::<i64>("x").is_err());
    }
}
