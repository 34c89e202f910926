//! Lifting old stored event shapes to the current ones.
//!
//! Stored events are never rewritten. When a shape changes, its event's `event_version` goes
//! up and an upcaster here rewrites older payloads as they are loaded, before they are
//! deserialized. Give [`upcasters`] to the event store (`eventstore::EventStore::new`); its
//! log follower applies the same list, so projectors and the bus see current shapes too.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::Value;

use crate::organization::{CREATED_EVENT_TYPE, CREATED_EVENT_VERSION};

/// Every upcaster of the domain, in the order they must run.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(OrganizationCreatedV1)]
}

/// `organization.created` below version 2 (`"1"`, `"1.0.0"`) to version 2.
///
/// Not cqrs-es's `SemanticVersionEventUpcaster`: that one stamps `"2.0.0"`, while the domain
/// writes `"2"`, and bus subscribers compare `version` with what the domain writes.
struct OrganizationCreatedV1;

impl EventUpcaster for OrganizationCreatedV1 {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == CREATED_EVENT_TYPE && major_version(event_version).is_some_and(|major| major < 2)
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        event.payload = organization_created_v1_to_v2(event.payload);
        CREATED_EVENT_VERSION.clone_into(&mut event.event_version);
        event
    }
}

/// The leading number of a dotted version (`"1"` and `"1.2.0"` are both 1).
fn major_version(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

/// `organization.created` version 1 stored `{name, owner}`, `owner` being the owner's user id;
/// version 2 calls it `owner_user_id`. Everything else is left as it is; a payload that is not
/// an object, or already has `owner_user_id`, is returned unchanged.
pub fn organization_created_v1_to_v2(payload: Value) -> Value {
    let Value::Object(mut fields) = payload else {
        return payload;
    };
    if !fields.contains_key("owner_user_id")
        && let Some(owner) = fields.remove("owner")
    {
        fields.insert("owner_user_id".to_owned(), owner);
    }
    Value::Object(fields)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use cqrs_es::persist::SerializedEvent;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::organization::OrganizationEvent;

    fn stored(version: &str, payload: Value) -> SerializedEvent {
        SerializedEvent::new(
            Uuid::new_v4().to_string(),
            1,
            "organization".to_owned(),
            CREATED_EVENT_TYPE.to_owned(),
            version.to_owned(),
            payload,
            json!({}),
        )
    }

    fn upcast(event: SerializedEvent) -> SerializedEvent {
        upcasters().iter().fold(event, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                upcaster.upcast(event)
            } else {
                event
            }
        })
    }

    #[test]
    fn a_version_1_payload_has_owner_renamed_to_owner_user_id() {
        let owner = Uuid::new_v4();
        let v1 = json!({"type": "organization.created", "name": "Acme", "owner": owner});
        assert_eq!(
            organization_created_v1_to_v2(v1),
            json!({"type": "organization.created", "name": "Acme", "owner_user_id": owner})
        );
    }

    #[test]
    fn an_upcast_version_1_event_deserializes_into_the_current_event() {
        let owner = Uuid::new_v4();
        let v1 = json!({"type": "organization.created", "name": "Acme", "owner": owner});
        let event = upcast(stored("1", v1));
        assert_eq!(event.event_version, CREATED_EVENT_VERSION);
        let current: OrganizationEvent = serde_json::from_value(event.payload).unwrap();
        assert_eq!(
            current,
            OrganizationEvent::Created {
                name: "Acme".to_owned(),
                owner_user_id: owner
            }
        );
    }

    #[test]
    fn a_current_version_event_is_not_upcast() {
        let payload = json!({"type": "organization.created", "name": "Acme", "owner": "kept"});
        let event = upcast(stored("2", payload.clone()));
        assert_eq!(event.payload, payload);
        assert_eq!(event.event_version, "2");
    }

    #[test]
    fn a_dotted_version_1_is_upcast_too() {
        let owner = Uuid::new_v4();
        let v1 = json!({"type": "organization.created", "name": "Acme", "owner": owner});
        let event = upcast(stored("1.0.0", v1));
        assert_eq!(event.payload["owner_user_id"], json!(owner));
        assert_eq!(event.event_version, "2");
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_left_alone() {
        assert_eq!(organization_created_v1_to_v2(json!([1, 2])), json!([1, 2]));
    }
}
