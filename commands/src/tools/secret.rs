//! The signing secret's rule, its generation, and what it is sealed for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::SealedSecret;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::ToolsError;
use crate::secret_box::SecretBox;

/// Shortest secret a caller may set, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest secret a caller may set, in bytes.
pub const MAX_SECRET_BYTES: usize = 256;
/// Random bytes in a generated secret (shown base64url, 43 characters).
pub const GENERATED_SECRET_BYTES: usize = 32;

/// The secret given, when it is 16 to 256 visible ASCII characters (what a tool author can
/// paste into an environment variable without quoting or encoding trouble), or a generated one.
pub(super) fn given_or_generated(given: Option<SecretString>) -> Result<SecretString, ToolsError> {
    let Some(secret) = given else {
        return Ok(generate());
    };
    let text = secret.expose_secret();
    let allowed = (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_graphic());
    if allowed {
        Ok(secret)
    } else {
        Err(ToolsError::InvalidSecret)
    }
}

fn generate() -> SecretString {
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    // The OS generator failing is unrecoverable for a service that issues credentials.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random generator works");
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// What a tool's secret is sealed for: the organization and the tool, so a sealed value copied
/// into another tool's event does not open.
pub(super) fn associated_data(org_id: Uuid, tool_id: Uuid) -> Vec<u8> {
    format!("agentry/tool-secret/v1/{org_id}/{tool_id}").into_bytes()
}

/// `secret` sealed for the tool.
pub(super) fn seal(
    sealer: &SecretBox,
    org_id: Uuid,
    tool_id: Uuid,
    name: &str,
    secret: &SecretString,
) -> Result<SealedSecret, ToolsError> {
    sealer
        .seal(
            secret.expose_secret().as_bytes(),
            &associated_data(org_id, tool_id),
        )
        .map(SealedSecret::new)
        .map_err(|reason| ToolsError::Sealing {
            tool: name.to_owned(),
            reason,
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_is_generated_and_a_given_one_must_follow_the_rule() {
        let generated = given_or_generated(None).unwrap();
        assert_eq!(generated.expose_secret().len(), 43);
        assert_ne!(
            generated.expose_secret(),
            given_or_generated(None).unwrap().expose_secret()
        );
        let given = |text: &str| given_or_generated(Some(SecretString::from(text.to_owned())));
        assert!(given(&"s".repeat(16)).is_ok());
        assert!(given(&"s".repeat(256)).is_ok());
        for refused in [
            "s".repeat(15),
            "s".repeat(257),
            "with a space....!".into(),
            "é".repeat(10),
        ] {
            assert!(
                matches!(given(&refused), Err(ToolsError::InvalidSecret)),
                "{refused}"
            );
        }
    }
}
