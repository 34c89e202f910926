//! A validated, normalized email address.
//!
//! What is accepted is an unquoted addr-spec: the local part is RFC 5322 `dot-atom` text
//! (ASCII letters and digits, `!#$%&'*+-/=?^_\`{|}~`, and dots between them), widened as RFC 6531
//! allows to letters and digits of other scripts; the domain is dot-separated labels of letters,
//! digits and inner hyphens. So display names (`Ann <ann@x.com>`), angle brackets, quoted local
//! parts (`"ann"@x.com`), comments and IP literals are refused: each would be a second spelling
//! of one mailbox. Non-ASCII characters must be Identifier_Status=Allowed in Unicode's UTS #39
//! (letters and digits of scripts in modern use); invisible characters (controls, zero-width and
//! bidirectional formatting, other default-ignorable code points) are refused with their own
//! reason. Compatibility forms are folded first (NFKC: full-width `ａ` is `a`).
//!
//! Two addresses that look alike are still two addresses (`vаlid` with a Cyrillic `а` is not
//! `valid`): [`EmailAddress::confusable_key`] gives both the same key, and the email claim is
//! keyed on it, so only one of them can hold an account.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, skeleton};

/// The longest address accepted, the SMTP path limit (RFC 5321).
pub const MAX_EMAIL_CHARS: usize = 254;

/// The ASCII characters a local part may hold besides letters, digits and dots (RFC 5322 atext).
const LOCAL_PART_SYMBOLS: &str = "!#$%&'*+-/=?^_`{|}~";

/// An email address, NFKC-normalized, trimmed and lowercased, so that one mailbox is one
/// identity.
///
/// Construct it with [`EmailAddress::parse`] (or `str::parse`). The rule is deliberately
/// basic beyond the characters (one `@`, a non-empty local part, a dotted domain): the real
/// proof of an address is mail reaching it. Deserialization does not re-validate: addresses
/// inside stored events were valid when written, and a later, stricter rule must not make
/// history unreadable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(description = "An email address, NFKC-normalized, trimmed and lowercased.")]
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
    /// A character that does not show: a control character, a zero-width or bidirectional
    /// formatting character, or another default-ignorable code point.
    #[error("email address must not contain invisible characters (found U+{code_point:04X})")]
    InvisibleCharacter {
        /// The character's code point.
        code_point: u32,
    },
    /// A visible character an unquoted address cannot hold: quotes, angle brackets,
    /// parentheses, commas and other symbols, or a letter Unicode restricts in identifiers.
    #[error(
        "email address must not contain {character:?}: give the bare address (name@example.com), \
         without a display name, quotes or angle brackets"
    )]
    DisallowedCharacter {
        /// The character.
        character: char,
    },
    /// No `@`, or more than one.
    #[error("email address must contain exactly one '@'")]
    NotOneAt,
    /// Nothing before the `@`.
    #[error("email address needs a name before the '@'")]
    EmptyLocalPart,
    /// A dot first or last before the `@`, or two in a row.
    #[error("email address must not start or end with a dot before the '@', nor hold two in a row")]
    MisplacedDot,
    /// The part after `@` is not a dotted name such as `example.com`.
    #[error("email address needs a domain with a dot after the '@', such as example.com")]
    InvalidDomain,
}

impl EmailAddress {
    /// Validates and normalizes user input (NFKC, surrounding whitespace trimmed, lowercased).
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let address = input.nfkc().collect::<String>().trim().to_lowercase();
        if address.is_empty() {
            return Err(EmailError::Empty);
        }
        if address.chars().count() > MAX_EMAIL_CHARS {
            return Err(EmailError::TooLong { max: MAX_EMAIL_CHARS });
        }
        if address.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace);
        }
        if let Some(invisible) = address.chars().find(|&c| is_invisible(c)) {
            return Err(EmailError::InvisibleCharacter {
                code_point: invisible.into(),
            });
        }
        let mut parts = address.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::NotOneAt);
        };
        check_local_part(local)?;
        check_domain(domain)?;
        Ok(Self(address))
    }

    /// The address's UTS #39 confusable skeleton: addresses that look alike (a Cyrillic `а`
    /// for a Latin `a`, `rn` for `m`, `0` for `O`) share it, so keying uniqueness on it lets
    /// only one of them hold an account. Not an address: never shown, never mailed.
    pub fn confusable_key(&self) -> String {
        skeleton(&self.0).collect()
    }

    /// The normalized address: what is stored, shown and mailed, and what look-ups match.
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

/// Shows nothing: a control character or a default-ignorable code point (zero-width spaces
/// and joiners, bidirectional controls, soft hyphens…), which UTS #39's skeleton drops.
fn is_invisible(c: char) -> bool {
    c.is_control() || skeleton(c.encode_utf8(&mut [0; 4])).next().is_none()
}

