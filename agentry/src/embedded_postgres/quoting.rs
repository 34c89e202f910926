//! Escaping for the three languages paths and names pass through: the shell (`pg_ctl -o`),
//! SQL identifiers and URL path segments.

use std::fmt::Write as _;

/// `pg_ctl -o` is passed through `/bin/sh`, so paths inside it need shell quoting.
pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// SQL identifier quoting for `CREATE DATABASE`.
pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (URL path segment).
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
