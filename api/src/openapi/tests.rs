//! The document as generated clients and linters read it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::METHODS;
use crate::openapi_document;

/// Every operation object of `document`.
pub(crate) fn operations(document: &Value) -> Vec<&Value> {
    document["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|item| item.iter())
        .filter(|(method, _)| METHODS.contains(&method.as_str()))
        .map(|(_, operation)| operation)
        .collect()
}

fn operation<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    &document["paths"][path][method]
}

fn is_camel_case(id: &str) -> bool {
    id.chars().next().is_some_and(|first| first.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_alphanumeric())
}

fn text(value: &Value) -> bool {
    value.as_str().is_some_and(|text| !text.trim().is_empty())
}

/// Generators name functions after `operationId` and group them by tag; their doc comments
/// come from the summary and the description.
#[test]
fn every_operation_has_a_unique_camel_case_id_a_tag_a_summary_and_a_description() {
    let document = openapi_document();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for operation in operations(&document) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        let label = format!("{id:?} ({})", operation["summary"]);
        if !is_camel_case(id) {
            problems.push(format!("{label}: operationId is not camelCase"));
        }
        if !seen.insert(id) {
            problems.push(format!("{label}: operationId used twice"));
        }
        if operation["tags"].as_array().is_none_or(Vec::is_empty) {
            problems.push(format!("{label}: no tag"));
        }
        if !text(&operation["summary"]) || operation["summary"].as_str().is_some_and(|s| s.contains('\n')) {
            problems.push(format!("{label}: no one-line summary"));
        }
        if !text(&operation["description"]) {
            problems.push(format!("{label}: no description"));
        }
        for (status, response) in operation["responses"].as_object().into_iter().flatten() {
            if !text(&response["description"]) {
                problems.push(format!("{label}: answer {status} undescribed"));
            }
        }
    }
    assert!(seen.len() >= 21, "{seen:?}");
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Success bodies that are not JSON documents: streamed lines (the audit export) and
/// Server-Sent Events (a run's stream).
const STREAMED_MEDIA_TYPES: &[&str] = &["application/x-ndjson", "text/event-stream"];

