//! The audit log: every event as an entry of each organization it concerns, sealed into one
//! hash chain per organization.
//!
//! The projector is the sealer: it follows the event log in the store's delivery order (the
//! runner's `(transaction_id, position)` order behind the gate), so appends never wait for it,
//! and it is the chain's only writer (one runner per projector, by lease and checkpoint). Each
//! entry gets the next `seq` of its organization's log and the previous entry's hash, in the
//! runner's transaction, with its checkpoint.
//!
//! - [`entry`]: what an entry holds, its canonical JSON and hash (`docs/audit-chain.md`);
//! - `attribution`: which organizations' logs an event goes into;
//! - [`chain`]: checking a chain, entry by entry, as `verify` does;
//! - [`queries`]: the reads of the routes, the export and `agentry audit verify`;
//! - [`history`]: one aggregate's events as an organization's auditors may read them.

mod attribution;
mod canonical;
pub mod chain;
pub mod entry;
pub mod history;
pub mod queries;
mod seal;

use std::time::Duration;

use async_trait::async_trait;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use self::attribution::MembershipChange;
use self::entry::EntryContent;
use self::seal::{Unsealed, seal_many};
use crate::Projector;

pub use chain::{Break, BreakKind, ChainCheck};
pub use entry::{AuditEntry, GENESIS_HASH};

/// The audit projector's name: its checkpoint key.
pub const AUDIT: &str = "audit";

/// Seals every event into the audit logs of the organizations it concerns.
#[derive(Clone, Copy, Debug, Default)]
pub struct AuditProjector;

#[async_trait]
impl Projector for AuditProjector {
    fn name(&self) -> &'static str {
        AUDIT
    }

    /// Empties only what is derived (memberships, held events), never the entries: the chain is
    /// a record that outside checkpoints refer to. Replayed from the start of the log, the
    /// projector seals only the events missing from it.
    async fn clear(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE audit_memberships, audit_held")
            .execute(connection)
            .await?;
        Ok(())
    }

    /// No request waits for the audit log (its readers are auditors, after the fact), so the
    /// sealer steps at most every 50 ms: under load one batch seals ten times the events, at
    /// the cost of a step's two statements and its commit. Entries appear within 50 ms.
    fn pace(&self) -> Duration {
        Duration::from_millis(50)
    }

    /// Whole reads: the organization events that change no membership (nearly all of them)
    /// are sealed together, two statements for a run of them ([`seal_many`]); the others
    /// (memberships, platform-wide events) one by one in between, in log order.
    fn batched(&self) -> bool {
        true
    }

    async fn apply_batch(
        &self,
        connection: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), sqlx::Error> {
        let mut plain = Vec::new();
        for event in events {
            match event.org_id {
                Some(org_id) if attribution::membership_change(event).is_none() => {
                    plain.push(Unsealed {
                        org_id,
                        position: event.position,
                        content: content_of(event)?,
                    });
                }
                _ => {
                    seal_many(connection, std::mem::take(&mut plain)).await?;
                    self.apply(connection, event).await?;
                }
            }
        }
        seal_many(connection, plain).await
    }

    async fn apply(&self, connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
        let content = content_of(event)?;
        let change = attribution::membership_change(event);
        // A new member's held events go into the organization's log just before the event
        // that made them a member, in the same statements.
        let mut unsealed = Vec::new();
        if let Some(MembershipChange::Joined { org_id, user_id }) = &change {
            let held = attribution::take_held(connection, *user_id).await?;
            unsealed.extend(held.into_iter().map(|(position, content)| Unsealed {
                org_id: *org_id,
                position,
                content,
            }));
        }
        if let Some(change) = &change {
            attribution::record(connection, change).await?;
        }
        match event.org_id {
            Some(org_id) => {
                unsealed.push(Unsealed {
                    org_id,
                    position: event.position,
                    content,
                });
                seal_many(connection, unsealed).await
            }
            None => {
                seal_many(connection, unsealed).await?;
                seal_platform_event(connection, event, content).await
            }
        }
    }
}

/// The entry `event` makes; an event without what an entry needs stops the sealer (it holds
/// its checkpoint rather than leave a hole in the chain).
fn content_of(event: &RecordedEvent) -> Result<EntryContent, sqlx::Error> {
    EntryContent::from_event(event).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// A platform-wide event: into the log of every organization its person belongs to, held while
/// they belong to none, and in no log when it is about nobody.
async fn seal_platform_event(
    connection: &mut PgConnection,
    event: &RecordedEvent,
    content: EntryContent,
) -> Result<(), sqlx::Error> {
    let Some(user_id) = attribution::subject(event) else {
        return Ok(());
    };
    let organizations = attribution::organizations_of(connection, user_id).await?;
    if organizations.is_empty() {
        return attribution::hold(connection, user_id, event.position, &content).await;
    }
    let entries = organizations
        .into_iter()
        .map(|org_id| Unsealed {
            org_id,
            position: event.position,
            content: content.clone(),
        })
        .collect();
    seal_many(connection, entries).await
}
