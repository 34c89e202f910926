//! Argon2id password hashing, off the async runtime.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use super::{IdentityError, secrets};

/// Hashes a new password (Argon2id, default parameters, random salt).
pub async fn hash_password(password: String) -> Result<String, IdentityError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|error| IdentityError::Internal(format!("password hashing task failed: {error}")))?
}

/// Whether `password` matches `stored`. With `None` (no such account) it verifies against the
/// hash of a random password anyway, so a failed login costs the same whether or not the
/// account exists.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    let known = stored.is_some();
    let matches = tokio::task::spawn_blocking(move || {
        let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false);
    known && matches
}

fn hash_now(password: &str) -> Result<String, IdentityError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| IdentityError::Internal(format!("password hashing failed: {error}")))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now(&secrets::random_secret(24)).unwrap_or_default())
}
