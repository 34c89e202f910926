use commands::identity::IdentityError;

use super::ApiError;

/// Seconds a client should give a lagging read model before retrying what depends on a write.
const NOT_YET_EFFECTIVE_RETRY_AFTER: u64 = 2;
/// Seconds before trying again to send mail that could not be sent.
const MAIL_RETRY_AFTER: u64 = 60;

/// One problem per identity outcome, each with a stable code. Internal details are logged,
/// never shown.
impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        let detail = error.to_string();
        match error {
            IdentityError::InvalidEmail(_) => Self::unprocessable("invalid_email", detail),
            IdentityError::WeakPassword(_) => Self::unprocessable("weak_password", detail),
            IdentityError::EmailTaken => Self::conflict("email_taken", detail),
            IdentityError::InvalidCredentials => Self::unauthorized("invalid_credentials", detail),
            IdentityError::NoOrganization(_) => Self::forbidden("no_organization", detail),
            IdentityError::InvalidToken(_) => Self::unauthorized("invalid_token", detail),
            IdentityError::TokenExpired => Self::unauthorized("token_expired", detail),
            IdentityError::RefreshTokenReused => Self::unauthorized("refresh_token_reused", detail),
            IdentityError::OrganizationSuspended => Self::forbidden("organization_suspended", detail),
            IdentityError::Forbidden(_) => Self::forbidden("forbidden", detail),
            IdentityError::NotFound(_) => Self::not_found("not_found", detail),
            IdentityError::Rejected(_) => Self::unprocessable("rejected", detail),
            IdentityError::Busy => Self::conflict("concurrent_modification", detail),
            IdentityError::Unstorable(store) => store.into(),
            IdentityError::NotYetEffective(_) => {
                Self::unavailable("not_yet_effective", detail, NOT_YET_EFFECTIVE_RETRY_AFTER)
            }
            IdentityError::EmailNotVerified => Self::forbidden("email_not_verified", detail),
            IdentityError::AlreadyMember => Self::conflict("already_member", detail),
            IdentityError::InvitationInvalid => Self::not_found("invitation_invalid", detail),
            IdentityError::InvitationAlreadyAccepted => Self::conflict("invitation_already_accepted", detail),
            IdentityError::InvitationExpired => Self::conflict("invitation_expired", detail),
            IdentityError::InvitationForAnotherAddress => {
                Self::forbidden("invitation_for_another_address", detail)
            }
            IdentityError::InviterNoLongerAuthorized => {
                Self::forbidden("inviter_no_longer_authorized", detail)
            }
            IdentityError::VerificationTokenInvalid => {
                Self::unauthorized("invalid_verification_token", detail)
            }
            IdentityError::VerificationTokenExpired => {
                Self::unauthorized("verification_token_expired", detail)
            }
            IdentityError::EmailAlreadyVerified => Self::conflict("email_already_verified", detail),
            IdentityError::VerificationMailLimit(retry_after) => {
                Self::too_many("verification_mail_limit", detail, retry_after)
            }
            IdentityError::MailUnavailable(_) => {
                Self::unavailable("mail_unavailable", detail, MAIL_RETRY_AFTER)
            }
            IdentityError::UndeliverableEmail => Self::unprocessable("undeliverable_email", detail),
            IdentityError::Internal(_) => Self::internal(&detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_race_is_a_409_and_an_internal_error_shows_nothing_of_itself() {
        assert!(matches!(
            ApiError::from(IdentityError::Busy),
            ApiError::Conflict(_)
        ));
        let ApiError::Internal(problem) = ApiError::from(IdentityError::Internal("password=hunter2".into()))
        else {
            panic!("internal errors are 500");
        };
        assert!(!problem.0.detail.contains("hunter2"));
    }
}
