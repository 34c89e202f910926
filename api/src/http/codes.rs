//! Every `code` a problem can carry: one enum, so the OpenAPI document lists them all with their
//! meaning and no route can answer a code that is not here.

use std::borrow::Cow;
use std::sync::OnceLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// Declares [`ErrorCode`]: each variant with its wire name and the sentence that documents it.
macro_rules! error_codes {
    ($($variant:ident = $code:literal : $meaning:literal,)*) => {
        /// A stable snake_case code for programs; the `detail` beside it is for people.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order the document lists them.
            pub const ALL: &[Self] = &[$(Self::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// What the code means, as the OpenAPI document says.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Self::$variant => $meaning,)*
                }
            }
        }
    };
}

error_codes! {
    // Requests the HTTP layer refuses before any operation.
    BadRequest = "bad_request": "The request is malformed (a parameter, a header or the JSON body cannot be read).",
    NullValue = "null_value": "A field of the JSON body is `null`; optional fields are left out, never null.",
    ControlCharacters = "control_characters": "A text field holds a control character (U+0000–U+001F, U+007F–U+009F); none is accepted anywhere.",
    Unauthorized = "unauthorized": "No bearer credential was sent.",
    Forbidden = "forbidden": "The credentials may not use this route.",
    NotFound = "not_found": "No such route, or no such resource in the caller's organization.",
    MethodNotAllowed = "method_not_allowed": "The route exists but not with this method.",
    NotAcceptable = "not_acceptable": "The `Accept` header excludes JSON.",
    LengthRequired = "length_required": "The body needs a length.",
    PayloadTooLarge = "payload_too_large": "The request body is over the documented limit.",
    UriTooLong = "uri_too_long": "The request URI is over the limit.",
    UnsupportedMediaType = "unsupported_media_type": "The body is not `application/json`.",
    HeadersTooLarge = "headers_too_large": "Too many request headers, or too large.",
    Unprocessable = "unprocessable": "A value breaks a rule of the operation's schema (a length, a range, a pattern) that has no code of its own.",
    RateLimited = "rate_limited": "Too many requests from this caller; retry after `Retry-After` seconds.",
    OrganizationRateLimited = "organization_rate_limited": "The organization's requests per minute (its plan's limit, counted by all its credentials) are used up; `quota` names the limit; retry after `Retry-After` seconds.",
    AuthRateLimited = "auth_rate_limited": "Too many `/v1/auth/*` requests from this client address; retry after `Retry-After` seconds.",
    DatabaseBusy = "database_busy": "Every database connection of the node stayed busy (an overload); retry after `Retry-After` seconds.",
    AuthBusy = "auth_busy": "The service is busy checking passwords; retry after `Retry-After` seconds.",
    TooManyAttempts = "too_many_attempts": "Too many failed logins for this account from this address; refused, even with the right password, for `Retry-After` seconds.",
    Internal = "internal": "A failure on our side; the logs have it under this request's id.",
    OutcomeUnknown = "outcome_unknown": "The database connection was lost during the request, after what it records may have been sent: it may or may not be recorded. Repeat it with the same `Idempotency-Key` where the operation takes one; otherwise read the resource before repeating it, or it may be done twice.",
    NotReady = "not_ready": "A part the service depends on is failing (readiness).",
    OriginNotAllowed = "origin_not_allowed": "A WebSocket connection from a web page whose origin is not allowed to call the API (`AGENTRY_CORS_ORIGINS`).",
    // The event store.
    EventTooLarge = "event_too_large": "What the request would record is over the event size limit.",
    UnstorableText = "unstorable_text": "What the request would record holds text the store refuses (U+0000).",
    ConcurrentModification = "concurrent_modification": "The resource changed concurrently too often; retrying the request may succeed.",
    CatchingUp = "catching_up": "The service is catching up with changes of a moment ago and cannot answer this yet; retry after `Retry-After` seconds.",
    NotYetEffective = "not_yet_effective": "The change is recorded but not in effect yet because the service is behind; do not repeat it, retry what depends on it after `Retry-After`.",
    InvalidIdempotencyKey = "invalid_idempotency_key": "The `Idempotency-Key` header is not 1 to 255 visible ASCII characters (`!` to `~`).",
    IdempotencyKeyReused = "idempotency_key_reused": "The `Idempotency-Key` was first sent with a different request (the detail says what differs); nothing was done. A new request needs a new key.",
    // Accounts and credentials.
    InvalidEmail = "invalid_email": "The email address is not usable (the detail says why).",
    EmailInvisibleCharacter = "email_invisible_character": "The email address holds an invisible or control character (zero-width, bidirectional control…).",
    EmailDisallowedCharacter = "email_disallowed_character": "The email address holds a character an address does not need (a display name, quotes, angle brackets…).",
    EmailMisplacedDot = "email_misplaced_dot": "The email address has a dot at the start or end of its name, or two in a row.",
    WeakPassword = "weak_password": "The new password breaks the password rule (the detail states it).",
    EmailTaken = "email_taken": "Another account already uses this email address.",
    InvalidCredentials = "invalid_credentials": "Wrong email or password.",
    NotAMemberOfOrganization = "not_a_member_of_organization": "The login named an organization the user is not a member of.",
    NoOrganization = "no_organization": "The user belongs to no organization to log in to.",
    InvalidAccessToken = "invalid_access_token": "The access token is malformed, not signed by this service, or names no organization or user.",
    AccessTokenExpired = "access_token_expired": "The access token has expired; refresh it.",
    UnknownOrganization = "unknown_organization": "The organization of these credentials does not exist.",
    SessionEnded = "session_ended": "The session of this token has ended; log in again.",
    MembershipEnded = "membership_ended": "The user is no longer a member of the token's organization.",
    InvalidApiKey = "invalid_api_key": "Not an API key this service issued.",
    ApiKeyRevoked = "api_key_revoked": "The API key has been revoked.",
    InvalidRefreshToken = "invalid_refresh_token": "Not a refresh token this service issued.",
    RefreshTokenExpired = "refresh_token_expired": "The refresh token has expired; log in again.",
    RefreshTokenReused = "refresh_token_reused": "A spent refresh token was presented again; every token of its session is revoked.",
    PasswordChanged = "password_changed": "The password changed since this session began; log in again.",
    InvalidResetToken = "invalid_reset_token": "The password reset link is unknown, used or superseded.",
    ResetTokenExpired = "reset_token_expired": "The password reset link has expired; ask for a new one.",
    ResetMailLimit = "reset_mail_limit": "As many password reset links as allowed are outstanding already; use one of them.",
    OrganizationSuspended = "organization_suspended": "The organization is suspended by the platform.",
    // Authorization.
    NoOrganizationInCredentials = "no_organization_in_credentials": "These credentials act for no organization (a platform administrator's own token).",
    RoleNotAllowed = "role_not_allowed": "The caller's role does not allow this.",
    UserRequired = "user_required": "Only a logged-in user may do this, not an API key.",
    PlatformAdminRequired = "platform_admin_required": "Only platform administrators may do this.",
    NotWhileImpersonating = "not_while_impersonating": "An impersonation token may not do this; only the user themself.",
    EmailNotVerified = "email_not_verified": "The caller's email address is not verified yet, which this requires (see the link mailed at registration).",
    // Organizations and members.
    InvalidRole = "invalid_role": "The role is none of `owner`, `admin`, `member` and `auditor`.",
    OrganizationExists = "organization_exists": "The organization already exists.",
    OrganizationNotFound = "organization_not_found": "No such organization.",
    OrganizationNameRequired = "organization_name_required": "The organization name is empty.",
    OrganizationNameTooLong = "organization_name_too_long": "The organization name is over its length limit.",
    SuspensionReasonTooLong = "suspension_reason_too_long": "The suspension reason is over its length limit.",
    ActorNotAMember = "actor_not_a_member": "The acting user is no longer a member of this organization.",
    OwnerRoleRequired = "owner_role_required": "Only an owner may grant, change or remove the owner role.",
    AlreadyMember = "already_member": "The user is already a member of this organization.",
    MemberNotFound = "member_not_found": "No such member in this organization.",
    LastOwner = "last_owner": "The change would leave the organization without an owner.",
    AlreadySuspended = "already_suspended": "The organization is already suspended.",
    NotSuspended = "not_suspended": "The organization is not suspended.",
    // Plan limits (quotas).
    TokensPerMonthOutOfRange = "tokens_per_month_out_of_range": "`tokens_per_month` is not between 1 and 10^12 (leave it out for unlimited).",
    ConcurrentRunsOutOfRange = "concurrent_runs_out_of_range": "`concurrent_runs` is not between 1 and 10000 (leave it out for unlimited).",
    RequestsPerMinuteOutOfRange = "requests_per_minute_out_of_range": "`requests_per_minute` is not between 1 and 1000000 (leave it out for unlimited).",
    TokenQuotaExceeded = "token_quota_exceeded": "The organization has used its plan's tokens for this month; `quota` names the limit, the use and when it resets (the start of next month, UTC).",
    ConcurrentRunLimit = "concurrent_run_limit": "As many of the organization's runs as its plan allows have not ended; `quota` names the limit; retry after `Retry-After` seconds or once a run ends.",
    // API keys.
    ApiKeyExists = "api_key_exists": "The API key already exists.",
    ApiKeyNotFound = "api_key_not_found": "No such API key in this organization.",
    ApiKeyNameRequired = "api_key_name_required": "The API key name is empty.",
    ApiKeyNameTooLong = "api_key_name_too_long": "The API key name is over its length limit.",
    ApiKeyAlreadyRevoked = "api_key_already_revoked": "The API key is already revoked.",
    // Users.
    UserExists = "user_exists": "The user is already registered.",
    UserNotFound = "user_not_found": "No such user.",
    AlreadyPlatformAdmin = "already_platform_admin": "The user is already a platform administrator.",
    // Impersonation.
    ImpersonationExists = "impersonation_exists": "The impersonation already started.",
    ImpersonationNotFound = "impersonation_not_found": "No such impersonation.",
    ImpersonationEnded = "impersonation_ended": "The impersonation has ended (early, by an administrator or a password reset); its token no longer works.",
    ImpersonationReasonRequired = "impersonation_reason_required": "An impersonation needs a reason.",
    ImpersonationReasonTooLong = "impersonation_reason_too_long": "The impersonation reason is over its length limit.",
    ImpersonationTtlOutOfRange = "impersonation_ttl_out_of_range": "The impersonation's lifetime must be positive and at most the documented maximum.",
    CannotImpersonateSelf = "cannot_impersonate_self": "An administrator cannot impersonate themself.",
    // Invitations and email verification.
    InvitationExists = "invitation_exists": "The invitation already exists.",
    InvitationInvalid = "invitation_invalid": "No invitation has this token.",
    InvitationAlreadyAccepted = "invitation_already_accepted": "The invitation was already accepted; a link works once.",
    InvitationExpired = "invitation_expired": "The invitation has expired; ask for a new one.",
    InvitationForAnotherAddress = "invitation_for_another_address": "The invitation was mailed to another address than the caller's.",
    InviterNoLongerAuthorized = "inviter_no_longer_authorized": "Whoever sent the invitation may no longer grant its role in the organization.",
    InvalidVerificationToken = "invalid_verification_token": "The email verification link is unknown or already used.",
    VerificationTokenExpired = "verification_token_expired": "The email verification link has expired; ask for a new one.",
    EmailAlreadyVerified = "email_already_verified": "The email address is already verified.",
    VerificationMailLimit = "verification_mail_limit": "Too many verification mails for this account in the last hour; retry after `Retry-After` seconds.",
    MailUnavailable = "mail_unavailable": "Mail cannot be sent now (not configured, or the mail server refused); retry later.",
    UndeliverableEmail = "undeliverable_email": "Mail cannot be addressed to this email address.",
    // Agents.
    AgentExists = "agent_exists": "The agent already exists.",
    AgentNotFound = "agent_not_found": "No such agent in this organization.",
    AgentVersionNotFound = "agent_version_not_found": "The agent has no such version.",
    AgentNameRequired = "agent_name_required": "The agent name is empty.",
    AgentNameTooLong = "agent_name_too_long": "The agent name is over its length limit (100 characters).",
    AgentModelRequired = "agent_model_required": "The agent model is empty.",
    AgentModelTooLong = "agent_model_too_long": "The agent model name is over its length limit (100 characters).",
    SystemPromptTooLong = "system_prompt_too_long": "The system prompt is over its size limit (32 KiB).",
    SystemPromptControlCharacter = "system_prompt_control_character": "The system prompt holds a control character other than newline, carriage return and tab.",
    TooManyTools = "too_many_tools": "The agent lists more tools than allowed (32).",
    InvalidToolName = "invalid_tool_name": "A tool name is not 1 to 64 characters of a-z, A-Z, 0-9, `_` and `-`.",
    DuplicateTool = "duplicate_tool": "The agent lists the same tool twice.",
    InvalidApproval = "invalid_approval": "The approval policy is neither `never`, `always`, nor a map from tool name to one of them.",
    ApprovalForUnknownTool = "approval_for_unknown_tool": "The approval map names a tool that is not in the agent's tools.",
    MaxStepsOutOfRange = "max_steps_out_of_range": "`max_steps` is not between 1 and 100.",
    TemperatureOutOfRange = "temperature_out_of_range": "`temperature` is not between 0 and 2.",
    MaxOutputTokensOutOfRange = "max_output_tokens_out_of_range": "`max_output_tokens` is not between 1 and 32768.",
    AgentUpdateEmpty = "agent_update_empty": "The update names no field to change.",
    ApprovalTimeoutOutOfRange = "approval_timeout_out_of_range": "`approval_timeout_seconds` is not between 1 and 604800 (7 days).",
    UnknownModel = "unknown_model": "The model is not one this deployment offers; the detail lists those offered.",
    ConversationNotFound = "conversation_not_found": "No conversation with this id in the caller's organization.",
    ConversationExists = "conversation_exists": "The conversation already exists.",
    ConversationTitleTooLong = "conversation_title_too_long": "The title is longer than 200 characters.",
    ConversationArchived = "conversation_archived": "The conversation is archived and takes no new runs.",
    RunActive = "run_active": "Another run of the conversation has not ended; `run_id` names it. Wait for it or cancel it.",
    InputRequired = "input_required": "The run's input is empty.",
    InputTooLong = "input_too_long": "The run's input is larger than 32 KiB.",
    InputControlCharacter = "input_control_character": "The run's input holds a control character other than newline, carriage return or tab.",
    RunNotFound = "run_not_found": "No run with this id in the caller's organization.",
    RunExists = "run_exists": "The run already exists.",
    RunFinished = "run_finished": "The run has already ended (completed, failed or cancelled); nothing more can happen to it.",
    RunBusy = "run_busy": "The run is not at a point where this can happen now; read it and try again.",
    ToolCallNotFound = "tool_call_not_found": "The run has no tool call with this id in its current step.",
    ToolCallNotPending = "tool_call_not_pending": "The tool call is not awaiting approval (already decided, or it never needed one).",
    ReasonTooLong = "reason_too_long": "The reason is longer than 500 characters.",
    PageLimitOutOfRange = "page_limit_out_of_range": "The page `limit` is not between 1 and 100.",
    InvalidCursor = "invalid_cursor": "The `cursor` is not one a previous page gave.",
    // Run streams.
    UnknownEventId = "unknown_event_id": "The stream is resumed after an event id the run never had (`Last-Event-ID` or `after`); the detail names the run's last id.",
    WebsocketUpgradeRequired = "websocket_upgrade_required": "The route speaks WebSocket only: the request is not a WebSocket upgrade (`Upgrade: websocket`, `Sec-WebSocket-Version: 13`, `Sec-WebSocket-Key`).",
    InvalidMessage = "invalid_message": "A WebSocket message from the client is not JSON, or not one of the documented client messages; the socket stays open.",
    InvalidStreamTicket = "invalid_stream_ticket": "The `ticket` is not a stream ticket this service issued.",
    StreamTicketUsed = "stream_ticket_used": "The stream ticket was already used; each works once, so ask for a new one.",
    StreamTicketExpired = "stream_ticket_expired": "The stream ticket has expired (60 s after it was issued); ask for a new one.",
    StreamTicketForAnotherRun = "stream_ticket_for_another_run": "The stream ticket was issued for another run than this one (it is used up all the same).",
    // Tools.
    ToolExists = "tool_exists": "The organization already has a tool with this name (names are unique per organization).",
    ToolNotFound = "tool_not_found": "No such tool in this organization, or it was deleted.",
    ToolNameImmutable = "tool_name_immutable": "An update names another name; a tool's name never changes (create a new tool and delete this one).",
    ToolDescriptionRequired = "tool_description_required": "The tool description is empty.",
    ToolDescriptionTooLong = "tool_description_too_long": "The tool description is over its length limit (1024 characters).",
    ToolDescriptionControlCharacter = "tool_description_control_character": "The tool description holds a control character other than newline, carriage return and tab.",
    ToolParametersNotObject = "tool_parameters_not_object": "`parameters` is not a JSON Schema object with `\"type\": \"object\"`.",
    ToolParametersTooLarge = "tool_parameters_too_large": "`parameters` is over its size limit (16 KiB of JSON).",
    InvalidToolSchema = "invalid_tool_schema": "`parameters` is not a valid JSON Schema; the detail has the validator's message.",
    InvalidToolUrl = "invalid_tool_url": "The tool URL is not an absolute URL with a host (or holds spaces).",
    ToolUrlNotHttp = "tool_url_not_http": "The tool URL's scheme is neither `http` nor `https`.",
    ToolUrlHasCredentials = "tool_url_has_credentials": "The tool URL holds a user name or password; the tool's signing secret authenticates calls instead.",
    ToolUrlTooLong = "tool_url_too_long": "The tool URL is over its length limit (2048 bytes).",
    ToolTimeoutOutOfRange = "tool_timeout_out_of_range": "`timeout_ms` is not between 1000 and 60000.",
    InvalidToolSecret = "invalid_tool_secret": "The tool secret is not 16 to 256 characters of visible ASCII (no spaces).",
    ToolUpdateEmpty = "tool_update_empty": "The update names no field to change.",
    // The audit log.
    InvalidActor = "invalid_actor": "The `actor` filter is none of `user:<uuid>`, `api_key:<uuid>` and `system`.",
    UnknownAction = "unknown_action": "The `action` filter is not an event type this service records (docs/events.md).",
    InvalidTarget = "invalid_target": "The `target` filter is not `<type>` or `<type>:<id>` with an aggregate type this service records.",
    InvalidTime = "invalid_time": "A time parameter is not an RFC 3339 date-time (`2026-12-06T10:15:30Z`), or the range ends before it starts.",
    CursorMismatch = "cursor_mismatch": "The `cursor` was not given by a previous page of this very query (same filters, same organization).",
    // Usage.
    InvalidUsageRange = "invalid_usage_range": "`from` is after `to`, or the range is longer than 366 days (`period=day`) or 120 months (`period=month`).",
    // The history of an aggregate.
    UnknownAggregateType = "unknown_aggregate_type": "The aggregate type in the path is not one this service records (the document lists them).",
    // Billing.
    NoCreditAccount = "no_credit_account": "The organization had no credit account at that time (`as_of` before it was opened).",
    CreditAccountExists = "credit_account_exists": "The organization's credit account is already open.",
    InsufficientCredits = "insufficient_credits": "The organization's available credits (balance minus reservations) do not cover this.",
    InvalidCreditAmount = "invalid_credit_amount": "The amount of credits is zero where it may not be, or above the documented maximum.",
    InvalidLlmCallKey = "invalid_llm_call_key": "The LLM call key is empty, over 200 characters, or holds a control character.",
    UnknownReservation = "unknown_reservation": "No reservation was made for this LLM call.",
    RefundReasonInvalid = "refund_reason_invalid": "A refund needs a reason of 1 to 500 characters.",
    InvalidCheckoutSessionId = "invalid_checkout_session_id": "The Checkout Session id is not `cs_` followed by letters, digits and underscores (at most 255 characters).",
    UnknownPurchase = "unknown_purchase": "The organization made no purchase with this Checkout Session.",
    RefundExceedsPurchase = "refund_exceeds_purchase": "More credits than remain of the purchase named; the detail says how many remain.",
    PurchaseTooSmall = "purchase_too_small": "The purchase is below Stripe's smallest charge; the detail names the fewest credits that may be bought.",
    StripeNotConfigured = "stripe_not_configured": "Stripe is not configured on this deployment (`STRIPE_SECRET_KEY`, or `STRIPE_WEBHOOK_SECRET` for the webhook).",
    StripeUnavailable = "stripe_unavailable": "Stripe could not be reached or answered an error; retry later.",
    StripeSignatureMissing = "stripe_signature_missing": "The webhook request has no `Stripe-Signature` header.",
    StripeSignatureMalformed = "stripe_signature_malformed": "The `Stripe-Signature` header has no `t=` timestamp or no `v1=` signature.",
    StripeSignatureInvalid = "stripe_signature_invalid": "No `v1` signature of the `Stripe-Signature` header matches the body with the configured webhook secret.",
    StripeSignatureStale = "stripe_signature_stale": "The webhook's signature matches but its timestamp is older than the 300 s tolerance (a replay, or a clock far off).",
    StripeEventInvalid = "stripe_event_invalid": "The signed webhook body is not a Stripe event of the shape its type has.",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The schema's name in the OpenAPI document.
const SCHEMA: &str = "ErrorCode";

/// The schema's description: every code with its meaning, since OpenAPI 3.0 has no place for
/// one description per enum value.
fn description() -> &'static str {
    static DESCRIPTION: OnceLock<String> = OnceLock::new();
    DESCRIPTION.get_or_init(|| {
        let mut text = String::from("A stable code for programs; one per kind of problem:\n");
        for code in ErrorCode::ALL {
            text.push_str(&format!("\n- `{}`: {}", code.as_str(), code.meaning()));
        }
        text
    })
}

impl Type for ErrorCode {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        SCHEMA.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(SCHEMA.to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(SCHEMA.to_owned(), |_| {
            let mut schema = MetaSchema::new("string");
            schema.description = Some(description());
            schema.enum_items = Self::ALL
                .iter()
                .map(|code| Value::String(code.as_str().to_owned()))
                .collect();
            schema
        });
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for ErrorCode {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let value = value.unwrap_or_default();
        let code = value
            .as_str()
            .and_then(|text| Self::ALL.iter().copied().find(|code| code.as_str() == text));
        code.ok_or_else(|| ParseError::expected_type(value))
    }
}

impl ToJSON for ErrorCode {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.as_str().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ErrorCode;

    #[test]
    fn codes_are_unique_snake_case_and_described() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} appears twice");
            assert!(
                !text.is_empty() && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{text} is not snake_case"
            );
            assert!(code.meaning().ends_with('.'), "{text}: {}", code.meaning());
        }
    }
}
