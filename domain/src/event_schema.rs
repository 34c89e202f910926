//! The JSON Schema of every event's payload, generated from the event enums themselves so that
//! it cannot drift from what is stored.
//!
//! Each enum derives `schemars::JsonSchema`; serde's attributes (the `type` tag, renames,
//! defaults, `flatten`) shape the schema as they shape the JSON. The published bus schema
//! (`docs/event.schema.json`, composed by `eventstore::relay::bus_schema`) wraps these payload
//! schemas in the event envelope.

use cqrs_es::Aggregate;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use crate::agent::Agent;
use crate::api_key::ApiKey;
use crate::conversation::Conversation;
use crate::credit_account::CreditAccount;
use crate::email_claim::EmailClaim;
use crate::impersonation::Impersonation;
use crate::invitation::Invitation;
use crate::key_prefix_claim::KeyPrefixClaim;
use crate::organization::{CREATED_EVENT_TYPE, CREATED_EVENT_VERSION, Organization};
use crate::run::Run;
use crate::session::Session;
use crate::tool::Tool;
use crate::user::User;

/// Every `event_version` other than `"1"`, by event type. A version goes up only together with
/// an upcaster (see [`crate::upcasting`]); a test below fails when an upcaster lifts a type that
/// is missing here.
const VERSIONS_ABOVE_ONE: [(&str, &str); 1] = [(CREATED_EVENT_TYPE, CREATED_EVENT_VERSION)];

/// One event type's payload.
#[derive(Clone, Debug)]
pub struct EventSchema {
    /// The dotted type, e.g. `agent.created`: the payload's `type` and the event's.
    pub event_type: String,
    /// The aggregate that records it (`Aggregate::TYPE`), e.g. `agent`.
    pub aggregate_type: &'static str,
    /// Its current `event_version`: the one every reader sees once events are upcast.
    pub version: &'static str,
    /// The schema of the payload as stored (credential digests included). Types it shares with
    /// other events are `$ref`s into the generator's definitions.
    pub data: Schema,
}

/// The payload schema of every event type of every aggregate, in a stable order (aggregates as
/// listed here, each enum's variants in declaration order).
///
/// The shared value types (`AgentDefinition`, `Role`, `Actor`, …) are left in `generator`'s
/// definitions; the event enums themselves are taken out, split into one schema per type, and
/// passed through `generator`'s transforms, as definitions would be.
pub fn event_schemas(generator: &mut SchemaGenerator) -> Vec<EventSchema> {
    let mut schemas = Vec::new();
    schemas.extend(variants_of::<Organization>(generator));
    schemas.extend(variants_of::<User>(generator));
    schemas.extend(variants_of::<EmailClaim>(generator));
    schemas.extend(variants_of::<Session>(generator));
    schemas.extend(variants_of::<ApiKey>(generator));
    schemas.extend(variants_of::<KeyPrefixClaim>(generator));
    schemas.extend(variants_of::<Invitation>(generator));
    schemas.extend(variants_of::<Impersonation>(generator));
    schemas.extend(variants_of::<Agent>(generator));
    schemas.extend(variants_of::<Tool>(generator));
    schemas.extend(variants_of::<Conversation>(generator));
    schemas.extend(variants_of::<Run>(generator));
    schemas.extend(variants_of::<CreditAccount>(generator));
    schemas
}

/// The current `event_version` of `event_type`.
pub fn current_version(event_type: &str) -> &'static str {
    VERSIONS_ABOVE_ONE
        .iter()
        .find(|(kind, _)| *kind == event_type)
        .map_or("1", |(_, version)| version)
}

