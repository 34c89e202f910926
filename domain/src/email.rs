//! A validated, normalized email address.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest address accepted, the SMTP path limit (RFC 5321).
pub const MAX_EMAIL_CHARS: usize = 254;

/// An email address, trimmed and lowercased, so that one mailbox is one identity.
///
/// Construct it with [`EmailAddress::parse`] (or `str::parse`). The rule is deliberately
/// basic (one `@`, a non-empty local part, a dotted domain, no whitespace): the real proof of
/// an address is mail reaching it. Deserialization does not re-validate: addresses inside
/// stored events were valid when written, and a later, stricter rule must not make history
/// unreadable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// What is wrong with an email address; the text is shown to users as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing was given.
    #[error("email address is empty")]
    Empty,
    /// Longer than [`MAX_EMAIL_CHARS`].
    #[error("email address must be at most {max} characters long")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Spaces, tabs or line breaks inside the address.
    #[error("email address must not contain whitespace")]
    Whitespace,
    /// No `@`, or more than one.
    #[error("email address must contain exactly one '@'")]
    NotOneAt,
    /// Nothing before the `@`.
    #[error("email address needs a name before the '@'")]
    EmptyLocalPart,
    /// The part after `@` is not a dotted name such as `example.com`.
    #[error("email address needs a domain with a dot after the '@', such as example.com")]
    InvalidDomain,
}

impl EmailAddress {
    /// Validates and normalizes user input (surrounding whitespace trimmed, lowercased).
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let address = input.trim().to_lowercase();
        if address.is_empty() {
            return Err(EmailError::Empty);
        }
        if address.chars().count() > MAX_EMAIL_CHARS {
            return Err(EmailError::TooLong { max: MAX_EMAIL_CHARS });
        }
        if address.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace);
        }
        let mut parts = address.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::NotOneAt);
        };
        if local.is_empty() {
            return Err(EmailError::EmptyLocalPart);
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|label| label.is_empty()) {
            return Err(EmailError::InvalidDomain);
        }
        Ok(Self(address))
    }

    /// The normalized address; also the email claim aggregate's id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`, which the password policy keeps out of passwords.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl FromStr for EmailAddress {
    type Err = EmailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_trimmed_and_lowercased() {
        let email = EmailAddress::parse("  Alice.Smith@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(email.local_part(), "alice.smith");
    }

    #[test]
    fn each_malformed_address_gets_its_own_reason() {
        let cases = [
            ("   ", EmailError::Empty),
            ("al ice@example.com", EmailError::Whitespace),
            ("alice.example.com", EmailError::NotOneAt),
            ("a@b@example.com", EmailError::NotOneAt),
            ("@example.com", EmailError::EmptyLocalPart),
            ("alice@localhost", EmailError::InvalidDomain),
            ("alice@example.", EmailError::InvalidDomain),
            ("alice@.example.com", EmailError::InvalidDomain),
        ];
        for (input, expected) in cases {
            assert_eq!(EmailAddress::parse(input), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn an_address_longer_than_254_characters_is_rejected() {
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.len(), 255);
        assert_eq!(EmailAddress::parse(&long), Err(EmailError::TooLong { max: 254 }));
        assert!(EmailAddress::parse(&long[1..]).is_ok());
    }

    #[test]
    fn an_address_serializes_as_a_plain_string() {
        let email = EmailAddress::parse("bob@example.org").unwrap();
        let json = serde_json::to_value(&email).unwrap();
        assert_eq!(json, serde_json::json!("bob@example.org"));
    }
}
