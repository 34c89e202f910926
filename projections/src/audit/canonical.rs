//! The canonical JSON form of an audit entry: the exact bytes its hash is computed over.
//!
//! An object of string and integer members only, written the way RFC 8785 (JCS) writes such an
//! object: members sorted by name, no whitespace, strings escaped minimally (`"`, `\` and the
//! control characters U+0000–U+001F, the latter as `\b \t \n \f \r` or `\u00xx` with lowercase
//! hex), every other character as its UTF-8 bytes, integers in plain decimal. An auditor's
//! `json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` produces the
//! same bytes (see `docs/audit-chain.md`).
//!
//! Written out here rather than through `serde_json`, whose member order depends on a crate
//! feature (`preserve_order`) any dependency may switch on.

use std::fmt::Write as _;

/// A member's value: the only two kinds an entry has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    /// A JSON string.
    Text(&'a str),
    /// A JSON integer.
    Integer(i64),
}

/// The canonical bytes of an object with these members (`None` values are left out, as an
/// absent optional field is). Names must be distinct.
pub fn canonical_object(members: &[(&str, Option<Member<'_>>)]) -> String {
    let mut present: Vec<(&str, Member<'_>)> = members
        .iter()
        .filter_map(|(name, value)| value.map(|value| (*name, value)))
        .collect();
    // Byte order of the names, which for the ASCII names of an entry is JCS's UTF-16 order.
    present.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::with_capacity(512);
    out.push('{');
    for (index, (name, value)) in present.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(&mut out, name);
        out.push(':');
        match value {
            Member::Text(text) => write_string(&mut out, text),
            Member::Integer(number) => {
                let _ = write!(out, "{number}");
            }
        }
    }
    out.push('}');
    out
}

/// `text` as a JSON string with JCS's minimal escaping.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::{Member, canonical_object};

    #[test]
    fn members_are_sorted_by_name_without_whitespace_and_absent_ones_left_out() {
        let text = canonical_object(&[
            ("seq", Some(Member::Integer(12))),
            ("action", Some(Member::Text("user.registered"))),
            ("client_ip", None),
            ("actor", Some(Member::Text("system"))),
        ]);
        assert_eq!(text, r#"{"action":"user.registered","actor":"system","seq":12}"#);
    }

    #[test]
    fn strings_are_escaped_minimally_and_the_rest_kept_as_utf8() {
        let text = canonical_object(&[(
            "user_agent",
            Some(Member::Text(
                "a\"b\\c\u{1}\u{8}\t\n\u{c}\r\u{1f}/é\u{7f}\u{2028}😀",
            )),
        )]);
        assert_eq!(
            text,
            "{\"user_agent\":\"a\\\"b\\\\c\\u0001\\b\\t\\n\\f\\r\\u001f/é\u{7f}\u{2028}😀\"}"
        );
    }

    /// Strings come out as `serde_json` (and Python's `json.dumps(..., ensure_ascii=False)`)
    /// write them, for every ASCII character and a few others.
    #[test]
    fn strings_match_what_common_json_writers_produce() {
        let mut text: String = (0u8..0x80).map(char::from).collect();
        text.push_str("é\u{2028}\u{10ffff}");
        let ours = canonical_object(&[("t", Some(Member::Text(&text)))]);
        let theirs = format!("{{\"t\":{}}}", serde_json::to_string(&text).unwrap_or_default());
        assert_eq!(ours, theirs);
    }
}
