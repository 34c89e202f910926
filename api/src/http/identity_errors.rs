//! Identity outcomes as problems: one exhaustive `match` per error enum, no catch-all arm, so a
//! refusal added to the domain does not compile until it has its own status and code.

use commands::identity::{CredentialError, Denial, IdentityError};
use domain::EmailError;
use domain::api_key::ApiKeyError;
use domain::impersonation::ImpersonationError;
use domain::invitation::InvitationError;
use domain::organization::{OrganizationError, QuotaName};
use domain::user::UserError;
use poem::http::StatusCode;

use super::{ApiError, DATABASE_BUSY_RETRY_AFTER, ErrorCode};

/// Seconds a client should give a lagging read model before retrying what depends on a write.
const NOT_YET_EFFECTIVE_RETRY_AFTER: u64 = 2;
/// Seconds before trying again to send mail that could not be sent.
const MAIL_RETRY_AFTER: u64 = 60;

/// One problem per identity outcome. Internal details are logged, never shown.
impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        let detail = error.to_string();
        let (status, code) = match error {
            IdentityError::InvalidEmail(email) => (StatusCode::UNPROCESSABLE_ENTITY, email_code(&email)),
            IdentityError::WeakPassword(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WeakPassword),
            IdentityError::EmailTaken => (StatusCode::CONFLICT, ErrorCode::EmailTaken),
            IdentityError::InvalidCredentials => (StatusCode::UNAUTHORIZED, ErrorCode::InvalidCredentials),
            IdentityError::NotAMemberOfOrganization => {
                (StatusCode::FORBIDDEN, ErrorCode::NotAMemberOfOrganization)
            }
            IdentityError::NoOrganization => (StatusCode::FORBIDDEN, ErrorCode::NoOrganization),
            IdentityError::Credential(credential) => (StatusCode::UNAUTHORIZED, credential_code(credential)),
            IdentityError::OrganizationSuspended => (StatusCode::FORBIDDEN, ErrorCode::OrganizationSuspended),
            IdentityError::Denied(denial) => (StatusCode::FORBIDDEN, denial_code(denial)),
            IdentityError::Organization(refusal) => organization_problem(refusal),
            IdentityError::ApiKey(refusal) => api_key_problem(refusal),
            IdentityError::User(UserError::VerificationMailLimit { retry_after_seconds }) => {
                let retry_after = retry_after_seconds.unsigned_abs().max(1);
                return Self::too_many(ErrorCode::VerificationMailLimit, detail, retry_after);
            }
            IdentityError::User(refusal) => user_problem(refusal),
            IdentityError::Impersonation(refusal) => impersonation_problem(refusal),
            IdentityError::Invitation(refusal) => invitation_problem(refusal),
            IdentityError::EmailNotVerified => (StatusCode::FORBIDDEN, ErrorCode::EmailNotVerified),
            IdentityError::MailUnavailable(_) => {
                return Self::unavailable(ErrorCode::MailUnavailable, detail, MAIL_RETRY_AFTER);
            }
            IdentityError::UndeliverableEmail => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::UndeliverableEmail)
            }
            IdentityError::Busy => (StatusCode::CONFLICT, ErrorCode::ConcurrentModification),
            IdentityError::IdempotencyKeyReused(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::IdempotencyKeyReused)
            }
            IdentityError::DatabaseBusy => {
                return Self::unavailable(ErrorCode::DatabaseBusy, detail, DATABASE_BUSY_RETRY_AFTER);
            }
            IdentityError::Unstorable(store) => return store.into(),
            IdentityError::NotYetEffective(_) => {
                return Self::unavailable(ErrorCode::NotYetEffective, detail, NOT_YET_EFFECTIVE_RETRY_AFTER);
            }
            IdentityError::CatchingUp => {
                return Self::unavailable(ErrorCode::CatchingUp, detail, NOT_YET_EFFECTIVE_RETRY_AFTER);
            }
            IdentityError::HashingBusy { retry_after_seconds } => {
                return Self::unavailable(ErrorCode::AuthBusy, detail, retry_after_seconds);
            }
            IdentityError::TooManyAttempts { retry_after_seconds } => {
                return Self::too_many(ErrorCode::TooManyAttempts, detail, retry_after_seconds);
            }
            IdentityError::OutcomeUnknown(_) => return Self::outcome_unknown(&detail),
            IdentityError::Internal(_) => return Self::internal(&detail),
        };
        Self::with_status(status, code, detail)
    }
}

/// What is wrong with an email address: the lookalike refusals have codes of their own, so a
/// client can tell "this cannot be an address" from "this address hides characters".
fn email_code(error: &EmailError) -> ErrorCode {
    match error {
        EmailError::InvisibleCharacter { .. } => ErrorCode::EmailInvisibleCharacter,
        EmailError::DisallowedCharacter { .. } => ErrorCode::EmailDisallowedCharacter,
        EmailError::MisplacedDot => ErrorCode::EmailMisplacedDot,
        EmailError::Empty
        | EmailError::TooLong { .. }
        | EmailError::Whitespace
        | EmailError::NotOneAt
        | EmailError::EmptyLocalPart
        | EmailError::InvalidDomain => ErrorCode::InvalidEmail,
    }
}

