//! Building the identity service from the settings.

use std::time::Duration;

use chrono::TimeDelta;
use commands::identity::{
    HashingLimits, IdentityConfig, IdentityService, LoginLimits, Mailer, TokenKeys, signing_secret,
};
use secrecy::ExposeSecret;

use crate::platform::{Platform, PlatformError};
use crate::settings::{Settings, SignInLimitSettings};

/// The identity service for this process: signing key from `AGENTRY_JWT_SECRET` or the
/// database, mail from `AGENTRY_SMTP_URL`.
pub async fn identity_service(
    platform: &Platform,
    settings: &Settings,
) -> Result<IdentityService, PlatformError> {
    let configured = settings
        .identity
        .jwt_secret
        .as_ref()
        .map(|secret| secret.expose_secret().to_owned());
    let secret = signing_secret(&platform.pool, configured.as_deref()).await?;
    let mailer = match &settings.identity.smtp_url {
        Some(url) => Some(
            Mailer::new(url.expose_secret(), &settings.identity.mail_from).map_err(PlatformError::Config)?,
        ),
        None => None,
    };
    let config = IdentityConfig {
        public_url: settings.identity.public_url.clone(),
        mailer,
        view_wait: Duration::from_millis(settings.identity.view_wait_ms),
        invitation_ttl: TimeDelta::seconds(settings.identity.invitation_ttl_seconds.into()),
        verification_ttl: TimeDelta::seconds(settings.identity.email_verification_ttl_seconds.into()),
        hashing: hashing_limits(&settings.sign_in_limits),
        login_limits: login_limits(&settings.sign_in_limits),
        key_prefixes: settings.identity.key_prefixes.clone(),
        refresh_grace: TimeDelta::milliseconds(
            settings.identity.refresh_grace_ms.try_into().unwrap_or(i64::MAX),
        ),
        ..IdentityConfig::default()
    };
    let progress = platform.progress();
    Ok(IdentityService::new(
        &platform.store,
        TokenKeys::new(&secret),
        config,
        progress,
    ))
}

/// The password hashing bound: unset values follow the cores.
fn hashing_limits(settings: &SignInLimitSettings) -> HashingLimits {
    let defaults = match settings.password_hash_concurrency {
        Some(permits) => HashingLimits::with_permits(permits),
        None => HashingLimits::for_this_machine(),
    };
    HashingLimits {
        waiters: settings.password_hash_queue.unwrap_or(defaults.waiters),
        wait: Duration::from_millis(settings.password_hash_wait_ms),
        ..defaults
    }
}

fn login_limits(settings: &SignInLimitSettings) -> LoginLimits {
    let seconds = |value: u32| TimeDelta::seconds(i64::from(value));
    LoginLimits {
        max_failures: settings.login_max_failures.max(1),
        window: seconds(settings.login_failure_window_seconds),
        first_lock: seconds(settings.login_lock_seconds),
        max_lock: seconds(settings.login_max_lock_seconds),
        account_failures_per_hour: settings.login_account_failures_per_hour,
    }
}
