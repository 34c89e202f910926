//! Multi-line free text in request bodies.

use std::borrow::Cow;
use std::ops::Deref;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
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

impl Deref for TextBlock {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// For poem-openapi's length and pattern validators.
impl AsRef<str> for TextBlock {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Type for TextBlock {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS.to_owned()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

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

impl ToJSON for TextBlock {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
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
