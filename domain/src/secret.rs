//! Credential digests as their own types, so that `{:?}` on anything that carries one (a
//! command, an event, an aggregate) prints a redaction instead of the digest.
//!
//! They are serde-transparent: stored events keep the plain JSON string they always had. They
//! have no `Display`, so a digest cannot slip into a log line or a formatted message by accident;
//! [`PasswordDigest::as_str`] is the one deliberate way out (to verify, compare or store it).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! digest {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a digest computed elsewhere.
            pub fn new(digest: impl Into<String>) -> Self {
                Self(digest.into())
            }

            /// The digest itself, for verifying, comparing or storing it; never for logs.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(digest: String) -> Self {
                Self(digest)
            }
        }

        impl From<&str> for $name {
            fn from(digest: &str) -> Self {
                Self(digest.to_owned())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

digest!(
    /// The Argon2id PHC string of a password.
    PasswordDigest
);

digest!(
    /// The SHA-256 digest of a bearer secret: an API key, a refresh token, a reset token.
    TokenDigest
);

/// A secret sealed by the application's AEAD (`v1.<key id>.<nonce>.<ciphertext>`): what events
/// carry instead of a secret the service must be able to read back (a tool's signing secret).
///
/// Opaque to the domain, which only stores and compares it. Its `Debug` is redacted too: the
/// ciphertext is safe without the key, but has no business in logs either.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(
    description = "A secret sealed by the service (`v1.<key id>.<nonce>.<ciphertext>`); only the service can open it."
)]
pub struct SealedSecret(String);

impl SealedSecret {
    /// Wraps a sealed string produced by the application.
    pub fn new(sealed: impl Into<String>) -> Self {
        Self(sealed.into())
    }

    /// The sealed string, to open it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SealedSecret(<redacted>)")
    }
}

/// Whether an event payload's field named `name` holds a credential: a digest (`*_hash`:
/// [`PasswordDigest`], [`TokenDigest`]) or a sealed secret (`secret`: [`SealedSecret`]).
///
/// What may leave the store for people (the history an auditor reads) leaves these out: a
/// digest can be cracked offline, and a sealed secret is only the service's to open. A test over
/// every event schema (`event_schema.rs`) keeps this rule equal to the fields of those three
/// types, and fails when one is nested deeper than a payload's top level, where this rule would
/// not look.
pub fn is_credential_field(name: &str) -> bool {
    name.ends_with("_hash") || name == "secret"
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_type_but_never_the_digest() {
        let password = PasswordDigest::new("$argon2id$v=19$secret-digest");
        let token = TokenDigest::from("0123abcd-token-digest");
        assert_eq!(format!("{password:?}"), "PasswordDigest(<redacted>)");
        assert_eq!(format!("{token:#?}"), "TokenDigest(<redacted>)");
        assert_eq!(token.as_str(), "0123abcd-token-digest");
        let sealed = SealedSecret::new("v1.k.n.c");
        assert_eq!(format!("{sealed:?}"), "SealedSecret(<redacted>)");
    }

    #[test]
    fn a_digest_serializes_as_the_plain_string_it_always_was() {
        let json = serde_json::to_string(&TokenDigest::from("d1g35t")).unwrap();
        assert_eq!(json, r#""d1g35t""#);
        let back: TokenDigest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_str(), "d1g35t");
    }
}
