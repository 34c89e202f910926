//! An invitation to join an organization: mailed to an address, accepted once, by whoever
//! reads that mailbox and is logged in as that address, before it expires.
//!
//! Membership starts only here: nobody is added to an organization without accepting. The
//! token is never stored, only its digest; it is `<invitation id>.<secret>`, so acceptance
//! finds the invitation without a read model.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::Invitation;
pub use commands::InvitationCommand;
pub use error::InvitationError;
pub use events::InvitationEvent;