/// Every credential refusal is a 401; the code tells the client what to do next.
fn credential_code(error: CredentialError) -> ErrorCode {
    match error {
        CredentialError::MalformedAccessToken
        | CredentialError::UnknownUser
        | CredentialError::NoOrganizationInToken => ErrorCode::InvalidAccessToken,
        CredentialError::AccessTokenExpired => ErrorCode::AccessTokenExpired,
        CredentialError::UnknownOrganization => ErrorCode::UnknownOrganization,
        CredentialError::SessionEnded => ErrorCode::SessionEnded,
        CredentialError::MembershipEnded => ErrorCode::MembershipEnded,
        CredentialError::UnknownApiKey => ErrorCode::InvalidApiKey,
        CredentialError::ApiKeyRevoked => ErrorCode::ApiKeyRevoked,
        CredentialError::InvalidRefreshToken => ErrorCode::InvalidRefreshToken,
        CredentialError::RefreshTokenExpired => ErrorCode::RefreshTokenExpired,
        CredentialError::RefreshTokenReused => ErrorCode::RefreshTokenReused,
        CredentialError::ImpersonationEnded => ErrorCode::ImpersonationEnded,
        CredentialError::PasswordChanged => ErrorCode::PasswordChanged,
        CredentialError::InvalidResetToken => ErrorCode::InvalidResetToken,
        CredentialError::ResetTokenExpired => ErrorCode::ResetTokenExpired,
        CredentialError::InvalidStreamTicket => ErrorCode::InvalidStreamTicket,
        CredentialError::StreamTicketUsed => ErrorCode::StreamTicketUsed,
        CredentialError::StreamTicketExpired => ErrorCode::StreamTicketExpired,
    }
}

fn denial_code(denial: Denial) -> ErrorCode {
    match denial {
        Denial::NoOrganization => ErrorCode::NoOrganizationInCredentials,
        Denial::RoleNotAllowed { .. } => ErrorCode::RoleNotAllowed,
        Denial::UserRequired { .. } => ErrorCode::UserRequired,
        Denial::PlatformAdminRequired => ErrorCode::PlatformAdminRequired,
        Denial::NotWhileImpersonating { .. } => ErrorCode::NotWhileImpersonating,
        Denial::StreamTicketForAnotherRun => ErrorCode::StreamTicketForAnotherRun,
    }
}

fn organization_problem(error: OrganizationError) -> (StatusCode, ErrorCode) {
    use OrganizationError as E;
    match error {
        E::AlreadyExists => (StatusCode::CONFLICT, ErrorCode::OrganizationExists),
        E::NotFound => (StatusCode::NOT_FOUND, ErrorCode::OrganizationNotFound),
        E::EmptyName => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::OrganizationNameRequired,
        ),
        E::NameTooLong { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::OrganizationNameTooLong,
        ),
        E::ReasonTooLong { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::SuspensionReasonTooLong,
        ),
        E::NotPermitted { .. } => (StatusCode::FORBIDDEN, ErrorCode::RoleNotAllowed),
        E::ActorNotAMember => (StatusCode::FORBIDDEN, ErrorCode::ActorNotAMember),
        E::OwnerRoleRequired => (StatusCode::FORBIDDEN, ErrorCode::OwnerRoleRequired),
        E::AlreadyMember => (StatusCode::CONFLICT, ErrorCode::AlreadyMember),
        E::NotAMember => (StatusCode::NOT_FOUND, ErrorCode::MemberNotFound),
        E::LastOwner => (StatusCode::CONFLICT, ErrorCode::LastOwner),
        E::AlreadySuspended => (StatusCode::CONFLICT, ErrorCode::AlreadySuspended),
        E::NotSuspended => (StatusCode::CONFLICT, ErrorCode::NotSuspended),
        E::Suspended => (StatusCode::FORBIDDEN, ErrorCode::OrganizationSuspended),
        E::InviterNoLongerAuthorized => (StatusCode::FORBIDDEN, ErrorCode::InviterNoLongerAuthorized),
        E::QuotaOutOfRange { quota, .. } => (StatusCode::UNPROCESSABLE_ENTITY, quota_range_code(quota)),
    }
}

fn quota_range_code(quota: QuotaName) -> ErrorCode {
    match quota {
        QuotaName::TokensPerMonth => ErrorCode::TokensPerMonthOutOfRange,
        QuotaName::ConcurrentRuns => ErrorCode::ConcurrentRunsOutOfRange,
        QuotaName::RequestsPerMinute => ErrorCode::RequestsPerMinuteOutOfRange,
    }
}

