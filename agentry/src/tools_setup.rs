//! Building the tool service from the settings: the secrets key from `AGENTRY_SECRETS_KEY` or
//! the database.

use std::sync::Arc;

use commands::secret_box::{SecretsKeyError, secrets_key};
use commands::tools::ToolService;
use secrecy::ExposeSecret;

use crate::platform::{Platform, PlatformError};
use crate::settings::Settings;

/// The tool service for this process. A configured key that is not base64 of 32 bytes stops
/// the start (a wrong key would seal secrets no other node can open).
pub async fn tool_service(platform: &Platform, settings: &Settings) -> Result<ToolService, PlatformError> {
    let configured = settings
        .secrets
        .secrets_key
        .as_ref()
        .map(ExposeSecret::expose_secret);
    let previous: Vec<String> = settings
        .secrets
        .secrets_previous_keys
        .iter()
        .map(|key| key.expose_secret().to_owned())
        .collect();
    let sealer = secrets_key(&platform.pool, configured, &previous)
        .await
        .map_err(|error| match error {
            SecretsKeyError::Database(error) => PlatformError::Database(error),
            SecretsKeyError::Invalid => PlatformError::Config(format!(
                "AGENTRY_SECRETS_KEY / AGENTRY_SECRETS_PREVIOUS_KEYS: {error}"
            )),
        })?;
    tracing::info!(key_id = sealer.key_id(), "secrets key ready");
    Ok(ToolService::new(&platform.store, Arc::new(sealer)))
}
