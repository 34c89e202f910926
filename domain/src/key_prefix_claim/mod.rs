//! Which API key holds a key prefix. The aggregate id is the prefix itself, so the event
//! store's `(aggregate_type, aggregate_id, sequence)` key lets exactly one key claim a prefix:
//! a second claim, racing or later, conflicts and is refused, and key creation draws another
//! prefix. The identity view's unique index on the prefix can then never be violated by an
//! event (which would stall its projector).

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::KeyPrefixClaim;
pub use commands::KeyPrefixClaimCommand;
pub use error::KeyPrefixClaimError;
pub use events::KeyPrefixClaimEvent;