/// One schema per variant of `A`'s event enum (internally tagged), each named by its `type`
/// constant.
fn variants_of<A>(generator: &mut SchemaGenerator) -> Vec<EventSchema>
where
    A: Aggregate,
    A::Event: JsonSchema,
{
    generator.subschema_for::<A::Event>();
    let name = A::Event::schema_name();
    let definition = generator.definitions_mut().remove(name.as_ref());
    let Some(Value::Array(variants)) =
        definition.and_then(|mut enum_schema| enum_schema.get_mut("oneOf").map(Value::take))
    else {
        panic!("{name}: an internally tagged enum has a `oneOf` of its variants");
    };
    variants
        .into_iter()
        .map(|variant| {
            let mut data =
                Schema::try_from(variant).unwrap_or_else(|_| panic!("{name}: a variant is an object schema"));
            for transform in generator.transforms_mut() {
                transform.transform(&mut data);
            }
            let event_type = data
                .pointer("/properties/type/const")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{name}: every variant has a constant `type`"))
                .to_owned();
            EventSchema {
                aggregate_type: A::TYPE,
                version: current_version(&event_type),
                event_type,
                data,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use schemars::generate::SchemaSettings;

    use super::*;
    use crate::secret::{PasswordDigest, SealedSecret, TokenDigest};
    use crate::upcasting::upcasters;

    fn all() -> Vec<EventSchema> {
        event_schemas(&mut SchemaSettings::draft2020_12().into_generator())
    }

    #[test]
    fn every_event_type_is_listed_once() {
        let schemas = all();
        let mut types: Vec<&str> = schemas.iter().map(|s| s.event_type.as_str()).collect();
        let count = types.len();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), count, "a type twice: {types:?}");
        for expected in [
            "organization.created",
            "user.registered",
            "run.queued",
            "tool_call.failed",
            "tool.deleted",
        ] {
            assert!(types.contains(&expected), "{expected} missing: {types:?}");
        }
    }

    #[test]
    fn a_version_above_one_is_listed_for_every_type_an_upcaster_lifts() {
        let upcasters = upcasters();
        for schema in all() {
            let lifted = upcasters
                .iter()
                .any(|upcaster| upcaster.can_upcast(&schema.event_type, "1"));
            assert_eq!(
                lifted,
                schema.version != "1",
                "{}: an upcaster lifts version 1 to a later version, which VERSIONS_ABOVE_ONE must name",
                schema.event_type
            );
        }
        assert_eq!(current_version("organization.created"), "2");
    }

    /// Every `$ref` in `schema` to one of `names`' definitions, however deep.
    fn refers_to(schema: &Value, names: &[String]) -> bool {
        match schema {
            Value::Object(fields) => fields.iter().any(|(key, value)| {
                let to_credential = key == "$ref"
                    && value
                        .as_str()
                        .and_then(|target| target.rsplit('/').next())
                        .is_some_and(|name| names.iter().any(|wanted| wanted == name));
                to_credential || refers_to(value, names)
            }),
            Value::Array(items) => items.iter().any(|item| refers_to(item, names)),
            _ => false,
        }
    }

    #[test]
    fn credential_fields_are_exactly_the_top_level_fields_of_a_credential_type() {
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        let schemas = event_schemas(&mut generator);
        let credentials = [
            PasswordDigest::schema_name().into_owned(),
            TokenDigest::schema_name().into_owned(),
            SealedSecret::schema_name().into_owned(),
        ];
        let mut found = 0;
        for schema in &schemas {
            let properties = schema.data.get("properties").and_then(Value::as_object);
            for (name, property) in properties.into_iter().flatten() {
                let typed = refers_to(property, &credentials);
                found += usize::from(typed);
                assert_eq!(
                    typed,
                    crate::is_credential_field(name),
                    "{}.{name}: a credential type (or one nested inside) exactly when the rule names the field",
                    schema.event_type
                );
            }
        }
        assert!(found >= 8, "digests and sealed secrets are found: {found}");
        for (name, definition) in generator.definitions() {
            if credentials.contains(name) {
                continue;
            }
            assert!(
                !refers_to(definition, &credentials),
                "{name} holds a credential below a payload's top level, where the rule does not look"
            );
        }
    }

    #[test]
    fn a_payload_schema_follows_serde_attributes() {
        let schemas = all();
        let data = |kind: &str| &schemas.iter().find(|s| s.event_type == kind).unwrap().data;

        let failed = data("tool_call.failed");
        for field in ["type", "id", "call_id", "code", "detail"] {
            assert!(
                failed.pointer(&format!("/properties/{field}")).is_some(),
                "flattened {field}: {failed:?}"
            );
        }
        let resumed = data("run.resumed");
        let required = resumed.get("required").unwrap().as_array().unwrap();
        assert!(
            !required.contains(&"skipped_ids".into()),
            "a defaulted field may be absent: {resumed:?}"
        );
        assert!(!required.contains(&"discarded_step".into()), "{resumed:?}");
        assert!(required.contains(&"executor".into()), "{resumed:?}");
    }
}
