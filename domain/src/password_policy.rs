//! The rule a new password must satisfy before it is hashed.

use crate::email::EmailAddress;

/// Fewer characters than this is too easy to guess offline.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// More than this only costs hashing time (and invites denial of service).
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Local parts shorter than this are not searched for in passwords: banning every password
/// that contains, say, the letter `a` would reject good passwords and protect nothing.
pub const MIN_LOCAL_PART_CHARS_CHECKED: usize = 3;

/// Why a new password was refused. The text states the rule plainly because the API shows
/// it to the user as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// Under [`MIN_PASSWORD_CHARS`].
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// Over [`MAX_PASSWORD_CHARS`].
    #[error("password must be at most {max} characters long")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// One character repeated, such as `aaaaaaaaaaaa`.
    #[error("password must not be a single character repeated")]
    SingleCharacterRepeated,
    /// Contains the part of the user's email address before the `@`.
    #[error("password must not contain the part of your email address before the '@'")]
    ContainsEmailName,
}

/// Checks a plaintext password a user wants to set (at registration or reset).
///
/// Lengths count Unicode characters, not bytes. The email is compared without regard to case.
/// It is a pure function so the API can run it before the expensive Argon2 hash.
pub fn check_new_password(password: &str, email: &EmailAddress) -> Result<(), PasswordPolicyError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordPolicyError::TooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordPolicyError::TooLong {
            max: MAX_PASSWORD_CHARS,
        });
    }
    let mut all = password.chars();
    let first = all.next();
    if all.all(|c| Some(c) == first) {
        return Err(PasswordPolicyError::SingleCharacterRepeated);
    }
    let local = email.local_part();
    if local.chars().count() >= MIN_LOCAL_PART_CHARS_CHECKED && password.to_lowercase().contains(local) {
        return Err(PasswordPolicyError::ContainsEmailName);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn email() -> EmailAddress {
        EmailAddress::parse("robert@example.com").unwrap()
    }

    #[test]
    fn a_long_varied_password_is_accepted() {
        assert_eq!(check_new_password("correct horse battery", &email()), Ok(()));
    }

    #[test]
    fn a_password_under_twelve_characters_is_rejected() {
        assert_eq!(
            check_new_password("short pass1", &email()),
            Err(PasswordPolicyError::TooShort { min: 12 })
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(check_new_password("ééééééééééé1", &email()), Ok(()));
    }

    #[test]
    fn a_password_over_128_characters_is_rejected() {
        let long = "ab".repeat(65);
        assert_eq!(
            check_new_password(&long, &email()),
            Err(PasswordPolicyError::TooLong { max: 128 })
        );
    }

    #[test]
    fn a_single_repeated_character_is_rejected() {
        assert_eq!(
            check_new_password("zzzzzzzzzzzzzzzz", &email()),
            Err(PasswordPolicyError::SingleCharacterRepeated)
        );
    }

    #[test]
    fn a_password_containing_the_email_name_is_rejected_whatever_its_case() {
        assert_eq!(
            check_new_password("MyNameIsROBERT!!", &email()),
            Err(PasswordPolicyError::ContainsEmailName)
        );
    }

    #[test]
    fn a_very_short_email_name_is_not_searched_for() {
        let short = EmailAddress::parse("al@example.com").unwrap();
        assert_eq!(check_new_password("totally alright", &short), Ok(()));
    }

    #[test]
    fn the_error_text_states_the_rule() {
        let text = PasswordPolicyError::TooShort { min: 12 }.to_string();
        assert_eq!(text, "password must be at least 12 characters long");
    }
}
