//! `application/x-ndjson` answers: one JSON document per line, streamed.

use poem::{Body, IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};

/// A streamed body of newline-delimited JSON, documented as `application/x-ndjson`. The lines'
/// shape is described in the operation's text (OpenAPI 3.0 has no schema for a line).
pub struct Ndjson(pub Body);

impl Payload for Ndjson {
    const CONTENT_TYPE: &'static str = "application/x-ndjson";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("One JSON object per line, each line ending with `\\n`."),
            ..MetaSchema::new("string")
        }))
    }
}

impl IntoResponse for Ndjson {
    fn into_response(self) -> Response {
        Response::builder().content_type(Self::CONTENT_TYPE).body(self.0)
    }
}
