//! No `null` in a request body.
//!
//! The API's rule for optional fields is that they are left out, never `null`, and the OpenAPI
//! document marks nothing nullable. poem-openapi, though, reads `null` as "absent" for every
//! optional field, so a body the document forbids would be accepted (schemathesis'
//! `negative_data_rejection` found `"tools": null` accepted). Refusing every `null` here, once,
//! keeps what is accepted equal to what is documented, for every route present and future.

use poem::http::StatusCode;
use poem::http::header::CONTENT_TYPE;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use serde_json::Value;

use super::catch_all::problem_response;
use super::{ErrorCode, Problem};

/// Fields that hold free-form JSON, where `null` is data rather than an absent field: a tool's
/// `parameters` is a JSON Schema, in which `"enum": ["a", null]` or `"default": null` are valid.
/// By route prefix and top-level body field.
const FREE_FORM: &[(&str, &str)] = &[("/v1/tools", "parameters")];

/// Routes whose body is someone else's document, taken as it comes: Stripe's events are full of
/// `null`, and their signature covers the bytes as sent.
const FOREIGN_BODIES: &[&str] = &["/v1/billing/stripe/webhook"];

/// Answers a JSON body holding `null` anywhere (but inside a [`FREE_FORM`] field) with 400
/// `null_value`, naming where.
#[derive(Clone, Copy, Debug, Default)]
pub struct RefuseNulls;

impl<E: Endpoint> Middleware<E> for RefuseNulls {
    type Output = RefuseNullsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RefuseNullsEndpoint { inner }
    }
}

/// The endpoint [`RefuseNulls`] wraps around the routes.
pub struct RefuseNullsEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for RefuseNullsEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("application/json"));
        if is_json && !FOREIGN_BODIES.contains(&request.uri().path()) {
            // The body limit has already read the body into memory; this reads it again.
            let body = request.take_body().into_bytes().await?;
            let path = request.uri().path().to_owned();
            if let Ok(mut value) = serde_json::from_slice::<Value>(&body)
                && let Some(path) = first_null(without_free_form(&mut value, &path), String::new())
            {
                let detail = format!("`{path}` is null: leave an optional field out instead of sending null");
                return Ok(problem_response(Problem::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::NullValue,
                    detail,
                )));
            }
            request.set_body(body);
        }
        self.inner.call(request).await.map(IntoResponse::into_response)
    }
}

/// `value` without the free-form fields of the route at `path` (their own nulls are data).
fn without_free_form<'v>(value: &'v mut Value, path: &str) -> &'v Value {
    if let Value::Object(fields) = value {
        for (prefix, field) in FREE_FORM {
            if path.starts_with(prefix) {
                fields.remove(*field);
            }
        }
    }
    value
}

/// Where the first `null` in `value` is, as a path such as `tools` or `approval.search`.
fn first_null(value: &Value, path: String) -> Option<String> {
    match value {
        Value::Null => Some(if path.is_empty() {
            "(the body)".to_owned()
        } else {
            path
        }),
        Value::Object(map) => map.iter().find_map(|(key, value)| {
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            first_null(value, inner)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, value)| first_null(value, format!("{path}[{index}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{first_null, without_free_form};

    #[test]
    fn the_first_null_is_named_by_its_path() {
        assert_eq!(
            first_null(&json!({ "name": "x", "tools": null }), String::new()).as_deref(),
            Some("tools")
        );
        assert_eq!(
            first_null(&json!({ "a": { "b": [1, null] } }), String::new()).as_deref(),
            Some("a.b[1]")
        );
        assert_eq!(
            first_null(&json!({ "name": "x", "tools": [] }), String::new()),
            None
        );
    }

    #[test]
    fn nulls_inside_a_tools_schema_are_data_and_elsewhere_still_refused() {
        let mut body = json!({ "parameters": { "enum": [null] }, "url": null });
        let on_tools = without_free_form(&mut body, "/v1/tools/abc");
        assert_eq!(first_null(on_tools, String::new()).as_deref(), Some("url"));
        let mut body = json!({ "parameters": { "enum": [null] } });
        assert_eq!(
            first_null(without_free_form(&mut body.clone(), "/v1/agents"), String::new()).as_deref(),
            Some("parameters.enum[0]")
        );
        assert_eq!(
            first_null(without_free_form(&mut body, "/v1/tools"), String::new()),
            None
        );
    }
}
