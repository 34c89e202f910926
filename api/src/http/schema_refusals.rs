//! Values the OpenAPI document forbids (a length, a range, an enum, an email's length), refused
//! by poem-openapi's validators before the operation runs, answered 422 with a code that names
//! the rule: the same code the domain gives when it refuses the same value, so a client sees
//! one answer whichever layer caught it.
//!
//! poem-openapi reports a validator failure only as text (`failed to parse "CreateKeyRequest":
//! field `name` verification failed. maxLength(100)`), so this reads that text; the tests in
//! `agentry/tests/api/schema_rules.rs` pin the format, and a unit test below makes sure every
//! rule in the document has a line in [`FIELD_RULES`].

use super::ErrorCode;
use super::email_text::EMAIL_TOO_LONG;

/// The schema (or [`PARAMETER`] for a query or path parameter), the property, the validator
/// (`maxLength`, `minimum`…; empty for every validator of the property) and the code.
const FIELD_RULES: &[(&str, &str, &str, ErrorCode)] = &[
    ("RegisterRequest", "password", "", ErrorCode::WeakPassword),
    (
        "RegisterRequest",
        "org_name",
        "minLength",
        ErrorCode::OrganizationNameRequired,
    ),
    (
        "RegisterRequest",
        "org_name",
        "maxLength",
        ErrorCode::OrganizationNameTooLong,
    ),
    (
        "PasswordResetConfirm",
        "new_password",
        "",
        ErrorCode::WeakPassword,
    ),
    (
        "CreateKeyRequest",
        "name",
        "minLength",
        ErrorCode::ApiKeyNameRequired,
    ),
    (
        "CreateKeyRequest",
        "name",
        "maxLength",
        ErrorCode::ApiKeyNameTooLong,
    ),
    (
        "ImpersonationRequest",
        "reason",
        "minLength",
        ErrorCode::ImpersonationReasonRequired,
    ),
    (
        "ImpersonationRequest",
        "reason",
        "maxLength",
        ErrorCode::ImpersonationReasonTooLong,
    ),
    (
        "ImpersonationRequest",
        "ttl_seconds",
        "",
        ErrorCode::ImpersonationTtlOutOfRange,
    ),
    (
        PARAMETER,
        "reason",
        "maxLength",
        ErrorCode::SuspensionReasonTooLong,
    ),
    (
        "CreateAgentRequest",
        "name",
        "minLength",
        ErrorCode::AgentNameRequired,
    ),
    (
        "CreateAgentRequest",
        "name",
        "maxLength",
        ErrorCode::AgentNameTooLong,
    ),
    (
        "CreateAgentRequest",
        "model",
        "minLength",
        ErrorCode::AgentModelRequired,
    ),
    (
        "CreateAgentRequest",
        "model",
        "maxLength",
        ErrorCode::AgentModelTooLong,
    ),
    (
        "CreateAgentRequest",
        "max_steps",
        "",
        ErrorCode::MaxStepsOutOfRange,
    ),
    (
        "CreateAgentRequest",
        "temperature",
        "",
        ErrorCode::TemperatureOutOfRange,
    ),
    (
        "CreateAgentRequest",
        "max_output_tokens",
        "",
        ErrorCode::MaxOutputTokensOutOfRange,
    ),
    (
        "UpdateAgentRequest",
        "name",
        "minLength",
        ErrorCode::AgentNameRequired,
    ),
    (
        "UpdateAgentRequest",
        "name",
        "maxLength",
        ErrorCode::AgentNameTooLong,
    ),
    (
        "UpdateAgentRequest",
        "model",
        "minLength",
        ErrorCode::AgentModelRequired,
    ),
    (
        "UpdateAgentRequest",
        "model",
        "maxLength",
        ErrorCode::AgentModelTooLong,
    ),
    (
        "UpdateAgentRequest",
        "max_steps",
        "",
        ErrorCode::MaxStepsOutOfRange,
    ),
    (
        "UpdateAgentRequest",
        "temperature",
        "",
        ErrorCode::TemperatureOutOfRange,
    ),
    (
        "UpdateAgentRequest",
        "max_output_tokens",
        "",
        ErrorCode::MaxOutputTokensOutOfRange,
    ),
    (
        "CreateConversationRequest",
        "title",
        "maxLength",
        ErrorCode::ConversationTitleTooLong,
    ),
    ("CreateRunRequest", "input", "minLength", ErrorCode::InputRequired),
    ("CreateRunRequest", "input", "maxLength", ErrorCode::InputTooLong),
    ("DenyRequest", "reason", "maxLength", ErrorCode::ReasonTooLong),
    (
        "PlanLimits",
        "tokens_per_month",
        "",
        ErrorCode::TokensPerMonthOutOfRange,
    ),
    (
        "PlanLimits",
        "concurrent_runs",
        "",
        ErrorCode::ConcurrentRunsOutOfRange,
    ),
    (
        "PlanLimits",
        "requests_per_minute",
        "",
        ErrorCode::RequestsPerMinuteOutOfRange,
    ),
    ("CreateToolRequest", "name", "", ErrorCode::InvalidToolName),
    (
        "CreateToolRequest",
        "description",
        "minLength",
        ErrorCode::ToolDescriptionRequired,
    ),
    (
        "CreateToolRequest",
        "description",
        "maxLength",
        ErrorCode::ToolDescriptionTooLong,
    ),
    ("CreateToolRequest", "url", "pattern", ErrorCode::ToolUrlNotHttp),
    ("CreateToolRequest", "url", "maxLength", ErrorCode::ToolUrlTooLong),
    (
        "CreateToolRequest",
        "timeout_ms",
        "",
        ErrorCode::ToolTimeoutOutOfRange,
    ),
    ("UpdateToolRequest", "name", "", ErrorCode::InvalidToolName),
    (
        "UpdateToolRequest",
        "description",
        "minLength",
        ErrorCode::ToolDescriptionRequired,
    ),
    (
        "UpdateToolRequest",
        "description",
        "maxLength",
        ErrorCode::ToolDescriptionTooLong,
    ),
    ("UpdateToolRequest", "url", "pattern", ErrorCode::ToolUrlNotHttp),
    ("UpdateToolRequest", "url", "maxLength", ErrorCode::ToolUrlTooLong),
    (
        "UpdateToolRequest",
        "timeout_ms",
        "",
        ErrorCode::ToolTimeoutOutOfRange,
    ),
    ("CreateToolRequest", "secret", "", ErrorCode::InvalidToolSecret),
    (
        "RotateToolSecretRequest",
        "secret",
        "",
        ErrorCode::InvalidToolSecret,
    ),
    (
        "CreateAgentRequest",
        "approval_timeout_seconds",
        "",
        ErrorCode::ApprovalTimeoutOutOfRange,
    ),
    (
        "UpdateAgentRequest",
        "approval_timeout_seconds",
        "",
        ErrorCode::ApprovalTimeoutOutOfRange,
    ),
    ("CheckoutRequest", "credits", "", ErrorCode::InvalidCreditAmount),
    ("RefundRequest", "credits", "", ErrorCode::InvalidCreditAmount),
    ("RefundRequest", "reason", "", ErrorCode::RefundReasonInvalid),
    (
        "RefundRequest",
        "checkout_session_id",
        "",
        ErrorCode::InvalidCheckoutSessionId,
    ),
    (PARAMETER, "limit", "", ErrorCode::PageLimitOutOfRange),
    (PARAMETER, "cursor", "", ErrorCode::InvalidCursor),
    (PARAMETER, "Idempotency-Key", "", ErrorCode::InvalidIdempotencyKey),
];

