//! Each operation's error answers, and only those it can give, each `application/problem+json`
//! with the `Problem` schema.
//!
//! Two sources, so that a route added later gets the shared answers without thinking about it:
//! - the layers every request passes, read from the operation's shape in the document
//!   ([`layer_statuses`]);
//! - the operation's own code paths, written down per operation in [`ROUTE_STATUSES`] (the
//!   refusals its service call can answer, in `api/src/http/identity_errors.rs`).
//!
//! 500 and 503 are documented on every operation: each runs behind layers that answer a failure
//! of our own as 500, and every one but `requestPasswordReset` (whose work happens after the
//! answer) reads Postgres before answering, which under overload may find every connection busy
//! (503 `database_busy`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

/// What an operation's own code paths can answer, beyond [`layer_statuses`], by operationId.
/// Each line was checked against the service call the route makes; the unit tests make sure
/// every operation has exactly one line.
const ROUTE_STATUSES: &[(&str, &[u16])] = &[
    // 409 email taken or a lost race; 422 email, password or organization name; 429 per-address
    // limit; 503 password hashing busy, or the read model behind.
    ("registerUser", &[409, 422, 429, 503]),
    // 401 unknown or expired token; 409 already verified, or a lost race.
    ("verifyEmail", &[401, 409, 429]),
    // 409 already verified; 429 per-address or per-account mail limit.
    ("resendEmailVerification", &[409, 429]),
    // 401 wrong email or password; 403 not a member, no organization, suspended; 422 over the
    // password's length; 429 per-address limit or the account's failed logins; 503 hashing busy.
    ("login", &[401, 403, 422, 429, 503]),
    // 401 invalid, expired, reused token, password changed; 403 suspended; 409 two refreshes
    // racing.
    ("refreshTokens", &[401, 403, 409, 429]),
    // 422 not an email address. Nothing else: the work happens after the answer.
    ("requestPasswordReset", &[422, 429]),
    // 401 invalid or expired link; 409 a lost race; 422 weak password; 503 hashing busy or the
    // read model behind.
    ("confirmPasswordReset", &[401, 409, 422, 429, 503]),
    ("getMe", &[]),
    // 409 a lost race for the key's prefix; 422 the name's length.
    ("createApiKey", &[409, 422]),
    ("listApiKeys", &[]),
    // 404 no such key here; 409 already revoked, or a lost race; 503 the read model behind.
    ("revokeApiKey", &[404, 409, 503]),
    ("listMembers", &[]),
    // 409 a lost race; 422 a rule of the definition, an invalid `Idempotency-Key`, or the key
    // sent before with another definition.
    ("createAgent", &[409, 422]),
    // 404 no such agent here, or no such version of it.
    ("getAgent", &[404]),
    // 422 the page limit.
    ("listAgents", &[422]),
    // 404 no such agent here; 409 a lost race; 422 a rule of the definition, or no field.
    ("updateAgent", &[404, 409, 422]),
    // 404 no such agent here; 409 a lost race; 422 the title's length, an invalid
    // `Idempotency-Key`, or the key sent before with another agent or title.
    ("createConversation", &[404, 409, 422]),
    // 404 no such conversation here (or not yet at `as_of`); 503 the view behind.
    ("getConversation", &[404, 503]),
    // 422 the page limit; 503 the view behind.
    ("listConversations", &[422, 503]),
    // 404 no such conversation here; 409 a lost race.
    ("archiveConversation", &[404, 409]),
    // 402 no credit left (`insufficient_credits`) or the month's tokens used up
    // (`token_quota_exceeded`); 404 no such conversation here; 409 a run is active, archived, or
    // a lost race (or another node's start of the organization held the quota lock too long);
    // 422 the input's rules, an invalid `Idempotency-Key`, or the key sent before with another
    // input; 429 the concurrent-run limit (`concurrent_run_limit`); 503 the run
    // view behind, under a concurrent-run limit.
    ("createRun", &[402, 404, 409, 422, 429, 503]),
    // 404 no such conversation here; 422 the page limit or cursor; 503 the view behind.
    ("listRuns", &[404, 422, 503]),
    // 422 the page limit, status or conversation id; 503 the view behind.
    ("listOrganizationRuns", &[422, 503]),
    // 404 no such run here (or not yet at `as_of`).
    ("getRun", &[404]),
    // 422 the page limit.
    ("listPendingApprovals", &[422]),
    // 404 no such run here; 409 it ended already, or a lost race.
    ("cancelRun", &[404, 409]),
    // 404 no such run here, or no such call in its current step; 409 the call is not pending,
    // the run ended, or a lost race.
    ("approveToolCall", &[404, 409]),
    // As approving, and 422 the reason's length.
    ("denyToolCall", &[404, 409, 422]),
    // 404 no such run here; 422 an id the run never had. 401 and 403 (a ticket unknown, used,
    // expired or for another run) are the layers'.
    ("streamRunEvents", &[404, 422]),
    // As streaming over SSE; 400 not a WebSocket upgrade.
    ("openRunSocket", &[400, 404, 422]),
    // 404 no such run here.
    ("createStreamTicket", &[404]),
    // 409 the name is taken, or a lost race; 422 a rule of the definition, the schema's
    // validity, or the secret's.
    ("createTool", &[409, 422]),
    // 404 no such tool here, or deleted.
    ("getTool", &[404]),
    // 422 the page limit.
    ("listTools", &[422]),
    // 404 no such tool here; 409 a lost race; 422 a rule of the definition, the schema, another
    // name, or no field.
    ("updateTool", &[404, 409, 422]),
    // 404 no such tool here; 409 a lost race; 422 the secret's rule.
    ("rotateToolSecret", &[404, 409, 422]),
    // 404 no such tool here (or deleted already); 409 a lost race.
    ("deleteTool", &[404, 409]),
    // 409 already a member or invited; 422 the email address; 503 no mail server, or it refused.
    ("inviteMember", &[409, 422, 503]),
    // 404 unknown token; 409 accepted already or expired; 503 the read model behind.
    ("acceptInvitation", &[404, 409, 503]),
    // 404 not a member; 409 the last owner, or a lost race; 422 an unknown role; 503 the read
    // model behind.
    ("changeMemberRole", &[404, 409, 422, 503]),
    ("removeMember", &[404, 409, 503]),
    // 404 no such event in the caller's organization.
    ("getEvent", &[404]),
    // 400 a malformed filter or a cursor of another query; 422 the page limit.
    ("listAuditEntries", &[400, 422]),
    ("exportAuditLog", &[]),
    ("verifyAuditLog", &[]),
    // 400 the range; 422 a date or period; 503 the view behind.
    ("getUsage", &[400, 422, 503]),
    // 404 no event of that aggregate the organization may see; 422 an unknown aggregate type,
    // the page limit or cursor.
    ("getAggregateHistory", &[404, 422]),
    // 404 the user is not a member of that organization; 422 reason or lifetime.
    ("startImpersonation", &[404, 422]),
    // 404 no such impersonation; 409 a lost race; 503 the read model behind.
    ("endImpersonation", &[404, 409, 503]),
    // 404 no such organization; 409 already suspended, or a lost race; 422 the reason's length;
    // 503 the read model behind.
    ("suspendOrganization", &[404, 409, 422, 503]),
    ("reactivateOrganization", &[404, 409, 503]),
    // 404 no such organization; 409 a lost race; 422 a limit out of range; 503 the read model
    // behind.
    ("setOrganizationQuotas", &[404, 409, 422, 503]),
    // 503 the usage or run view behind.
    ("getQuotas", &[503]),
    // 404 no credit account yet at `as_of`; 409 a lost race opening the account.
    ("getBalance", &[404, 409]),
    // 409 a lost race opening the account; 422 the page limit or cursor.
    ("listLedgerEntries", &[409, 422]),
    // 422 the amount, under Stripe's smallest charge, an invalid `Idempotency-Key`, or the key
    // sent before with other credits; 503 Stripe not configured or failing.
    ("createCheckoutSession", &[422, 503]),
    // 400 signature missing, malformed, not matching or stale, or an unreadable event; 409 a
    // lost race on the account; 503 no webhook secret configured. 401/403/429 do not apply
    // (no credentials), 413 and 415 do (the body layers).
    ("receiveStripeWebhook", &[400, 409, 503]),
    // 404 no such organization, or no such purchase of it; 409 a lost race; 422 the amount,
    // the reason, a purchase id, or more than is left of the purchase.
    ("refundCredits", &[404, 409, 422]),
];

