//! `agentry audit verify`: walks every organization's audit chain (or one) straight from the
//! database and reports each chain's first broken link (`docs/audit-chain.md`).

use std::fmt::Write as _;

use projections::audit::Break;
use projections::audit::queries::{entry_count, organizations_with_entries, verify_chain};
use sqlx::PgPool;
use uuid::Uuid;

use crate::progress::Progress;

/// What the walk found.
#[derive(Debug, Default)]
pub struct AuditVerification {
    /// Organizations whose chain was walked.
    pub organizations: usize,
    /// Entries that verified.
    pub entries: u64,
    /// Each broken chain's first broken link.
    pub broken: Vec<(Uuid, Break)>,
}

impl AuditVerification {
    /// Whether every chain walked is intact.
    pub fn intact(&self) -> bool {
        self.broken.is_empty()
    }

    /// What to print: one line per broken chain, then a summary line.
    pub fn report(&self) -> String {
        let mut text = String::new();
        for (org_id, broken) in &self.broken {
            let _ = writeln!(
                text,
                "organization {org_id}: first broken link at entry {} ({}): {broken}",
                broken.seq,
                broken.kind.as_str()
            );
        }
        let _ = write!(
            text,
            "{} of {} organization audit chain(s) intact; {} entries verified",
            self.organizations - self.broken.len(),
            self.organizations,
            self.entries
        );
        text
    }
}

/// Walks the chain of `only`, or of every organization with an audit log, showing progress on
/// stderr (a line rewritten in place on a terminal, a line every two seconds otherwise).
pub async fn verify_audit_chains(
    pool: &PgPool,
    only: Option<Uuid>,
) -> Result<AuditVerification, sqlx::Error> {
    let organizations = match only {
        Some(org_id) => vec![org_id],
        None => organizations_with_entries(pool).await?,
    };
    let mut total = 0;
    for org_id in &organizations {
        total += entry_count(pool, *org_id).await?;
    }
    let mut progress = Progress::new("audit verify", "entries", Some(u64::try_from(total).unwrap_or(0)));
    let mut outcome = AuditVerification {
        organizations: organizations.len(),
        ..AuditVerification::default()
    };
    for org_id in organizations {
        let done_before = outcome.entries;
        let check = verify_chain(pool, org_id, |checked| progress.show(done_before + checked)).await?;
        outcome.entries += check.checked();
        if let Some(broken) = check.broken() {
            outcome.broken.push((org_id, broken));
        }
    }
    progress.finish(outcome.entries);
    Ok(outcome)
}
