//! The OpenAPI document clients generate their code from (openapi-typescript, openapi-fetch,
//! openapi-python-client): poem-openapi's description of `/v1`, finished in one place so that
//! `/openapi.json`, `/docs` and [`crate::openapi_document`] show the same document.
//!
//! poem-openapi cannot say everything those tools need, so [`finish`] adds it:
//! - [`media_types`]: JSON bodies keyed `application/json` (poem-openapi writes
//!   `application/json; charset=utf-8`, which generators do not look up);
//! - [`security`]: `security: []` on the operations that take no credentials;
//! - [`errors`]: each operation's error answers, only those it can give, as problem+json.

mod errors;
mod media_types;
mod references;
mod security;

use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, IntoResponse, Route};
use poem_openapi::{ContactObject, LicenseObject, OpenApiService};
use serde_json::Value;

use crate::routes::{V1Apis, v1_apis};

/// The service's version, shown in the document.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The workspace's license (`license` in the root `Cargo.toml`), and where to read it.
const LICENSE: &str = env!("CARGO_PKG_LICENSE");
const LICENSE_URL: &str = "https://www.apache.org/licenses/LICENSE-2.0";

/// poem-openapi's service for `/v1`, with the document's `info`.
pub fn service() -> OpenApiService<V1Apis, ()> {
    OpenApiService::new(v1_apis(), "Agentry", VERSION)
        .description(
            "Event-sourced backend for AI-agent SaaS. Every error is application/problem+json \
             (RFC 9457) with a stable `code`; docs/error-codes.md lists them all.",
        )
        .license(LicenseObject::new(LICENSE).url(LICENSE_URL))
        .contact(ContactObject::new().name("Agentry maintainers"))
        .server("/v1")
}

/// The finished document of `service`.
pub fn document(service: &OpenApiService<V1Apis, ()>) -> Value {
    let generated = serde_json::from_str(&service.spec()).unwrap_or_default();
    finish(generated)
}

/// Everything poem-openapi's document lacks, added.
fn finish(mut document: Value) -> Value {
    media_types::plain_json_keys(&mut document);
    security::declare_public_operations(&mut document);
    errors::document_errors(&mut document);
    describe_bare_responses(&mut document);
    references::single_reference_all_of(&mut document);
    document
}

/// A `Json<T>` answer has no doc comment of its own, so poem-openapi describes it with an empty
/// string; generators turn descriptions into doc comments, so say at least what the status says.
fn describe_bare_responses(document: &mut Value) {
    for operation in operations_mut(document) {
        let responses = operation.get_mut("responses").and_then(Value::as_object_mut);
        for (status, response) in responses.into_iter().flatten() {
            let bare = response["description"]
                .as_str()
                .is_none_or(|text| text.trim().is_empty());
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|code| poem::http::StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason());
            if let (true, Some(reason)) = (bare, reason) {
                response["description"] = Value::String(reason.to_owned());
            }
        }
    }
}

/// `/openapi.json` (the finished document) and `/docs` (Swagger UI showing it).
pub fn endpoints(service: &OpenApiService<V1Apis, ()>) -> (impl Endpoint + use<>, impl Endpoint + use<>) {
    let generated = service.spec();
    let finished = serde_json::to_string_pretty(&document(service)).unwrap_or_default();
    // Swagger UI's page embeds the document it shows; show the finished one.
    let page = service.swagger_ui_html().replacen(&generated, &finished, 1);
    let spec = make_sync(move |_| {
        finished
            .clone()
            .with_content_type("application/json; charset=utf-8")
            .into_response()
    });
    let docs = Route::new().at("/", make_sync(move |_| Html(page.clone())));
    (spec, docs)
}

/// The HTTP methods an OpenAPI path item can hold operations under.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation object of the document, mutably.
fn operations_mut(document: &mut Value) -> impl Iterator<Item = &mut Value> {
    document["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.iter_mut())
        .filter(|(method, _)| METHODS.contains(&method.as_str()))
        .map(|(_, operation)| operation)
}

#[cfg(test)]
pub(crate) mod tests;
