use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult};
use serde_json::Value;

/// What a [`Text`] holding a control character is refused with; the problem mapping
/// (`catch_all`) recognises it and answers 400 `control_characters`.
pub(super) const CONTROL_REFUSED: &str =
    "text must not contain control characters (U+0000–U+001F, U+007F–U+009F)";

/// The rule [`Text`] enforces, as the schema's `pattern` (ECMA-262, as OpenAPI reads it): no
/// character of Unicode's control category, `char::is_control`.
pub const NO_CONTROL_CHARACTERS: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

/// The parts every checked string field shares: it reads as a `&str`, poem-openapi's length
/// and pattern validators see it (`AsRef<str>`), it is documented as a string with `$pattern`,
/// and it is written back as a JSON string. Parsing, the part that differs, stays with each type.
macro_rules! string_field {
    ($name:ident, $pattern:expr) => {
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl poem_openapi::types::Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                "string".into()
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                poem_openapi::registry::MetaSchemaRef::Inline(Box::new(poem_openapi::registry::MetaSchema {
                    pattern: Some($pattern.to_owned()),
                    ..poem_openapi::registry::MetaSchema::new("string")
                }))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl poem_openapi::types::ToJSON for $name {
            fn to_json(&self) -> Option<serde_json::Value> {
                Some(serde_json::Value::String(self.0.clone()))
            }
        }
    };
}
pub(super) use string_field;

/// A JSON string field that accepts only JSON strings, and none holding a control character.
///
/// poem-openapi's `String` quietly turns `5` or `true` into `"5"` and `"true"`, so a client
/// sending the wrong type would get a business-rule answer (or, worse, a success) instead of
/// 400. Every string in a `/v1` request body uses this type. Control characters are refused
/// here, before any work: U+0000 cannot be stored at all, and the others have no place in an
/// email, a name or a reason, where they only serve to forge log lines and mail headers or to
/// make two values look alike. (Text that is meant to span lines, such as a prompt, gets its own
/// type when it exists.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text(pub String);

string_field!(Text, NO_CONTROL_CHARACTERS);

impl Text {
    fn checked(text: String) -> ParseResult<Self> {
        if text.chars().any(char::is_control) {
            return Err(ParseError::custom(CONTROL_REFUSED));
        }
        Ok(Self(text))
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Self::checked(text),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

/// Query and path parameters holding text follow the same rule as bodies.
impl ParseFromParameter for Text {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::checked(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::NO_CONTROL_CHARACTERS;

    /// The documented pattern and the check refuse exactly the same characters.
    #[test]
    fn the_schema_pattern_refuses_what_the_check_refuses() {
        let pattern = Regex::new(NO_CONTROL_CHARACTERS).unwrap_or_else(|error| panic!("{error}"));
        for c in (0..0x3000).filter_map(char::from_u32) {
            let accepted = pattern.is_match(&format!("a{c}b"));
            assert_eq!(accepted, !c.is_control(), "U+{:04X}", c as u32);
        }
    }
}