/// openapi-typescript and openapi-fetch look bodies up by `application/json` (streams aside);
/// errors are problem+json with the `Problem` schema.
#[test]
fn json_bodies_are_keyed_application_json_and_errors_are_problems() {
    let document = openapi_document();
    let mut problems = Vec::new();
    for operation in operations(&document) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        let request = operation["requestBody"]["content"].as_object();
        for media_type in request.into_iter().flat_map(|content| content.keys()) {
            if media_type != "application/json" {
                problems.push(format!("{id}: request body keyed {media_type:?}"));
            }
        }
        for (status, response) in operation["responses"].as_object().into_iter().flatten() {
            let keys: Vec<&String> = response["content"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|c| c.0)
                .collect();
            if status.starts_with('1') || status.starts_with('2') {
                let streamed = keys.len() == 1 && STREAMED_MEDIA_TYPES.contains(&keys[0].as_str());
                if !streamed && keys.iter().any(|key| *key != "application/json") {
                    problems.push(format!("{id} {status}: keyed {keys:?}"));
                }
                continue;
            }
            let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
            if keys != ["application/problem+json"] || schema != "#/components/schemas/Problem" {
                problems.push(format!(
                    "{id} {status}: not a Problem as problem+json: {response}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Each operation lists only the errors it can give: registration takes no credentials and
/// names nothing, so it cannot answer 401, 403 or 404; the password reset request reads a body,
/// so it can answer 400, 413 and 415.
#[test]
fn operations_document_the_errors_they_can_give_and_no_others() {
    let document = openapi_document();
    let statuses = |method: &str, path: &str| -> Vec<String> {
        let responses = operation(&document, method, path)["responses"]
            .as_object()
            .cloned();
        responses.unwrap_or_default().keys().cloned().collect()
    };

    assert_eq!(
        statuses("post", "/auth/register"),
        ["201", "400", "409", "413", "415", "422", "429", "500", "503"]
    );
    assert_eq!(
        statuses("post", "/auth/password-reset"),
        ["202", "400", "413", "415", "422", "429", "500"]
    );
    assert_eq!(statuses("get", "/me"), ["200", "401", "403", "429", "500", "503"]);
    assert_eq!(
        statuses("delete", "/api-keys/{id}"),
        ["204", "400", "401", "403", "404", "409", "429", "500", "503"]
    );
    let too_many = &operation(&document, "post", "/auth/login")["responses"]["429"];
    assert_eq!(too_many["headers"]["Retry-After"]["required"], true, "{too_many}");
}

/// Linters and generators read a missing `security` as "unspecified"; public operations say
/// `security: []`, the others name the bearer scheme, and the stream routes the stream ticket
/// (`?ticket=`) as its alternative.
#[test]
fn public_operations_declare_empty_security_and_the_others_the_bearer_scheme() {
    let streams: BTreeSet<&str> = ["streamRunEvents", "openRunSocket"].into();
    let document = openapi_document();
    let public: BTreeSet<&str> = [
        "registerUser",
        "login",
        "refreshTokens",
        "requestPasswordReset",
        "confirmPasswordReset",
        "verifyEmail",
        // Stripe signs the body instead (`Stripe-Signature`).
        "receiveStripeWebhook",
    ]
    .into();
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for operation in operations(&document) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        let security = operation["security"].as_array().cloned();
        let security = security.unwrap_or_else(|| panic!("{id}: no security"));
        if public.contains(id) {
            assert!(security.is_empty(), "{id}: {security:?}");
            continue;
        }
        let named: Vec<&String> = security
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|s| s.keys())
            .collect();
        assert!(!named.is_empty(), "{id}: no scheme");
        for name in &named {
            let scheme = &schemes[name.as_str()];
            let ticket = scheme["type"] == "apiKey" && scheme["in"] == "query" && scheme["name"] == "ticket";
            let allowed = scheme["scheme"] == "bearer" || (ticket && streams.contains(id));
            assert!(allowed, "{id}: {name} {scheme}");
        }
        if streams.contains(id) {
            assert_eq!(named, ["BearerAuth", "StreamTicket"], "{id}: either scheme");
        }
    }
}

#[test]
fn info_names_the_workspace_license_and_a_contact() {
    let document = openapi_document();
    assert_eq!(document["info"]["license"]["name"], env!("CARGO_PKG_LICENSE"));
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0");
    assert!(text(&document["info"]["license"]["url"]));
    assert!(text(&document["info"]["contact"]["name"]));
}

/// The schema's limits are the domain's, so a client checking the document before sending and
/// the service checking the request agree.
#[test]
fn schema_limits_are_the_domains() {
    use domain::{api_key, email, impersonation, organization, password_policy};

    let document = openapi_document();
    let property =
        |schema: &str, name: &str| document["components"]["schemas"][schema]["properties"][name].clone();
    let limits = |schema: &str, name: &str| {
        let found = property(schema, name);
        (found["minLength"].as_u64(), found["maxLength"].as_u64())
    };
    let count = |n: usize| Some(n as u64);

    let password = (
        count(password_policy::MIN_PASSWORD_CHARS),
        count(password_policy::MAX_PASSWORD_CHARS),
    );
    assert_eq!(limits("RegisterRequest", "password"), password);
    assert_eq!(limits("PasswordResetConfirm", "new_password"), password);
    let org_name = (Some(1), count(organization::MAX_NAME_CHARS));
    assert_eq!(limits("RegisterRequest", "org_name"), org_name);
    assert_eq!(
        limits("CreateKeyRequest", "name"),
        (Some(1), count(api_key::MAX_NAME_CHARS))
    );
    let reason = (Some(1), count(impersonation::MAX_REASON_CHARS));
    assert_eq!(limits("ImpersonationRequest", "reason"), reason);
    let ttl = property("ImpersonationRequest", "ttl_seconds");
    let max_ttl = impersonation::MAX_DURATION.num_seconds() as f64;
    assert_eq!(
        (ttl["minimum"].as_f64(), ttl["maximum"].as_f64()),
        (Some(1.0), Some(max_ttl))
    );
    for (schema, name) in [
        ("RegisterRequest", "email"),
        ("LoginRequest", "email"),
        ("InviteRequest", "email"),
    ] {
        let found = property(schema, name);
        assert_eq!(found["format"], "email", "{schema}.{name}");
        assert_eq!(
            found["maxLength"].as_u64(),
            count(email::MAX_EMAIL_CHARS),
            "{schema}.{name}"
        );
    }
    let suspend = &operation(&document, "post", "/admin/orgs/{id}/suspend")["parameters"][1];
    assert_eq!(
        suspend["schema"]["maxLength"].as_u64(),
        count(organization::MAX_REASON_CHARS)
    );
}

/// Every string a request sends says it refuses control characters, as `Text` does.
#[test]
fn request_strings_document_that_control_characters_are_refused() {
    let document = openapi_document();
    let schemas = document["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut missing = Vec::new();
    for name in [
        "RegisterRequest",
        "LoginRequest",
        "CreateKeyRequest",
        "InviteRequest",
        "AcceptRequest",
    ] {
        for (property, definition) in schemas[name]["properties"].as_object().into_iter().flatten() {
            let text =
                definition["type"] == "string" && definition.get("format").is_none_or(|f| f == "email");
            if text && definition["pattern"] != crate::http::NO_CONTROL_CHARACTERS {
                missing.push(format!("{name}.{property}"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:?}");
}

/// One enum for roles in requests and answers.
#[test]
fn roles_are_the_role_name_enum_everywhere() {
    let document = openapi_document();
    let schemas = &document["components"]["schemas"];
    let role = "#/components/schemas/RoleName";
    for schema in [
        "MeResponse",
        "MemberView",
        "JoinedView",
        "InviteRequest",
        "ChangeRoleRequest",
    ] {
        let property = &schemas[schema]["properties"]["role"];
        let refers = property["$ref"] == role || property["allOf"][0]["$ref"] == role;
        assert!(refers, "{schema}.role: {property}");
    }
}

/// The API's one rule for optional fields: left out when empty, never `null`; so nothing in
/// the document is `nullable`.
#[test]
fn no_field_is_nullable() {
    let document = openapi_document().to_string();
    assert!(!document.contains(r#""nullable":true"#), "a nullable field");
}
