use super::super::RecordedEvent;
use super::EventFilter;

/// `agentry.<org_id>.events.<aggregate_type>.<aggregate_id>`, the contract's subject for an
/// event. Platform-wide events (no organization) use `system` in place of the org id.
///
/// Tokens are made safe for NATS: anything but ASCII letters, digits, `-` and `_` becomes `_`,
/// so an id can never add tokens or wildcards to the subject.
pub fn subject_for(event: &RecordedEvent) -> String {
    let org = event
        .org_id
        .map_or_else(|| "system".to_owned(), |id| id.to_string());
    format!(
        "agentry.{org}.events.{}.{}",
        token(&event.aggregate_type),
        token(&event.aggregate_id)
    )
}

/// The subjects a subscriber of `filter` listens on: one organization's
/// `agentry.<org_id>.events.>`, the platform's `agentry.system.events.>`, or all of them.
pub(super) fn subject_filter(filter: EventFilter) -> String {
    match filter {
        EventFilter::All => "agentry.*.events.>".to_owned(),
        EventFilter::Organization(org_id) => format!("agentry.{org_id}.events.>"),
        EventFilter::Platform => "agentry.system.events.>".to_owned(),
    }
}

fn token(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::token;

    #[test]
    fn dots_and_wildcards_never_reach_a_subject() {
        assert_eq!(token("a.b*c>d e"), "a_b_c_d_e");
        assert_eq!(token(""), "_");
        assert_eq!(token("0b7e-ab_1"), "0b7e-ab_1");
    }
}
