//! Sealing secrets the service must read back (tool signing secrets) before they go into an
//! event: AES-256-GCM from `ring`, a fresh random 96-bit nonce per seal, and associated data
//! naming what the secret belongs to, so a sealed value copied onto another tool (or
//! organization) does not open.
//!
//! A sealed value is the text `v1.<key id>.<nonce>.<ciphertext and tag>` (base64url without
//! padding). The key id is a short fingerprint of the key, so a value sealed under another key
//! (`AGENTRY_SECRETS_KEY` changed) is reported as such instead of as tampering.
//!
//! The key comes from `AGENTRY_SECRETS_KEY` (base64 of 32 bytes) or, when unset, is generated
//! once and kept in the `platform_secrets` table like the token signing key ([`secrets_key`]).
//!
//! Rotating the key: set the new one as `AGENTRY_SECRETS_KEY` and list the old one in
//! `AGENTRY_SECRETS_PREVIOUS_KEYS`. New seals use the new key; values sealed under a listed
//! previous key still open (each value names its key), so nothing stops working while the
//! secrets are rotated (a tool's `POST /v1/tools/{id}/secret` seals its new secret under the new
//! key); then the old key can be dropped from the list.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// Bytes of a key.
pub const KEY_BYTES: usize = 32;
/// The format tag every sealed value starts with.
const FORMAT: &str = "v1";
/// The row of `platform_secrets` holding the generated key.
const KEY_ROW: &str = "secrets_key";

/// Why a value could not be sealed or opened. None of them carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not of the `v1.<key id>.<nonce>.<ciphertext>` shape.
    #[error("not a sealed value of a known format")]
    Malformed,
    /// Sealed under a key other than this process's (the secrets key changed).
    #[error("sealed under another key ({found}); this process has key {expected}")]
    OtherKey {
        /// The key id in the sealed value.
        found: String,
        /// This process's key id.
        expected: String,
    },
    /// The ciphertext, nonce or associated data do not match: tampered with, or moved from
    /// what it was sealed for.
    #[error("the sealed value does not open: altered, or sealed for something else")]
    Refused,
    /// The opened secret is not UTF-8 text.
    #[error("the opened secret is not text")]
    NotText,
    /// The operating system's random generator failed.
    #[error("no random nonce available")]
    Random,
}

/// Why the secrets key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretsKeyError {
    /// `AGENTRY_SECRETS_KEY` (or the stored key) is not base64 of exactly 32 bytes.
    #[error("the secrets key must be base64 of exactly {KEY_BYTES} bytes")]
    Invalid,
    /// Reading or storing the generated key failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Seals and opens secrets with one key. Cheap to share (`Arc`); its `Debug` shows only the
/// key id.
pub struct SecretBox {
    key: LessSafeKey,
    key_id: String,
    /// Earlier keys, by id: they open what they sealed and seal nothing new.
    previous: Vec<(String, LessSafeKey)>,
    random: SystemRandom,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SecretBox")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    /// A box over `key`.
    pub fn new(key: &[u8; KEY_BYTES]) -> Self {
        Self {
            key: aead_key(key),
            key_id: key_id(key),
            previous: Vec::new(),
            random: SystemRandom::new(),
        }
    }

    /// The same box, also opening what `previous` keys sealed (a key being rotated out).
    pub fn with_previous(mut self, previous: &[[u8; KEY_BYTES]]) -> Self {
        self.previous = previous
            .iter()
            .filter(|key| key_id(key) != self.key_id)
            .map(|key| (key_id(key), aead_key(key)))
            .collect();
        self
    }

