//! Grouping a read of the log by aggregate, for the projectors that fold a whole read at once.

use std::collections::HashMap;

use eventstore::RecordedEvent;
use uuid::Uuid;

use crate::decode::aggregate_uuid;

/// The events of `aggregate_type` in `events`, grouped by aggregate (groups in order of first
/// appearance, each group's events in log order); an aggregate id that is not a UUID is an
/// error naming its event.
pub(crate) fn by_aggregate<'e>(
    events: &'e [RecordedEvent],
    aggregate_type: &str,
) -> Result<Vec<(Uuid, Vec<&'e RecordedEvent>)>, sqlx::Error> {
    let mut groups: Vec<(Uuid, Vec<&RecordedEvent>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for event in events
        .iter()
        .filter(|event| event.aggregate_type == aggregate_type)
    {
        let slot = match index.get(event.aggregate_id.as_str()) {
            Some(slot) => *slot,
            None => {
                groups.push((aggregate_uuid(event)?, Vec::new()));
                index.insert(event.aggregate_id.as_str(), groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[slot].1.push(event);
    }
    Ok(groups)
}