/// Replaces the error answers poem-openapi lists (every status of `ApiError` on every
/// operation) with each operation's own.
pub(super) fn document_errors(document: &mut Value) {
    for operation in super::operations_mut(document) {
        let statuses = statuses_of(operation);
        let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        responses.retain(|status, _| !status.starts_with('4') && !status.starts_with('5'));
        for status in statuses {
            responses.insert(status.to_string(), problem_response(status));
        }
    }
}

/// The error statuses `operation` can answer.
fn statuses_of(operation: &Value) -> BTreeSet<u16> {
    let mut statuses = layer_statuses(operation);
    let id = operation["operationId"].as_str().unwrap_or_default();
    if let Some((_, own)) = ROUTE_STATUSES.iter().find(|(known, _)| *known == id) {
        statuses.extend(own.iter().copied());
    }
    statuses
}

/// What the layers in front of an operation answer, from its shape: a body can be unreadable
/// (400), too large (413, `BodyLimit`) or not JSON (415); a parameter can fail to parse (400);
/// credentials can be refused (401), belong to a suspended organization or lack the right
/// (403), or be over their rate limit (429); and anything can fail on our side (500).
fn layer_statuses(operation: &Value) -> BTreeSet<u16> {
    let mut statuses = BTreeSet::from([500]);
    // Postgres may find every connection busy (`database_busy`), before the answer of every
    // operation but the one whose work happens after it.
    if operation["operationId"] != "requestPasswordReset" {
        statuses.insert(503);
    }
    if operation.get("requestBody").is_some() {
        statuses.extend([400, 413, 415]);
    }
    if operation["parameters"]
        .as_array()
        .is_some_and(|list| !list.is_empty())
    {
        statuses.insert(400);
    }
    if operation["security"]
        .as_array()
        .is_some_and(|list| !list.is_empty())
    {
        statuses.extend([401, 403, 429]);
    }
    statuses
}