    /// The key's fingerprint, as written in every value it seals.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `secret` for `associated` (which must be given again to open it).
    pub fn seal(&self, secret: &[u8], associated: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated),
                &mut sealed,
            )
            .map_err(|_| SealError::Refused)?;
        Ok(format!(
            "{FORMAT}.{}.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(&sealed)
        ))
    }

    /// Opens a value [`seal`](Self::seal)ed for `associated` by this key.
    pub fn open(&self, sealed: &str, associated: &[u8]) -> Result<SecretString, SealError> {
        let mut parts = sealed.split('.');
        let (Some(FORMAT), Some(key_id), Some(nonce), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SealError::Malformed);
        };
        let key = if key_id == self.key_id {
            &self.key
        } else {
            match self.previous.iter().find(|(id, _)| id == key_id) {
                Some((_, key)) => key,
                None => {
                    return Err(SealError::OtherKey {
                        found: key_id.to_owned(),
                        expected: self.key_id.clone(),
                    });
                }
            }
        };
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(SealError::Malformed)?;
        let mut buffer = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| SealError::Malformed)?;
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated),
                &mut buffer,
            )
            .map_err(|_| SealError::Refused)?;
        let length = opened.len();
        buffer.truncate(length);
        String::from_utf8(buffer)
            .map(SecretString::from)
            .map_err(|_| SealError::NotText)
    }
}

fn aead_key(key: &[u8; KEY_BYTES]) -> LessSafeKey {
    // AES-256 takes any 32 bytes; `new` fails only for a wrong length, which the type rules out.
    #[allow(clippy::expect_used)]
    let unbound = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key");
    LessSafeKey::new(unbound)
}

