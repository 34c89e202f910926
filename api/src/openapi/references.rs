//! Described references in the form every generator reads.
//!
//! poem-openapi documents a field whose type is a named schema, with a doc comment, as
//! `allOf: [{$ref}, {description}]`. openapi-python-client cannot take `allOf` of a part that
//! is not an object schema and drops the whole containing schema (`Problem`, `MemberView`…), and
//! with it every operation that uses it. `{description, allOf: [{$ref}]}` says the same and every
//! generator and linter we run reads it.

use serde_json::Value;

/// Rewrites every `allOf: [{$ref}, {description…}]` in `document` into
/// `{description…, allOf: [{$ref}]}`.
pub fn single_reference_all_of(document: &mut Value) {
    match document {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get("allOf")
                && parts.len() == 2
                && parts[0].get("$ref").is_some()
                && parts[1].get("$ref").is_none()
                && let Some(Value::Object(annotations)) = parts.get(1).cloned()
            {
                let reference = parts[0].clone();
                map.insert("allOf".to_owned(), Value::Array(vec![reference]));
                for (key, value) in annotations {
                    map.entry(key).or_insert(value);
                }
            }
            map.values_mut().for_each(single_reference_all_of);
        }
        Value::Array(items) => items.iter_mut().for_each(single_reference_all_of),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::single_reference_all_of;

    #[test]
    fn a_described_reference_keeps_its_description_beside_a_single_reference() {
        let mut schema = json!({ "properties": { "role": {
            "allOf": [{ "$ref": "#/components/schemas/RoleName" }, { "description": "The role." }]
        } } });
        single_reference_all_of(&mut schema);
        assert_eq!(
            schema,
            json!({ "properties": { "role": {
                "allOf": [{ "$ref": "#/components/schemas/RoleName" }],
                "description": "The role."
            } } })
        );
    }
}
