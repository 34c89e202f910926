//! Building the identity service from the settings.

use std::time::Duration;

use chrono::TimeDelta;

use commands::identity::{IdentityConfig, IdentityService, Mailer, TokenKeys, signing_secret};
use eventstore::log::FollowerProgress;
use secrecy::ExposeSecret;

use crate::platform::{Platform, PlatformError};
use crate::settings::Settings;

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
        key_prefixes: settings.identity.key_prefixes.clone(),
        refresh_grace: TimeDelta::milliseconds(
            settings.identity.refresh_grace_ms.try_into().unwrap_or(i64::MAX),
        ),
        ..IdentityConfig::default()
    };
    // The process's one listener for the projectors' progress, stopped with the platform.
    let progress = FollowerProgress::start(platform.pool.clone(), platform.shutdown.clone());
    Ok(IdentityService::new(
        &platform.store,
        TokenKeys::new(&secret),
        config,
        progress,
    ))
}
