use std::borrow::Cow;
use std::ops::Deref;

use domain::email::MAX_EMAIL_CHARS;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

use super::Text;
use super::text::NO_CONTROL_CHARACTERS;

/// What an [`EmailText`] over the length limit is refused with; the problem mapping
/// (`catch_all`) recognises it and answers 422 `invalid_email`.
pub(super) const EMAIL_TOO_LONG: &str = "an email address has at most 254 characters";

/// An email address in a request body: a [`Text`] (JSON strings only, no control character)
/// documented as `format: email` with the domain's length limit, so clients can check it
/// before sending. The domain's own parse (`domain::EmailAddress`) still decides what an
/// address is; this only refuses what can never be one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmailText(pub Text);

impl Deref for EmailText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Type for EmailText {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_email".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("email"),
            max_length: Some(MAX_EMAIL_CHARS),
            pattern: Some(NO_CONTROL_CHARACTERS.to_owned()),
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

impl ParseFromJSON for EmailText {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let text = Text::parse_from_json(value).map_err(ParseError::propagate)?;
        if text.chars().count() > MAX_EMAIL_CHARS {
            return Err(ParseError::custom(EMAIL_TOO_LONG));
        }
        Ok(Self(text))
    }
}

impl ToJSON for EmailText {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}
