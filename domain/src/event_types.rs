//! Every event type and aggregate type the domain records: what the audit log's `action` and
//! `target_type` can be.

/// Every event type, sorted. Event shapes are stored forever, so a type never leaves this list;
/// a test below keeps it equal to the types the event enums declare.
pub const EVENT_TYPES: &[&str] = &[
    "agent.created",
    "agent.updated",
    "api_key.created",
    "api_key.revoked",
    "conversation.archived",
    "conversation.created",
    "conversation.run_ended",
    "conversation.run_started",
    "credit_account.charged",
    "credit_account.granted",
    "credit_account.opened",
    "credit_account.refunded",
    "credit_account.released",
    "credit_account.reserved",
    "email_claim.claimed",
    "impersonation.ended",
    "impersonation.started",
    "invitation.accepted",
    "invitation.sent",
    "key_prefix_claim.claimed",
    "llm_call.completed",
    "llm_call.failed",
    "llm_call.started",
    "message.completed",
    "message.delta",
    "organization.created",
    "organization.member_added",
    "organization.member_joined",
    "organization.member_removed",
    "organization.member_role_changed",
    "organization.quotas_set",
    "organization.reactivated",
    "organization.renamed",
    "organization.suspended",
    "run.cancelled",
    "run.completed",
    "run.failed",
    "run.paused",
    "run.queued",
    "run.resumed",
    "run.started",
    "session.refreshed",
    "session.revoked",
    "session.started",
    "tool.created",
    "tool.deleted",
    "tool.secret_rotated",
    "tool.updated",
    "tool_call.approved",
    "tool_call.completed",
    "tool_call.denied",
    "tool_call.failed",
    "tool_call.requested",
    "tool_call.started",
    "user.email_verification_requested",
    "user.email_verified",
    "user.password_changed",
    "user.password_reset_completed",
    "user.password_reset_requested",
    "user.promoted_to_platform_admin",
    "user.registered",
];

/// Every aggregate type (each aggregate's `TYPE`), sorted; a test keeps it equal to the types
/// the aggregates declare.
pub const AGGREGATE_TYPES: &[&str] = &[
    "agent",
    "api_key",
    "conversation",
    "credit_account",
    "email_claim",
    "impersonation",
    "invitation",
    "key_prefix_claim",
    "organization",
    "run",
    "session",
    "tool",
    "user",
];

/// Whether `aggregate_type` is one the domain records.
pub fn is_aggregate_type(aggregate_type: &str) -> bool {
    AGGREGATE_TYPES.binary_search(&aggregate_type).is_ok()
}

/// Whether `event_type` is one the domain records.
pub fn is_event_type(event_type: &str) -> bool {
    EVENT_TYPES.binary_search(&event_type).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The quoted names after `marker` in every `src/<aggregate>/<file>`, read from the
    /// sources, so an event added to any aggregate, or a new aggregate, is noticed.
    fn declared(file: &str, marker: &str) -> BTreeSet<String> {
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut names = BTreeSet::new();
        for folder in std::fs::read_dir(source).unwrap() {
            let Ok(text) = std::fs::read_to_string(folder.unwrap().path().join(file)) else {
                continue;
            };
            for piece in text.split(marker).skip(1) {
                names.insert(piece.split('"').next().unwrap().to_owned());
            }
        }
        names
    }

    fn set(list: &[&str]) -> BTreeSet<String> {
        assert!(
            list.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted, no repeats"
        );
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_lists_are_every_declared_event_and_aggregate_type() {
        let event_types = declared("events.rs", "rename = \"")
            .into_iter()
            .filter(|name| name.contains('.'))
            .collect();
        assert_eq!(set(EVENT_TYPES), event_types);
        assert_eq!(
            set(AGGREGATE_TYPES),
            declared("aggregate.rs", "const TYPE: &'static str = \"")
        );
        assert!(is_event_type("organization.created") && !is_event_type("organization.exploded"));
        assert!(is_aggregate_type("run") && !is_aggregate_type("runs"));
    }
}
