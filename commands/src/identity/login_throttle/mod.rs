//! Limits on password guessing (issue 11, finding 3): failed logins counted in Postgres, per
//! (account, client address) and per account, shared by every node and kept across restarts.
//!
//! Chosen design: five failures of a pair within 15 minutes lock that pair for a minute, each
//! further lock twice as long, capped at 15 minutes. While locked, even the right password is
//! refused (`too_many_attempts` with `Retry-After`), or the lock would not stop guessing. The
//! lock is per address, so a guesser elsewhere never locks the owner out; and per account,
//! past 100 failures within an hour, addresses that have not logged in to the account in the
//! last 30 days are refused until that hour ends (time-bounded: it ends by itself). Unknown
//! emails are counted exactly like known ones, so the lock tells nothing about who has an
//! account. A success clears its pair; a completed password reset clears the account.

mod client;
mod policy;
mod store;

pub use client::ClientAddress;
pub use policy::LoginLimits;
pub(super) use store::{LoginThrottle, account_key};