fn api_key_problem(error: ApiKeyError) -> (StatusCode, ErrorCode) {
    match error {
        ApiKeyError::AlreadyExists => (StatusCode::CONFLICT, ErrorCode::ApiKeyExists),
        ApiKeyError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::ApiKeyNotFound),
        ApiKeyError::EmptyName => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::ApiKeyNameRequired),
        ApiKeyError::NameTooLong { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::ApiKeyNameTooLong),
        ApiKeyError::AlreadyRevoked => (StatusCode::CONFLICT, ErrorCode::ApiKeyAlreadyRevoked),
    }
}

fn user_problem(error: UserError) -> (StatusCode, ErrorCode) {
    match error {
        UserError::AlreadyRegistered => (StatusCode::CONFLICT, ErrorCode::UserExists),
        UserError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::UserNotFound),
        UserError::ResetTokenInvalid => (StatusCode::UNAUTHORIZED, ErrorCode::InvalidResetToken),
        UserError::ResetTokenExpired => (StatusCode::UNAUTHORIZED, ErrorCode::ResetTokenExpired),
        UserError::AlreadyPlatformAdmin => (StatusCode::CONFLICT, ErrorCode::AlreadyPlatformAdmin),
        UserError::VerificationTokenInvalid => {
            (StatusCode::UNAUTHORIZED, ErrorCode::InvalidVerificationToken)
        }
        UserError::VerificationTokenExpired => {
            (StatusCode::UNAUTHORIZED, ErrorCode::VerificationTokenExpired)
        }
        UserError::EmailAlreadyVerified => (StatusCode::CONFLICT, ErrorCode::EmailAlreadyVerified),
        // The reset route answers it like any other request (nothing is mailed), so that the
        // answer tells nothing; other callers get it as a limit.
        UserError::TooManyResetRequests => (StatusCode::CONFLICT, ErrorCode::ResetMailLimit),
        // Answered with its `Retry-After` before this match; kept here so the match stays total.
        UserError::VerificationMailLimit { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::VerificationMailLimit)
        }
    }
}

fn impersonation_problem(error: ImpersonationError) -> (StatusCode, ErrorCode) {
    use ImpersonationError as E;
    match error {
        E::AlreadyStarted => (StatusCode::CONFLICT, ErrorCode::ImpersonationExists),
        E::NotFound => (StatusCode::NOT_FOUND, ErrorCode::ImpersonationNotFound),
        E::AlreadyEnded => (StatusCode::CONFLICT, ErrorCode::ImpersonationEnded),
        E::EmptyReason => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ImpersonationReasonRequired,
        ),
        E::ReasonTooLong { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ImpersonationReasonTooLong,
        ),
        E::ExpiryNotInFuture | E::ExpiryTooFar { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ImpersonationTtlOutOfRange,
        ),
        E::CannotImpersonateSelf => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::CannotImpersonateSelf),
    }
}

fn invitation_problem(error: InvitationError) -> (StatusCode, ErrorCode) {
    match error {
        InvitationError::AlreadySent => (StatusCode::CONFLICT, ErrorCode::InvitationExists),
        InvitationError::TokenInvalid => (StatusCode::NOT_FOUND, ErrorCode::InvitationInvalid),
        InvitationError::AlreadyAccepted => (StatusCode::CONFLICT, ErrorCode::InvitationAlreadyAccepted),
        InvitationError::Expired => (StatusCode::CONFLICT, ErrorCode::InvitationExpired),
        InvitationError::ForAnotherAddress => (StatusCode::FORBIDDEN, ErrorCode::InvitationForAnotherAddress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(error: IdentityError) -> (u16, &'static str) {
        let problem = ApiError::from(error).into_problem();
        (problem.status, problem.code.as_str())
    }

    #[test]
    fn domain_refusals_each_have_their_own_code() {
        let cases: [(IdentityError, (u16, &str)); 8] = [
            (OrganizationError::LastOwner.into(), (409, "last_owner")),
            (OrganizationError::AlreadyMember.into(), (409, "already_member")),
            (OrganizationError::NotAMember.into(), (404, "member_not_found")),
            (
                ImpersonationError::EmptyReason.into(),
                (422, "impersonation_reason_required"),
            ),
            (
                ApiKeyError::AlreadyRevoked.into(),
                (409, "api_key_already_revoked"),
            ),
            (UserError::ResetTokenExpired.into(), (401, "reset_token_expired")),
            (
                CredentialError::RefreshTokenReused.into(),
                (401, "refresh_token_reused"),
            ),
            (
                Denial::RoleNotAllowed {
                    role: domain::Role::Member,
                    action: "manage members",
                }
                .into(),
                (403, "role_not_allowed"),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(code_of(error), expected);
        }
    }

    #[test]
    fn a_lost_race_is_a_409_and_an_internal_error_shows_nothing_of_itself() {
        assert_eq!(code_of(IdentityError::Busy), (409, "concurrent_modification"));
        let ApiError::Internal(problem) = ApiError::from(IdentityError::Internal("password=hunter2".into()))
        else {
            panic!("internal errors are 500");
        };
        assert!(!problem.0.detail.contains("hunter2"));
    }
}
