use commands::identity::IdentityError;
use domain::EmailError;

use super::ApiError;

/// Seconds a client should give a lagging read model before retrying what depends on a write.
const NOT_YET_EFFECTIVE_RETRY_AFTER: u64 = 2;

/// One problem per identity outcome, each with a stable code. Internal details are logged,
/// never shown.
impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        let detail = error.to_string();
        match error {
            IdentityError::InvalidEmail(EmailError::InvisibleCharacter { .. }) => {
                Self::unprocessable("email_invisible_character", detail)
            }
            IdentityError::InvalidEmail(EmailError::DisallowedCharacter { .. }) => {
                Self::unprocessable("email_disallowed_character", detail)
            }
            IdentityError::InvalidEmail(EmailError::MisplacedDot) => {
                Self::unprocessable("email_misplaced_dot", detail)
            }
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