/// A problem+json answer for `status`, with `Retry-After` where the service always sends it.
fn problem_response(status: u16) -> Value {
    let mut response = json!({
        "description": description(status),
        "content": {
            "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } }
        },
    });
    if matches!(status, 429 | 503) {
        response["headers"] = json!({
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "required": true,
                "schema": { "type": "integer", "format": "int64", "minimum": 0 },
            }
        });
    }
    response
}

fn description(status: u16) -> &'static str {
    match status {
        400 => {
            "The request cannot be read: a body that is not JSON of the documented shape, a \
             parameter of the wrong type, or text holding a control character \
             (`control_characters`)."
        }
        401 => "The credentials are missing, invalid or no longer valid; `code` says which.",
        402 => {
            "The organization's plan or credits do not cover this; `code` says which, and \
             `quota` names a plan limit with its use and when it resets."
        }
        403 => "The credentials may not do this; `code` says why.",
        404 => "Nothing here, or it belongs to another organization.",
        409 => {
            "The request conflicts with the current state; `code` says how \
             (`concurrent_modification` may be retried)."
        }
        413 => "The body is over the documented limit.",
        415 => "The body is not `application/json`.",
        422 => "A value breaks a rule of the schema or of the domain; `code` names the rule.",
        429 => "Too many requests; retry after `Retry-After` seconds.",
        503 => "Not possible right now; retry after `Retry-After` seconds (`code` says why).",
        _ => "A failure on our side; the logs have it under this request's id.",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ROUTE_STATUSES;

    /// A new operation must be thought through (and written down) before it is documented; a
    /// removed one must not leave its line behind.
    #[test]
    fn every_operation_has_exactly_one_line_of_its_own_statuses() {
        let document = crate::openapi_document();
        let mut ids = BTreeSet::new();
        for operation in super::super::tests::operations(&document) {
            ids.insert(operation["operationId"].as_str().unwrap_or_default().to_owned());
        }
        let listed: Vec<&str> = ROUTE_STATUSES.iter().map(|(id, _)| *id).collect();
        let listed_set: BTreeSet<String> = listed.iter().map(|id| (*id).to_owned()).collect();
        assert_eq!(listed.len(), listed_set.len(), "an operation listed twice");
        assert_eq!(ids, listed_set, "operations and ROUTE_STATUSES differ");
    }
}
