//! Grouping a read of the log by aggregate, for the projectors that fold a whole read at once.

use eventstore::RecordedEvent;

/// The events of `aggregate_type` in `events`, grouped by aggregate id (groups in order of
/// first appearance, each group's events in log order).
pub(crate) fn by_aggregate<'e>(
    events: &'e [RecordedEvent],
    aggregate_type: &str,
) -> Vec<(&'e str, Vec<&'e RecordedEvent>)> {
    let mut groups: Vec<(&str, Vec<&RecordedEvent>)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for event in events
        .iter()
        .filter(|event| event.aggregate_type == aggregate_type)
    {
        let slot = *index.entry(event.aggregate_id.as_str()).or_insert_with(|| {
            groups.push((event.aggregate_id.as_str(), Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(event);
    }
    groups
}
