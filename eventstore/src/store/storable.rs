//! What the store refuses before it writes anything: events too large to handle, and text
//! that the read side could never hold.

use super::{NewEvent, StoreError};

/// The largest event the store accepts: its payload and metadata as JSON, in bytes (8 MiB).
///
/// Tool outputs and LLM answers go into events, and 5 MiB ones are expected, so the limit sits
/// comfortably above that. It stays well below what would hurt the platform: every follower
/// holds a whole batch of events in memory, the aggregate cache keeps recent state, and each
/// node of a cluster reads every event. Anything larger belongs in a blob store, referenced
/// from an event. The bus carries large events cut (see `docs/events.md`).
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// Refuses the whole command when one of its events is over [`MAX_EVENT_BYTES`] or holds a NUL
/// anywhere: in a stored text column, in its payload or in the command's metadata.
pub(crate) fn check_storable(
    aggregate_id: &str,
    events: &[NewEvent],
    metadata: &str,
) -> Result<(), StoreError> {
    for event in events {
        let unstorable = |field: &str| StoreError::UnstorableText {
            event_type: event.event_type.replace('\0', "\u{FFFD}"),
            field: field.to_owned(),
        };
        let texts = [
            ("event_type", event.event_type.as_str()),
            ("event_version", event.event_version.as_str()),
            ("aggregate_id", aggregate_id),
        ];
        if let Some((field, _)) = texts.iter().find(|(_, text)| text.contains('\0')) {
            return Err(unstorable(field));
        }
        if json_has_nul(&event.payload) {
            return Err(unstorable("payload"));
        }
        if json_has_nul(metadata) {
            return Err(unstorable("metadata"));
        }
        let bytes = event.payload.len() + metadata.len();
        if bytes > MAX_EVENT_BYTES {
            return Err(StoreError::EventTooLarge {
                event_type: event.event_type.clone(),
                bytes,
                limit: MAX_EVENT_BYTES,
            });
        }
    }
    Ok(())
}

/// Whether JSON text encodes U+0000 anywhere (a string or a field name): as the escape
/// `\u0000`, or as a raw NUL byte. A backslash that is itself escaped (`\\u0000`, the text
/// "\u0000") does not count: the escape is real only after an odd run of backslashes.
///
/// It scans the text instead of parsing it, so the common case (no `\u0000` at all) costs one
/// pass with no allocation on every append.
fn json_has_nul(json: &str) -> bool {
    if json.as_bytes().contains(&0) {
        return true;
    }
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(found) = json[from..].find("\\u0000") {
        let at = from + found;
        let backslashes = bytes[..=at].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::json_has_nul;

    #[test]
    fn only_a_real_escape_or_a_raw_nul_counts() {
        assert!(json_has_nul(r#"{"a":"x\u0000y"}"#));
        assert!(json_has_nul(r#"{"a\u0000":1}"#));
        assert!(
            json_has_nul(r#"{"a":"\\\u0000"}"#),
            "an escaped backslash, then a NUL"
        );
        assert!(json_has_nul("{\"a\":\"x\0\"}"));
        assert!(!json_has_nul(r#"{"a":"\\u0000"}"#), "the text \\u0000");
        assert!(
            !json_has_nul(r#"{"a":"\\\\u0000"}"#),
            "two backslashes, then u0000"
        );
        assert!(json_has_nul(r#"{"a":"\u00001"}"#), "a NUL, then 1");
        assert!(!json_has_nul(r#"{"a":"\u0001 \u1000"}"#));
    }
}
