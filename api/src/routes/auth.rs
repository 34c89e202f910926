use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use tracing::Instrument;
use uuid::Uuid;

use super::AppState;
use super::tags::ApiTags;
use commands::identity::{ClientAddress, IdentityError};
use domain::EmailAddress;

use crate::http::{ApiError, BearerAuth, EmailText, RequestId, Text, limit_by_address};

/// Registration, email verification, login, refresh and password reset: the routes that need
/// no credentials (and re-sending the verification mail, which does).
pub struct AuthApi;

/// A new account.
#[derive(Object)]
struct RegisterRequest {
    /// Login email; also where password reset links go.
    email: EmailText,
    /// At least 12 characters, at most 128, not one repeated character, not containing the
    /// email's local part (`weak_password`).
    #[oai(validator(min_length = 12, max_length = 128))]
    password: Text,
    /// Name of the user's first organization (1–100 characters, trimmed).
    #[oai(validator(min_length = 1, max_length = 100))]
    org_name: Text,
}

/// The new user, their organization, and tokens for it.
#[derive(Object)]
struct RegisterResponse {
    /// The new user's id.
    user_id: Uuid,
    /// The new organization's id; the user owns it.
    org_id: Uuid,
    /// Short-lived JWT for `Authorization: Bearer`, acting for the new organization.
    access_token: String,
    /// Single-use: exchange it at `/v1/auth/refresh`; a reused one revokes the session.
    refresh_token: String,
    /// Seconds until the access token expires.
    expires_in: i64,
}

/// Credentials, and optionally which organization to act for.
#[derive(Object)]
struct LoginRequest {
    /// The email the account was registered with.
    email: EmailText,
    /// The account's password.
    password: Text,
    /// Defaults to the first organization the user joined.
    org_id: Option<Uuid>,
}

/// A fresh token pair.
#[derive(Object)]
struct TokenResponse {
    /// Short-lived JWT for `Authorization: Bearer`.
    access_token: String,
    /// Single-use: exchange it at `/v1/auth/refresh`; a reused one revokes the session.
    refresh_token: String,
    /// Seconds until the access token expires.
    expires_in: i64,
}

/// A refresh token to exchange.
#[derive(Object)]
struct RefreshRequest {
    /// The refresh token of the last pair received; it is spent by this exchange.
    refresh_token: Text,
}

/// Whose password to reset.
#[derive(Object)]
struct PasswordResetRequest {
    /// The account's email; the answer is the same whether or not an account has it.
    email: EmailText,
}

/// The token from the reset link and the new password.
#[derive(Object)]
struct PasswordResetConfirm {
    /// The `token` parameter of the emailed reset link.
    token: Text,
    /// The new password, under the same rule as at registration (`weak_password`).
    #[oai(validator(min_length = 12, max_length = 128))]
    new_password: Text,
}

/// The token from an email verification link.
#[derive(Object)]
struct VerifyEmailRequest {
    /// The `token` of the verification link, as mailed.
    token: Text,
}