/// Enum types and the code for a value that is none of theirs.
const ENUMS: &[(&str, ErrorCode)] = &[
    ("RoleName", ErrorCode::InvalidRole),
    ("AggregateType", ErrorCode::UnknownAggregateType),
];

/// Stands for "a parameter" in [`FIELD_RULES`].
const PARAMETER: &str = "parameter";

const VERIFICATION_FAILED: &str = "verification failed. ";
const NOT_AN_ENUM_VALUE: &str = "Expect a valid enumeration value.";

/// The code and detail for a request body poem-openapi refused with `reason`, when the reason
/// is a rule of the document; `None` for a body that is not of the documented shape at all.
pub(super) fn body_refusal(reason: &str) -> Option<(ErrorCode, String)> {
    if reason.contains(EMAIL_TOO_LONG) {
        return Some((ErrorCode::InvalidEmail, EMAIL_TOO_LONG.to_owned()));
    }
    if let Some(refused) = enum_refusal(reason) {
        return Some(refused);
    }
    let schema = quoted_after(reason, "failed to parse \"")?;
    let field = reason.split_once("field `")?.1.split_once('`')?.0;
    let rule = reason.split_once(VERIFICATION_FAILED)?.1;
    Some(refusal(schema, field, rule))
}

/// A string that is none of an enum's values (poem-openapi reports it as the wrong type, like
/// a number where the enum's string belongs, which stays a 400).
fn enum_refusal(reason: &str) -> Option<(ErrorCode, String)> {
    ENUMS.iter().find_map(|(name, code)| {
        let not_a_value = format!("Expected input type \"{name}\", found \"");
        let refused = reason.contains(&not_a_value)
            || (reason.contains(NOT_AN_ENUM_VALUE)
                && quoted_after(reason, "failed to parse \"") == Some(name));
        refused.then(|| (*code, format!("not a value of {name}; the document lists them")))
    })
}

