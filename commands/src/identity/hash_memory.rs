//! Argon2id hashing and verification over memory the hashing permits own.
//!
//! `Argon2::hash_password` allocates its 19 MiB working memory on every call. Under a flood of
//! logins that churn left the allocator holding several hundred MiB (with glibc's malloc, one
//! arena per thread that ever hashed), so the process's memory depended on the allocator
//! rather than on the number of hashes allowed at once. Here each hashing permit owns one block of memory, allocated once and
//! reused, so the memory for passwords is exactly permits × the Argon2 memory cost, known at
//! start. The PHC strings produced and accepted are the same as `argon2`'s own.

use argon2::password_hash::generate_salt;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The working memory of one hash at our parameters.
pub struct HashMemory(Vec<Block>);

impl HashMemory {
    /// Memory for one hash at the default parameters (Argon2id, 19 MiB, 2 passes).
    pub fn new() -> Self {
        Self(vec![Block::default(); Params::default().block_count()])
    }

    /// Hashes `password` with a fresh salt at the default parameters: a PHC string.
    pub fn hash(&mut self, password: &[u8]) -> Result<String, String> {
        let params = Params::default();
        let salt = generate_salt();
        let mut out = [0_u8; Params::DEFAULT_OUTPUT_LEN];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(password, &salt, &mut out, &mut self.0[..params.block_count()])
            .map_err(|error| error.to_string())?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|error| error.to_string())?,
            salt: Some(Salt::new(&salt).map_err(|error| error.to_string())?),
            hash: Some(Output::new(&out).map_err(|error| error.to_string())?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches the PHC string `stored` (compared in constant time). A stored
    /// hash with a higher memory cost than ours (parameters raised later) gets memory of its own
    /// for this one check.
    pub fn verify(&mut self, password: &[u8], stored: &str) -> bool {
        let Ok(hash) = PasswordHash::new(stored) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(hash.algorithm.as_str()),
            Params::try_from(&hash),
        ) else {
            return false;
        };
        let Ok(version) = hash.version.map_or(Ok(Version::default()), Version::try_from) else {
            return false;
        };
        let mut out = vec![0_u8; expected.len()];
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let needed = params.block_count();
        let computed = if needed <= self.0.len() {
            argon2.hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut self.0[..needed])
        } else {
            argon2.hash_password_into_with_memory(
                password,
                salt.as_ref(),
                &mut out,
                vec![Block::default(); needed],
            )
        };
        // `Output`'s equality is constant-time.
        computed.is_ok() && Output::new(&out).is_ok_and(|computed| &computed == expected)
    }
}

impl Default for HashMemory {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::HashMemory;

    #[test]
    fn hashes_are_argon2s_own_phc_strings_both_ways() {
        let mut memory = HashMemory::new();
        let ours = memory.hash(b"correct horse battery staple").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(
            argon2::Argon2::default()
                .verify_password(b"correct horse battery staple", ours.as_str())
                .is_ok()
        );

        let theirs = argon2::Argon2::default()
            .hash_password(b"correct horse battery staple")
            .unwrap()
            .to_string();
        assert!(memory.verify(b"correct horse battery staple", &theirs));
        assert!(!memory.verify(b"correct horse battery stapler", &theirs));
        assert!(!memory.verify(b"correct horse battery staple", "not a phc string"));
    }

    #[test]
    fn a_hash_with_a_higher_memory_cost_still_verifies() {
        let params = argon2::Params::new(32 * 1024, 2, 1, None).unwrap();
        let stronger = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"a long enough passphrase")
            .unwrap()
            .to_string();
        let mut memory = HashMemory::new();
        assert!(memory.verify(b"a long enough passphrase", &stronger));
        assert!(!memory.verify(b"another passphrase", &stronger));
    }
}