#[derive(ApiResponse)]
enum Verified {
    /// The email address is verified; the token is spent.
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum VerificationResent {
    /// A new verification link is being mailed to the caller's address.
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
enum Registered {
    /// The account, its organization and a session were created.
    #[oai(status = 201)]
    Created(Json<RegisterResponse>),
}

#[derive(ApiResponse)]
enum ResetAccepted {
    /// Accepted. A link is emailed if, and only if, the account exists (the answer is the same
    /// either way).
    #[oai(status = 202)]
    Accepted,
}

#[derive(ApiResponse)]
enum ResetDone {
    /// The password was changed; the token is spent.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Register a user and their first organization
    ///
    /// Creates the user, an organization they own and a session for it. A link to verify the
    /// email is mailed; until it is used the account works, but cannot invite members.
    #[oai(
        path = "/auth/register",
        method = "post",
        operation_id = "registerUser",
        transform = "limit_by_address"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        body: Json<RegisterRequest>,
    ) -> Result<Registered, ApiError> {
        let request_id = request_id.for_events();
        let registered = state
            .identity
            .register(&body.email, &body.password, &body.org_name, request_id)
            .await?;
        Ok(Registered::Created(Json(RegisterResponse {
            user_id: registered.user_id,
            org_id: registered.org_id,
            access_token: registered.tokens.access_token,
            refresh_token: registered.tokens.refresh_token,
            expires_in: registered.tokens.expires_in,
        })))
    }

    /// Verify the email address
    ///
    /// Takes the token of the link mailed at registration (or re-sent). Wrong or used tokens:
    /// 401 `invalid_verification_token`; expired: 401 `verification_token_expired`.
    #[oai(
        path = "/auth/verify-email",
        method = "post",
        operation_id = "verifyEmail",
        transform = "limit_by_address"
    )]
    async fn verify_email(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        body: Json<VerifyEmailRequest>,
    ) -> Result<Verified, ApiError> {
        state
            .identity
            .verify_email(&body.token, request_id.for_events())
            .await?;
        Ok(Verified::Done)
    }

    /// Mail a new email verification link
    ///
    /// Mails a new link to the logged-in user (earlier links keep working). At most 3
    /// verification mails per account per hour (429 `verification_mail_limit` with
    /// `Retry-After`); a verified address answers 409 `email_already_verified`.
    #[oai(
        path = "/auth/verify-email/resend",
        method = "post",
        operation_id = "resendEmailVerification",
        transform = "limit_by_address"
    )]
    async fn resend_verification(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        auth: BearerAuth,
    ) -> Result<VerificationResent, ApiError> {
        state
            .identity
            .resend_email_verification(&auth.0, request_id.for_events())
            .await?;
        Ok(VerificationResent::Accepted)
    }

    /// Log in to one organization
    ///
    /// Answers a token pair for the organization given, or the first one the user joined. A
    /// wrong email and a wrong password get the same answer (401 `invalid_credentials`); five
    /// failures lock the account for the client's address (429 `too_many_attempts`).
    #[oai(
        path = "/auth/login",
        method = "post",
        operation_id = "login",
        transform = "limit_by_address"
    )]
    async fn login(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        client: Data<&ClientAddress>,
        body: Json<LoginRequest>,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let request_id = request_id.for_events();
        let tokens = state
            .identity
            .login(&body.email, &body.password, body.org_id, **client, request_id)
            .await?;
        Ok(Json(token_response(tokens)))
    }

    /// Exchange a refresh token for a new token pair
    ///
    /// The refresh token presented is spent: presenting it again later revokes every token of
    /// its session (401 `refresh_token_reused`).
    #[oai(
        path = "/auth/refresh",
        method = "post",
        operation_id = "refreshTokens",
        transform = "limit_by_address"
    )]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        body: Json<RefreshRequest>,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let tokens = state
            .identity
            .refresh(&body.refresh_token, request_id.for_events())
            .await?;
        Ok(Json(token_response(tokens)))
    }

    /// Ask for a password reset link by email
    ///
    /// Any well-formed address answers 202, whether or not an account has it, and in the same
    /// time: the link is looked up and mailed after the answer.
    #[oai(
        path = "/auth/password-reset",
        method = "post",
        operation_id = "requestPasswordReset",
        transform = "limit_by_address"
    )]
    async fn password_reset(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        body: Json<PasswordResetRequest>,
    ) -> Result<ResetAccepted, ApiError> {
        // What cannot be an address is refused at once (the document says `format: email`);
        // that tells nothing about accounts.
        EmailAddress::parse(&body.email).map_err(IdentityError::from)?;
        // The work (look-up, event, SMTP) happens after the answer, so neither the answer nor
        // its timing tells whether the account exists.
        let identity = Arc::clone(&state.identity);
        let (email, request_id) = (body.0.email.0.0, request_id.for_events());
        let work = async move {
            if let Err(error) = identity.request_password_reset(&email, request_id).await {
                tracing::error!(%error, "password reset request failed");
            }
        };
        tokio::spawn(work.instrument(tracing::Span::current()));
        Ok(ResetAccepted::Accepted)
    }

    /// Set a new password with a reset link's token
    ///
    /// The link came by mail, so this also marks the email verified. Every session of the
    /// account ends, and so does any impersonation of it.
    #[oai(
        path = "/auth/password-reset/confirm",
        method = "post",
        operation_id = "confirmPasswordReset",
        transform = "limit_by_address"
    )]
    async fn password_reset_confirm(
        &self,
        state: Data<&AppState>,
        request_id: Data<&RequestId>,
        body: Json<PasswordResetConfirm>,
    ) -> Result<ResetDone, ApiError> {
        let request_id = request_id.for_events();
        state
            .identity
            .confirm_password_reset(&body.token, &body.new_password, request_id)
            .await?;
        Ok(ResetDone::Done)
    }
}

fn token_response(tokens: commands::identity::TokenPair) -> TokenResponse {
    TokenResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_in: tokens.expires_in,
    }
}
