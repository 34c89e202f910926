//! JSON bodies keyed `application/json`.

use serde_json::Value;

/// What poem-openapi's `Json` payload declares; the wire keeps it, the document does not.
const POEM_JSON: &str = "application/json; charset=utf-8";
const JSON: &str = "application/json";

/// Renames every `application/json; charset=utf-8` content key to `application/json`: code
/// generators index bodies by the bare media type (`content["application/json"]`), and a
/// parameter in the key makes them miss the body altogether.
pub(super) fn plain_json_keys(document: &mut Value) {
    for operation in super::operations_mut(document) {
        rename_in(operation.get_mut("requestBody"));
        let responses = operation.get_mut("responses").and_then(Value::as_object_mut);
        for response in responses.into_iter().flat_map(|responses| responses.values_mut()) {
            rename_in(Some(response));
        }
    }
}

/// Renames the key in the `content` of a request body or response (`get_mut`, not indexing:
/// indexing a `Value` mutably would add the keys it looks for).
fn rename_in(body: Option<&mut Value>) {
    let content = body
        .and_then(|body| body.get_mut("content"))
        .and_then(Value::as_object_mut);
    if let Some(content) = content
        && let Some(schema) = content.remove(POEM_JSON)
    {
        content.insert(JSON.to_owned(), schema);
    }
}
