//! A client's idempotency key: the same key sent again with the same request finds what the
//! first request made instead of making it twice, so a client that lost an answer (a dropped
//! connection, a 500 `outcome_unknown`, a timeout of its own) may simply repeat the request.
//!
//! The key becomes the id of what the request creates (a UUID v5 of the organization, the kind
//! of request, its scope and the key), so the aggregate that the first request created is the
//! record of the key: no table of keys to keep, expire or clean up, and two requests racing
//! with one key meet on one aggregate (the conversation, for both kinds: a conversation
//! refuses to start a run id twice), where the store's optimistic lock lets one of them win.

use uuid::Uuid;

/// The namespace of ids drawn from idempotency keys (UUID v5). Fixed forever: changing it would
/// let a key sent again create a second resource.
const IDEMPOTENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0xcd77_fa8c_66ae_4825_a730_557f_1714_cfe4);

/// The longest key accepted, in bytes (Stripe's limit).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// A key a client chose: 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`] visible ASCII characters (`!` to
/// `~`), enough for a UUID, a hash or a client's own request id, and nothing a header could
/// mangle (no spaces, no control characters, no non-ASCII).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why a text is not an idempotency key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters (`!` to `~`, no spaces)"
)]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// `text` as a key, if it is one.
    pub fn new(text: &str) -> Result<Self, InvalidIdempotencyKey> {
        let visible = text.bytes().all(|byte| byte.is_ascii_graphic());
        if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY_BYTES || !visible {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(text.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of what a request of `kind` with this key creates in organization `org_id`,
    /// within `scope` (the conversation a run starts in; nil for a conversation). A key is the
    /// client's within its organization and one kind of request: another organization, another
    /// kind or another scope with the same key gets another id.
    pub fn id_for(&self, org_id: Uuid, kind: &str, scope: Uuid) -> Uuid {
        // Neither the ids nor `kind` hold `/`, and the key comes last, so the name is unambiguous.
        let name = format!("{org_id}/{kind}/{scope}/{}", self.0);
        Uuid::new_v5(&IDEMPOTENT_ID_NAMESPACE, name.as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use uuid::Uuid;

    use super::{IdempotencyKey, MAX_IDEMPOTENCY_KEY_BYTES};

    #[test]
    fn visible_ascii_up_to_the_limit_is_a_key_and_nothing_else_is() {
        for good in [
            "a",
            "req-2026-12-07T22:31:00Z#1",
            &"k".repeat(MAX_IDEMPOTENCY_KEY_BYTES),
        ] {
            assert!(IdempotencyKey::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            " ",
            "two words",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "caf\u{e9}",
            &"k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1),
        ] {
            assert!(IdempotencyKey::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_same_key_gives_the_same_id_only_in_the_same_organization_kind_and_scope() {
        let key = IdempotencyKey::new("retry-me").unwrap();
        let (org, other_org) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (scope, other_scope) = (Uuid::from_u128(3), Uuid::from_u128(4));
        let id = key.id_for(org, "run", scope);
        assert_eq!(id, key.id_for(org, "run", scope));
        assert_ne!(id, key.id_for(other_org, "run", scope));
        assert_ne!(id, key.id_for(org, "conversation", scope));
        assert_ne!(id, key.id_for(org, "run", other_scope));
        assert_ne!(
            id,
            IdempotencyKey::new("retry-me2")
                .unwrap()
                .id_for(org, "run", scope)
        );
    }
}
