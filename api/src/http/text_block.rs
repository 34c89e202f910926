//! Multi-line free text in request bodies.

use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult};

use super::text::string_field;
use serde_json::Value;

/// What a [`TextBlock`] holding a control character other than a line break or tab is refused
/// with; the problem mapping (`catch_all`) answers it 400 `control_characters`, as for [`Text`].
///
/// [`Text`]: super::Text
pub(super) const BLOCK_CONTROL_REFUSED: &str = "text must not contain control characters other than \\n, \\r and \\t (U+0000–U+0008, U+000B, U+000C, U+000E–U+001F, U+007F–U+009F)";

/// The rule [`TextBlock`] enforces, as the schema's `pattern`.
pub const NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS: &str =
    r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// A JSON string meant to span lines (a system prompt): like [`Text`], only JSON strings, but
/// newline, carriage return and tab are accepted; every other control character is refused
/// before any work, for the same reasons as in [`Text`].
///
/// [`Text`]: super::Text
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextBlock(pub String);

string_field!(TextBlock, NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS);

/// Whether `c` is a control character a block of text may not hold.
fn refused(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

impl ParseFromJSON for TextBlock {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) if text.chars().any(refused) => {
                Err(ParseError::custom(BLOCK_CONTROL_REFUSED))
            }
            Value::String(text) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::{NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS, refused};

    /// The documented pattern and the check refuse exactly the same characters.
    #[test]
    fn the_schema_pattern_refuses_what_the_check_refuses() {
        let pattern =
            Regex::new(NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS).unwrap_or_else(|error| panic!("{error}"));
        for c in (0..0x3000).filter_map(char::from_u32) {
            let accepted = pattern.is_match(&format!("a{c}b"));
            assert_eq!(accepted, !refused(c), "U+{:04X}", c as u32);
        }
    }
}
