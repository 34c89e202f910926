//! Whether a tool's `parameters` is a JSON Schema the validator accepts.

use domain::tool::MAX_PARAMETERS_BYTES;
use serde_json::Value;

use super::ToolsError;

/// Checks `parameters` against its meta-schema (the draft its `$schema` names, 2020-12 when
/// none) and compiles it (which also catches what the meta-schema cannot: a `pattern` that is
/// not a regular expression, a `$ref` that leads nowhere; remote `$ref`s are never fetched).
///
/// A value the aggregate refuses on its own (not an object schema, over the size limit) is
/// left to it, so the caller gets that rule's code, and an oversized schema is never compiled.
pub(super) fn check(parameters: &Value) -> Result<(), ToolsError> {
    let object_schema = parameters
        .as_object()
        .is_some_and(|schema| schema.get("type").and_then(Value::as_str) == Some("object"));
    let size = serde_json::to_vec(parameters).map_or(usize::MAX, |json| json.len());
    if !object_schema || size > MAX_PARAMETERS_BYTES {
        return Ok(());
    }
    jsonschema::meta::validate(parameters).map_err(|error| ToolsError::InvalidSchema(describe(&error)))?;
    jsonschema::validator_for(parameters).map_err(|error| ToolsError::InvalidSchema(describe(&error)))?;
    Ok(())
}

/// The validator's message, with where in the schema it applies.
fn describe(error: &jsonschema::ValidationError<'_>) -> String {
    let at = error.instance_path().to_string();
    if at.is_empty() {
        error.to_string()
    } else {
        format!("at {at}: {error}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_valid_object_schema_passes() {
        let schema = json!({
            "type": "object",
            "properties": { "city": { "type": "string", "pattern": "^[A-Z]" } },
            "required": ["city"],
            "additionalProperties": false,
        });
        assert!(check(&schema).is_ok());
    }

    #[test]
    fn schemas_the_validator_refuses_are_refused_with_its_message() {
        for schema in [
            json!({ "type": "object", "properties": { "city": { "type": "strin" } } }),
            json!({ "type": "object", "required": "city" }),
            json!({ "type": "object", "properties": { "x": { "pattern": "([" } } }),
            json!({ "type": "object", "properties": { "x": { "$ref": "#/$defs/missing" } } }),
            json!({ "type": "object", "properties": { "x": { "$ref": "https://example.com/s.json" } } }),
        ] {
            match check(&schema) {
                Err(ToolsError::InvalidSchema(message)) => assert!(!message.is_empty()),
                other => panic!("{schema}: {other:?}"),
            }
        }
    }

    #[test]
    fn what_the_aggregate_refuses_itself_is_left_to_it() {
        assert!(check(&json!({ "type": "string" })).is_ok());
        assert!(check(&json!([1, 2])).is_ok());
    }
}
