//! Where new API key prefixes come from.

use std::fmt;
use std::sync::Arc;

use super::secrets;

/// Draws the public prefix of a new API key: 48 random bits by default.
///
/// Replaceable so that a test can make two keys draw the same prefix, the collision that
/// creation must survive (see `create_api_key`); with random prefixes it is too rare to meet.
#[derive(Clone)]
pub struct KeyPrefixSource(Arc<dyn Fn() -> String + Send + Sync>);

impl KeyPrefixSource {
    /// A source calling `draw` for each new key.
    pub fn new(draw: impl Fn() -> String + Send + Sync + 'static) -> Self {
        Self(Arc::new(draw))
    }

    /// The next prefix.
    pub(super) fn draw(&self) -> String {
        (self.0)()
    }
}

impl Default for KeyPrefixSource {
    fn default() -> Self {
        Self::new(secrets::random_prefix)
    }
}

impl fmt::Debug for KeyPrefixSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPrefixSource")
    }
}
