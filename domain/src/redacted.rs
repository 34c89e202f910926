//! A placeholder printed by hand-written `Debug` impls in place of hashes.

use std::fmt;

/// Prints `<redacted>`: password and token hashes must never reach logs, even through
/// `{:?}` on a command, event or aggregate.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