/// A letter or digit of a script in modern use (UTS #39 Identifier_Status=Allowed), beyond ASCII.
fn is_allowed_non_ascii(c: char) -> bool {
    !c.is_ascii() && c.identifier_allowed()
}

fn check_local_part(local: &str) -> Result<(), EmailError> {
    if local.is_empty() {
        return Err(EmailError::EmptyLocalPart);
    }
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || LOCAL_PART_SYMBOLS.contains(c) || is_allowed_non_ascii(c);
    if let Some(character) = local.chars().find(|&c| c != '.' && !allowed(c)) {
        return Err(EmailError::DisallowedCharacter { character });
    }
    if local.split('.').any(str::is_empty) {
        return Err(EmailError::MisplacedDot);
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), EmailError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || is_allowed_non_ascii(c);
    if let Some(character) = domain.chars().find(|&c| c != '.' && !allowed(c)) {
        return Err(EmailError::DisallowedCharacter { character });
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let bad_label = |label: &&str| label.is_empty() || label.starts_with('-') || label.ends_with('-');
    if labels.len() < 2 || labels.iter().any(bad_label) {
        return Err(EmailError::InvalidDomain);
    }
    Ok(())
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
    fn display_names_quotes_and_angle_brackets_are_refused() {
        for (input, character) in [
            ("<v@x.com>", '<'),
            ("\"v\"@x.com", '"'),
            ("Ann <ann@x.com>", ' '),
            ("v(comment)@x.com", '('),
            ("a,b@x.com", ','),
            ("v@[127.0.0.1]", '['),
            ("a\\b@x.com", '\\'),
        ] {
            let refused = EmailAddress::parse(input);
            assert!(
                matches!(refused, Err(EmailError::DisallowedCharacter { character: c }) if c == character)
                    || (character == ' ' && refused == Err(EmailError::Whitespace)),
                "{input:?}: {refused:?}"
            );
        }
        assert_eq!(EmailAddress::parse("v@x.com").unwrap().as_str(), "v@x.com");
    }

    #[test]
    fn unquoted_symbols_and_letters_of_other_scripts_are_accepted() {
        for input in [
            "o'neil+tag@x.com",
            "a_b-c.d@sub-domain.x.com",
            "иван@пример.рф",
            "δοκιμή@x.com",
        ] {
            assert!(EmailAddress::parse(input).is_ok(), "{input:?}");
        }
    }

    #[test]
    fn invisible_characters_are_refused() {
        for (input, code_point) in [
            ("v\u{200B}@x.com", 0x200B),  // zero-width space
            ("v\u{200D}a@x.com", 0x200D), // zero-width joiner
            ("v\u{202E}a@x.com", 0x202E), // right-to-left override
            ("v\u{2066}a@x.com", 0x2066), // left-to-right isolate
            ("v\u{00AD}a@x.com", 0xAD),   // soft hyphen
            ("\u{FEFF}v@x.com", 0xFEFF),  // byte order mark
            ("v\u{7}@x.com", 0x7),        // a control character
            ("v\u{0}@x.com", 0x0),
        ] {
            assert_eq!(
                EmailAddress::parse(input),
                Err(EmailError::InvisibleCharacter { code_point }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn dots_only_separate_the_local_part() {
        for input in [".v@x.com", "v.@x.com", "v..w@x.com"] {
            assert_eq!(
                EmailAddress::parse(input),
                Err(EmailError::MisplacedDot),
                "{input:?}"
            );
        }
        assert_eq!(EmailAddress::parse("v@-x.com"), Err(EmailError::InvalidDomain));
    }

    #[test]
    fn full_width_forms_are_folded_to_ascii() {
        let email = EmailAddress::parse("ｖａｌｉｄ＠ｘ．ｃｏｍ").unwrap();
        assert_eq!(email.as_str(), "valid@x.com");
    }

    #[test]
    fn lookalike_addresses_share_a_confusable_key_and_different_ones_do_not() {
        let key = |s: &str| EmailAddress::parse(s).unwrap().confusable_key();
        let latin = key("valid@x.com");
        assert_eq!(key("v\u{0430}lid@x.com"), latin, "Cyrillic а");
        assert_eq!(key("vаlіd@х.com"), latin, "Cyrillic а, і and х");
        assert_eq!(key("VALID@X.COM"), latin);
        assert_ne!(key("valid2@x.com"), latin);
        assert_ne!(key("vald@x.com"), latin);
        // UTS #39 treats "rn" and "m" as confusable: they do look alike in most fonts.
        assert_eq!(key("modern@x.com"), key("rnodern@x.com"));
    }

    #[test]
    fn an_address_serializes_as_a_plain_string() {
        let email = EmailAddress::parse("bob@example.org").unwrap();
        let json = serde_json::to_value(&email).unwrap();
        assert_eq!(json, serde_json::json!("bob@example.org"));
    }
}
