//! `Stripe-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, as
//! Stripe specifies it (stripe.com/docs/webhooks#verify-manually) and its libraries check it:
//! every `v1` is tried (several appear while a secret rolls), other schemes are ignored, the
//! comparison is constant-time, and a timestamp older than the tolerance is refused after the
//! signature matched (so a captured delivery cannot be replayed later: `t` is signed).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

/// Why a webhook's signature was refused. Nothing is recorded for a refused delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the request has no Stripe-Signature header")]
    Missing,
    /// The header has no timestamp, or no `v1` signature.
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    Malformed,
    /// No `v1` signature matches the body with the configured secret.
    #[error("no signature matches the body (wrong STRIPE_WEBHOOK_SECRET, or a changed body)")]
    Mismatch,
    /// The signature matches but was made longer ago than the tolerance.
    #[error("the signature's timestamp is {age_seconds} s old, over the {tolerance_seconds} s tolerance")]
    Stale {
        /// How old.
        age_seconds: i64,
        /// The tolerance.
        tolerance_seconds: i64,
    },
}

/// Checks `header` against `body` signed with `secret`, at `now` (unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let expected = mac(secret, timestamp, body);
    let matches = signatures.iter().any(|signature| {
        decode_hex(signature).is_some_and(|tag| expected.clone().verify_slice(&tag).is_ok())
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let age_seconds = now.saturating_sub(timestamp);
    if tolerance_seconds > 0 && age_seconds > tolerance_seconds {
        return Err(SignatureError::Stale {
            age_seconds,
            tolerance_seconds,
        });
    }
    Ok(())
}

/// A `Stripe-Signature` value for `body` at `timestamp`, as Stripe makes them (tests and local
/// tools; Agentry itself only verifies).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const BODY: &[u8] = br#"{"city":"Paris"}"#;

    /// Computed with Python's standard library, independently of this code:
    /// `hmac.new(b"whsec_test", b'1700000000.{"city":"Paris"}', hashlib.sha256).hexdigest()`.
    const PYTHON_VECTOR: &str =
        "t=1700000000,v1=94bc8a390a3761f483f5b09a4e043a2a588fd5f01b7a7ec463e518f1c4d91956";

    #[test]
    fn a_signature_made_elsewhere_verifies_and_ours_matches_it() {
        assert_eq!(sign(SECRET, 1_700_000_000, BODY), PYTHON_VECTOR);
        assert_eq!(
            verify(Some(PYTHON_VECTOR), BODY, SECRET, 1_700_000_010, 300),
            Ok(())
        );
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_other_schemes_are_ignored() {
        let header = format!(
            "t=1700000000,v0=abc,v1={},{}",
            "00".repeat(32),
            &PYTHON_VECTOR[13..]
        );
        assert_eq!(verify(Some(&header), BODY, SECRET, 1_700_000_000, 300), Ok(()));
    }

    #[test]
    fn a_changed_body_or_another_secret_is_a_mismatch() {
        let changed = verify(
            Some(PYTHON_VECTOR),
            br#"{"city":"Rome"}"#,
            SECRET,
            1_700_000_000,
            300,
        );
        assert_eq!(changed, Err(SignatureError::Mismatch));
        let other_secret = verify(Some(PYTHON_VECTOR), BODY, b"whsec_other", 1_700_000_000, 300);
        assert_eq!(other_secret, Err(SignatureError::Mismatch));
    }

    #[test]
    fn an_old_timestamp_is_stale_only_once_the_signature_matched() {
        let stale = verify(Some(PYTHON_VECTOR), BODY, SECRET, 1_700_000_301, 300);
        assert_eq!(
            stale,
            Err(SignatureError::Stale {
                age_seconds: 301,
                tolerance_seconds: 300
            })
        );
        assert_eq!(
            verify(Some(PYTHON_VECTOR), BODY, SECRET, 1_700_000_300, 300),
            Ok(())
        );
        let forged_and_old = verify(Some(PYTHON_VECTOR), b"{}", SECRET, 1_800_000_000, 300);
        assert_eq!(forged_and_old, Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_header_without_timestamp_or_v1_is_malformed() {
        assert_eq!(verify(None, BODY, SECRET, 0, 300), Err(SignatureError::Missing));
        for header in ["v1=abcd", "t=1700000000", "t=soon,v1=abcd", ""] {
            assert_eq!(
                verify(Some(header), BODY, SECRET, 0, 300),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }
}
