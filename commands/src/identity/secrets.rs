//! Random secrets and their stored forms.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A URL-safe random secret of `bytes` bytes from the operating system's CSPRNG.
pub fn random_secret(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // The OS generator failing is unrecoverable for a service that issues credentials.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buffer).expect("the operating system's random generator works");
    URL_SAFE_NO_PAD.encode(buffer)
}

/// A mailed token, `<id in simple form>.<secret>`: it names the aggregate it belongs to, so it
/// is resolved without a read model, and only its [`secret_hash`] is stored.
pub fn mailed_token(id: uuid::Uuid) -> String {
    format!("{}.{}", id.simple(), random_secret(32))
}

/// The aggregate id a [`mailed_token`] names, if it has that shape.
pub fn mailed_token_id(token: &str) -> Option<uuid::Uuid> {
    let (id, secret) = token.split_once('.')?;
    if secret.is_empty() {
        return None;
    }
    uuid::Uuid::try_parse(id).ok()
}

/// Lowercase hex of a 16-character random id, for recognisable key prefixes.
pub fn random_prefix() -> String {
    let mut buffer = [0u8; 6];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buffer).expect("the operating system's random generator works");
    hex(&buffer)
}

/// What is stored of a high-entropy secret (API keys, refresh and reset tokens): its SHA-256.
/// A slow password hash would add nothing for 256-bit random secrets and cost every request.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Compares two hashes in time independent of where they differ.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashes_stable() {
        assert_ne!(random_secret(32), random_secret(32));
        assert_eq!(random_secret(32).len(), 43);
        assert_eq!(secret_hash("a"), secret_hash("a"));
        assert!(hashes_equal(&secret_hash("a"), &secret_hash("a")));
        assert!(!hashes_equal(&secret_hash("a"), &secret_hash("b")));
        assert_eq!(random_prefix().len(), 12);
    }
}
