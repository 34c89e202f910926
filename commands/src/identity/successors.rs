//! Refresh-token successors derived from the presented token.
//!
//! A rotation's new refresh token is `rt_<family>_<HMAC-SHA256(key, presented)>`: as
//! unpredictable as a random one to anyone without the key, yet the same for the same
//! presented token. Two concurrent refreshes of one token (a client racing itself) therefore
//! ask the session for the same successor, and the one that comes second, within the grace
//! window, gets it without a second rotation: nothing but the usual digest is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Separates this use of the signing secret from its use for access tokens.
const CONTEXT: &[u8] = b"agentry refresh-token successor v1\0";

/// The key successors are derived with (from the token signing secret, so every node has it).
#[derive(Clone)]
pub(super) struct SuccessorKey(Hmac<Sha256>);

impl SuccessorKey {
    pub(super) fn new(secret: &[u8]) -> Self {
        // HMAC takes keys of any length, so this cannot fail.
        #[allow(clippy::expect_used)]
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
        Self(mac)
    }

    /// The successor of `presented` in `family`.
    pub(super) fn successor(&self, family: Uuid, presented: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(CONTEXT);
        mac.update(presented.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("rt_{}_{}", family.simple(), URL_SAFE_NO_PAD.encode(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successor_is_the_same_for_the_same_token_and_differs_by_token_and_key() {
        let family = Uuid::from_u128(7);
        let key = SuccessorKey::new(b"secret one");
        let first = key.successor(family, "rt_a");
        assert_eq!(first, key.successor(family, "rt_a"));
        assert_ne!(first, key.successor(family, "rt_b"));
        assert_ne!(first, SuccessorKey::new(b"secret two").successor(family, "rt_a"));
        assert!(first.starts_with(&format!("rt_{}_", family.simple())));
    }
}
