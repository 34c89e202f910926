//! Public operations say so.

use serde_json::{Value, json};

/// An operation without a security requirement takes no credentials (poem-openapi lists one
/// for every operation with a [`crate::http::BearerAuth`] argument, and nothing for the rest);
/// `security: []` says so explicitly, as linters and generators expect.
pub(super) fn declare_public_operations(document: &mut Value) {
    for operation in super::operations_mut(document) {
        if let Some(operation) = operation.as_object_mut() {
            operation.entry("security").or_insert_with(|| json!([]));
        }
    }
}