/// A short public fingerprint of `key`: 8 hex digits of a domain-separated SHA-256.
fn key_id(key: &[u8; KEY_BYTES]) -> String {
    let digest = Sha256::new()
        .chain_update(b"agentry secrets key id\0")
        .chain_update(key)
        .finalize();
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Base64 of exactly 32 bytes, in either alphabet, with or without padding.
pub fn parse_key(text: &str) -> Result<[u8; KEY_BYTES], SecretsKeyError> {
    let text = text.trim().trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(SecretsKeyError::Invalid)
}

/// The process's secret box: over `configured` (`AGENTRY_SECRETS_KEY`) when set, otherwise
/// over a key generated on first start and kept in the database, so every node and every
/// restart opens what any of them sealed. `previous` (`AGENTRY_SECRETS_PREVIOUS_KEYS`, keys
/// being rotated out) still open what they sealed; the generated key counts as one of them
/// once a key is configured, so configuring a key for the first time breaks nothing.
pub async fn secrets_key(
    pool: &PgPool,
    configured: Option<&str>,
    previous: &[String],
) -> Result<SecretBox, SecretsKeyError> {
    let mut previous = previous
        .iter()
        .map(|text| parse_key(text))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(text) = configured.filter(|text| !text.trim().is_empty()) {
        let stored: Option<(String,)> = sqlx::query_as("SELECT value FROM platform_secrets WHERE name = $1")
            .bind(KEY_ROW)
            .fetch_optional(pool)
            .await?;
        if let Some((generated,)) = stored {
            previous.push(parse_key(&generated)?);
        }
        return Ok(SecretBox::new(&parse_key(text)?).with_previous(&previous));
    }
    let mut fresh = [0u8; KEY_BYTES];
    SystemRandom::new()
        .fill(&mut fresh)
        .map_err(|_| SecretsKeyError::Invalid)?;
    sqlx::query("INSERT INTO platform_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(KEY_ROW)
        .bind(URL_SAFE_NO_PAD.encode(fresh))
        .execute(pool)
        .await?;
    let (stored,): (String,) = sqlx::query_as("SELECT value FROM platform_secrets WHERE name = $1")
        .bind(KEY_ROW)
        .fetch_one(pool)
        .await?;
    Ok(SecretBox::new(&parse_key(&stored)?).with_previous(&previous))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn sealer() -> SecretBox {
        SecretBox::new(&[7u8; KEY_BYTES])
    }

    #[test]
    fn a_sealed_secret_opens_with_the_same_associated_data() {
        let sealer = sealer();
        let sealed = sealer.seal(b"hunter2-but-longer", b"org/tool").unwrap();
        assert!(
            sealed.starts_with(&format!("v1.{}.", sealer.key_id())),
            "{sealed}"
        );
        assert!(!sealed.contains("hunter2"), "{sealed}");
        let opened = sealer.open(&sealed, b"org/tool").unwrap();
        assert_eq!(opened.expose_secret(), "hunter2-but-longer");
    }

    #[test]
    fn each_seal_takes_a_new_nonce() {
        let sealer = sealer();
        let a = sealer.seal(b"same secret", b"ad").unwrap();
        let b = sealer.seal(b"same secret", b"ad").unwrap();
        assert_ne!(a, b);
        let nonce = |s: &str| s.split('.').nth(2).unwrap().to_owned();
        assert_ne!(nonce(&a), nonce(&b));
    }

    #[test]
    fn a_tampered_ciphertext_or_nonce_is_refused() {
        let sealer = sealer();
        let sealed = sealer.seal(b"the secret", b"ad").unwrap();
        let parts: Vec<&str> = sealed.split('.').collect();
        let flip = |text: &str| {
            let mut bytes = URL_SAFE_NO_PAD.decode(text).unwrap();
            bytes[0] ^= 1;
            URL_SAFE_NO_PAD.encode(bytes)
        };
        let ciphertext = format!("v1.{}.{}.{}", parts[1], parts[2], flip(parts[3]));
        assert_eq!(sealer.open(&ciphertext, b"ad").unwrap_err(), SealError::Refused);
        let nonce = format!("v1.{}.{}.{}", parts[1], flip(parts[2]), parts[3]);
        assert_eq!(sealer.open(&nonce, b"ad").unwrap_err(), SealError::Refused);
        let truncated = &sealed[..sealed.len() - 2];
        assert!(sealer.open(truncated, b"ad").is_err());
    }

    #[test]
    fn other_associated_data_is_refused() {
        let sealer = sealer();
        let sealed = sealer.seal(b"the secret", b"org-a/tool-1").unwrap();
        assert_eq!(
            sealer.open(&sealed, b"org-a/tool-2").unwrap_err(),
            SealError::Refused
        );
    }

    #[test]
    fn another_key_and_other_shapes_are_told_apart() {
        let sealed = sealer().seal(b"the secret", b"ad").unwrap();
        let other = SecretBox::new(&[8u8; KEY_BYTES]);
        assert!(matches!(
            other.open(&sealed, b"ad"),
            Err(SealError::OtherKey { .. })
        ));
        for malformed in ["", "v1", "v2.a.b.c", "v1.k.n.c.extra", "plain text"] {
            assert!(sealer().open(malformed, b"ad").is_err(), "{malformed}");
        }
    }

    #[test]
    fn a_rotated_key_still_opens_what_the_previous_key_sealed_and_seals_under_the_new_one() {
        let old = SecretBox::new(&[7u8; KEY_BYTES]);
        let sealed_before = old.seal(b"the secret", b"ad").unwrap();
        let rotated = SecretBox::new(&[9u8; KEY_BYTES]);
        assert!(matches!(
            rotated.open(&sealed_before, b"ad"),
            Err(SealError::OtherKey { .. })
        ));

        let rotating = SecretBox::new(&[9u8; KEY_BYTES]).with_previous(&[[7u8; KEY_BYTES]]);

        let opened = rotating.open(&sealed_before, b"ad").unwrap();
        assert_eq!(opened.expose_secret(), "the secret");
        let sealed_after = rotating.seal(b"new secret", b"ad").unwrap();
        assert!(sealed_after.starts_with(&format!("v1.{}.", rotated.key_id())));
        assert_eq!(
            rotating.open(&sealed_before, b"other").unwrap_err(),
            SealError::Refused
        );
    }

    #[test]
    fn keys_parse_from_either_base64_alphabet_and_must_be_32_bytes() {
        let key = [0xfbu8; KEY_BYTES];
        let standard = base64::engine::general_purpose::STANDARD.encode(key);
        assert!(standard.contains('/') && standard.ends_with('='));
        assert_eq!(parse_key(&standard).unwrap(), key);
        assert_eq!(parse_key(&URL_SAFE_NO_PAD.encode(key)).unwrap(), key);
        assert!(parse_key(&STANDARD_NO_PAD.encode([1u8; 31])).is_err());
        assert!(parse_key("not base64!").is_err());
    }

    #[test]
    fn debug_shows_the_key_id_and_never_the_key() {
        let text = format!("{:?}", sealer());
        assert!(text.contains(sealer().key_id()), "{text}");
        assert!(!text.contains("[7, 7"), "{text}");
    }
}