/// The same for a parameter `name` refused with `reason` (a value none of its enum's among them).
pub(super) fn parameter_refusal(name: &str, reason: &str) -> Option<(ErrorCode, String)> {
    if let Some(refused) = enum_refusal(reason) {
        return Some(refused);
    }
    let rule = reason.split_once(VERIFICATION_FAILED)?.1;
    Some(refusal(PARAMETER, name, rule))
}

/// The same for a path segment refused with `reason`: a value none of its enum's (poem-openapi
/// names path parameters `param0`, `param1`…, so only the enum, named in the reason, tells them
/// apart; an id that does not parse stays a 400).
pub(super) fn path_refusal(reason: &str) -> Option<(ErrorCode, String)> {
    enum_refusal(reason)
}

/// `rule` is the validator as poem-openapi shows it, e.g. `maxLength(100)`.
fn refusal(schema: &str, field: &str, rule: &str) -> (ErrorCode, String) {
    let validator = rule.split('(').next().unwrap_or_default();
    let code = FIELD_RULES
        .iter()
        .find(|(s, f, v, _)| *s == schema && *f == field && (v.is_empty() || *v == validator))
        .map_or(ErrorCode::Unprocessable, |line| line.3);
    (code, format!("`{field}` breaks the documented rule {rule}"))
}

/// The text between `prefix` and the next `"`.
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    Some(text.split_once(prefix)?.1.split_once('"')?.0)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{ErrorCode, FIELD_RULES, PARAMETER, body_refusal, parameter_refusal};

    const RULES: &[(&str, &str)] = &[
        ("minLength", "minLength"),
        ("maxLength", "maxLength"),
        ("minimum", "minimum"),
        ("maximum", "maximum"),
    ];

    fn has_line(schema: &str, field: &str, validator: &str) -> bool {
        FIELD_RULES
            .iter()
            .any(|(s, f, v, _)| *s == schema && *f == field && (v.is_empty() || *v == validator))
    }

    /// A rule added to a request schema gets its code here, or it would answer the generic
    /// `unprocessable`. (An email's length is the `EmailText` type's, answered `invalid_email`.)
    #[test]
    fn every_rule_on_a_request_value_has_its_code() {
        let document = crate::openapi_document();
        let mut missing = Vec::new();
        let schemas = document["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (schema, body) in schemas
            .iter()
            .filter(|(name, _)| is_request_schema(&document, name))
        {
            for (property, definition) in body["properties"].as_object().into_iter().flatten() {
                if definition["format"] == "email" {
                    continue;
                }
                for (key, validator) in RULES {
                    if definition.get(*key).is_some() && !has_line(schema, property, validator) {
                        missing.push(format!("{schema}.{property} {validator}"));
                    }
                }
            }
        }
        for parameter in parameters(&document) {
            let name = parameter["name"].as_str().unwrap_or_default();
            for (key, validator) in RULES {
                if parameter["schema"].get(*key).is_some() && !has_line(PARAMETER, name, validator) {
                    missing.push(format!("parameter {name} {validator}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "rules without a code in FIELD_RULES: {missing:?}"
        );
    }

    fn is_request_schema(document: &Value, name: &str) -> bool {
        let reference = format!("#/components/schemas/{name}");
        crate::openapi::tests::operations(document)
            .iter()
            .any(|operation| {
                let content = operation["requestBody"]["content"].as_object();
                content
                    .into_iter()
                    .flatten()
                    .any(|(_, body)| body["schema"]["$ref"] == reference)
            })
    }

    fn parameters(document: &Value) -> Vec<Value> {
        crate::openapi::tests::operations(document)
            .iter()
            .flat_map(|operation| operation["parameters"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    #[test]
    fn poem_openapi_refusals_are_read_into_codes() {
        let too_long =
            r#"failed to parse "CreateKeyRequest": field `name` verification failed. maxLength(100)"#;
        let (code, detail) = body_refusal(too_long).unwrap_or_else(|| panic!("not read"));
        assert_eq!(code, ErrorCode::ApiKeyNameTooLong);
        assert_eq!(detail, "`name` breaks the documented rule maxLength(100)");

        let role =
            r#"Expected input type "RoleName", found "boss". (occurred while parsing "InviteRequest")"#;
        assert_eq!(body_refusal(role).map(|r| r.0), Some(ErrorCode::InvalidRole));
        let number = r#"Expected input type "RoleName", found 5. (occurred while parsing "InviteRequest")"#;
        assert_eq!(
            body_refusal(number),
            None,
            "a number where a role belongs stays a 400"
        );

        let wrong_type = r#"failed to parse "CreateKeyRequest": Expected input type "string", found 5."#;
        assert_eq!(body_refusal(wrong_type), None, "a wrong type stays a 400");

        let reason = parameter_refusal("reason", "verification failed. maxLength(500)");
        assert_eq!(reason.map(|r| r.0), Some(ErrorCode::SuspensionReasonTooLong));
    }
}
