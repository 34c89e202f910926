//! Short-lived access tokens (JWT, HS256) and the key that signs them.

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::successors::SuccessorKey;
use super::{CredentialError, IdentityError, secrets};

/// What an access token says. It names one organization (or none: a platform administrator's
/// own token); the role is looked up per request so a demotion applies at once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: Uuid,
    /// The organization the token acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Uuid>,
    /// The platform administrator impersonating `sub`, when this is an impersonation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imp: Option<Uuid>,
    /// The session (refresh-token family) the token was issued for: when that session ends
    /// (theft detected, password changed), the token stops working at once. Absent for
    /// impersonation tokens, which belong to no session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The impersonation an impersonation token was issued for: when it is ended (by an
    /// administrator, or by a password reset of the user), the token stops working at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iid: Option<Uuid>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Signs and checks access tokens, and derives refresh-token successors.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    successors: SuccessorKey,
}

impl TokenKeys {
    /// Keys from a shared secret.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            successors: SuccessorKey::new(secret),
        }
    }

    /// The refresh token that replaces `presented` in `family`: derived, not random, so a
    /// repeat of the same refresh within the grace window computes the very successor the
    /// session recorded (see `IdentityService::refresh`).
    pub(super) fn successor_refresh_token(&self, family: Uuid, presented: &str) -> String {
        self.successors.successor(family, presented)
    }

    /// A signed token for `claims`.
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, IdentityError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|error| IdentityError::Internal(format!("signing a token failed: {error}")))
    }

    /// The claims of a valid, unexpired token signed with our key.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, IdentityError> {
        decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => CredentialError::AccessTokenExpired.into(),
                _ => CredentialError::MalformedAccessToken.into(),
            })
    }
}

/// Claims for `user` in `org`, valid from `now` until `expires_at`.
pub fn claims(
    user: Uuid,
    org: Option<Uuid>,
    impersonator: Option<Uuid>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> AccessClaims {
    AccessClaims {
        sub: user,
        org,
        imp: impersonator,
        sid: None,
        iid: None,
        iat: now.timestamp(),
        exp: expires_at.timestamp(),
    }
}

impl AccessClaims {
    /// These claims, tied to `session`.
    pub fn in_session(mut self, session: Uuid) -> Self {
        self.sid = Some(session);
        self
    }

    /// These claims, tied to `impersonation`.
    pub fn in_impersonation(mut self, impersonation: Uuid) -> Self {
        self.iid = Some(impersonation);
        self
    }
}

/// The signing secret: `configured` when set (`AGENTRY_JWT_SECRET`), otherwise one generated
/// on first start and kept in the database so every node and every restart shares it.
pub async fn signing_secret(pool: &PgPool, configured: Option<&str>) -> Result<Vec<u8>, sqlx::Error> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret.as_bytes().to_vec());
    }
    sqlx::query("INSERT INTO platform_secrets (name, value) VALUES ('jwt_signing_key', $1) ON CONFLICT (name) DO NOTHING")
        .bind(secrets::random_secret(48))
        .execute(pool)
        .await?;
    let (value,): (String,) =
        sqlx::query_as("SELECT value FROM platform_secrets WHERE name = 'jwt_signing_key'")
            .fetch_one(pool)
            .await?;
    Ok(value.into_bytes())
}
