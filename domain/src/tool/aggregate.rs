//! The tool aggregate: the latest definition, the sealed secret, and the decisions that change
//! them.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ToolChange, ToolCommand, ToolDefinition, ToolError, ToolEvent};
use crate::secret::SealedSecret;
use crate::sink::write_all;

type Decision = Result<Vec<ToolEvent>, ToolError>;

/// The namespace of tool ids (UUID v5). Fixed forever: changing it would give every existing
/// tool a new id.
const TOOL_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7693_8288_6c10_4568_a002_2a2a_e447_3176);

/// The id of the tool named `name` in organization `org_id`: a UUID v5 of both, so creating a
/// second tool with a name already taken lands on the first one's aggregate and is refused,
/// with no claim aggregate and no read model to consult.
pub fn tool_id(org_id: Uuid, name: &str) -> Uuid {
    // Names never hold `:`, so the pair is unambiguous.
    Uuid::new_v5(&TOOL_ID_NAMESPACE, format!("{org_id}:{name}").as_bytes())
}

/// An HTTP tool of one organization (the aggregate id is [`tool_id`]). Only the latest
/// definition is kept: runs resolve tools by name at call time, and older versions stay in
/// the event log.
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct Tool {
    org_id: Option<Uuid>,
    /// The latest version number; kept across a deletion so a re-created tool goes on counting.
    version: u32,
    /// `None` before creation and after deletion.
    latest: Option<ToolDefinition>,
    secret: Option<SealedSecret>,
    secret_rotated_at: Option<DateTime<Utc>>,
}

impl Tool {
    /// Whether the tool exists now (created and not deleted since).
    pub fn exists(&self) -> bool {
        self.latest.is_some()
    }

    /// The owning organization; the application compares it with the caller's.
    pub fn org_id(&self) -> Option<Uuid> {
        self.org_id
    }

    /// The latest version number (0 before creation).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The latest definition, unless deleted.
    pub fn latest(&self) -> Option<&ToolDefinition> {
        self.latest.as_ref()
    }

    /// The current signing secret, sealed, unless deleted.
    pub fn secret(&self) -> Option<&SealedSecret> {
        self.secret.as_ref().filter(|_| self.exists())
    }

    /// When the current secret was set (at creation or by the latest rotation).
    pub fn secret_rotated_at(&self) -> Option<DateTime<Utc>> {
        self.secret_rotated_at.filter(|_| self.exists())
    }

    fn create(
        &self,
        org_id: Uuid,
        definition: ToolDefinition,
        secret: SealedSecret,
        at: DateTime<Utc>,
    ) -> Decision {
        if self.exists() {
            return Err(ToolError::AlreadyExists);
        }
        Ok(vec![ToolEvent::Created {
            org_id,
            version: self.version + 1,
            definition: definition.validated()?,
            secret,
            at,
        }])
    }

    fn update(&self, change: ToolChange) -> Decision {
        let Some(latest) = self.latest() else {
            return Err(ToolError::NotFound);
        };
        if change.name.as_ref().is_some_and(|name| *name != latest.name) {
            return Err(ToolError::NameImmutable);
        }
        if change.is_empty() {
            return Err(ToolError::NothingToUpdate);
        }
        let latest = latest.clone();
        let definition = ToolDefinition {
            name: latest.name,
            description: change.description.unwrap_or(latest.description),
            parameters: change.parameters.unwrap_or(latest.parameters),
            url: change.url.unwrap_or(latest.url),
            timeout_ms: change.timeout_ms.unwrap_or(latest.timeout_ms),
        };
        Ok(vec![ToolEvent::Updated {
            version: self.version + 1,
            definition: definition.validated()?,
        }])
    }

    fn rotate(&self, secret: SealedSecret, at: DateTime<Utc>) -> Decision {
        if !self.exists() {
            return Err(ToolError::NotFound);
        }
        Ok(vec![ToolEvent::SecretRotated { secret, at }])
    }

    fn delete(&self) -> Decision {
        if !self.exists() {
            return Err(ToolError::NotFound);
        }
        Ok(vec![ToolEvent::Deleted])
    }
}

impl Aggregate for Tool {
    const TYPE: &'static str = "tool";
    type Command = ToolCommand;
    type Event = ToolEvent;
    type Error = ToolError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            ToolCommand::CreateTool {
                org_id,
                definition,
                secret,
                at,
            } => self.create(org_id, definition, secret, at)?,
            ToolCommand::UpdateTool { change } => self.update(change)?,
            ToolCommand::RotateSecret { secret, at } => self.rotate(secret, at)?,
            ToolCommand::DeleteTool => self.delete()?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ToolEvent::Created {
                org_id,
                version,
                definition,
                secret,
                at,
            } => {
                self.org_id = Some(org_id);
                self.version = version;
                self.latest = Some(definition);
                self.secret = Some(secret);
                self.secret_rotated_at = Some(at);
            }
            ToolEvent::Updated { version, definition } => {
                self.version = version;
                self.latest = Some(definition);
            }
            ToolEvent::SecretRotated { secret, at } => {
                self.secret = Some(secret);
                self.secret_rotated_at = Some(at);
            }
            ToolEvent::Deleted => {
                self.latest = None;
                self.secret = None;
                self.secret_rotated_at = None;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;
    use serde_json::json;

    use super::*;
    use ToolCommand as C;
    use ToolEvent as E;

    fn tool() -> TestFramework<Tool> {
        TestFramework::with(())
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn definition(name: &str) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            description: "Looks up the weather.\n\tBy city.".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            url: "https://tools.example.com/weather".into(),
            timeout_ms: 10_000,
        }
    }

    fn sealed(n: u8) -> SealedSecret {
        SealedSecret::new(format!("v1.k.nonce{n}.ct{n}"))
    }

    fn created(org_id: Uuid, version: u32) -> E {
        E::Created {
            org_id,
            version,
            definition: definition("weather"),
            secret: sealed(1),
            at: at(),
        }
    }

    fn create(definition: ToolDefinition) -> C {
        C::CreateTool {
            org_id: Uuid::from_u128(1),
            definition,
            secret: sealed(1),
            at: at(),
        }
    }

    fn refused(definition: ToolDefinition, error: ToolError) {
        tool()
            .given_no_previous_events()
            .when(create(definition))
            .then_expect_error(error);
    }

    #[test]
    fn creating_records_version_one_with_the_description_trimmed_and_the_url_normalized() {
        let given = ToolDefinition {
            description: "  Looks up the weather.\n\tBy city. \n".into(),
            url: "HTTPS://Tools.Example.com/weather".into(),
            ..definition("weather")
        };
        tool()
            .given_no_previous_events()
            .when(create(given))
            .then_expect_events(vec![created(Uuid::from_u128(1), 1)]);
    }

    #[test]
    fn a_name_taken_is_refused() {
        tool()
            .given(vec![created(Uuid::from_u128(1), 1)])
            .when(create(definition("weather")))
            .then_expect_error(ToolError::AlreadyExists);
    }

    #[test]
    fn the_id_is_derived_from_the_organization_and_the_name() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(tool_id(a, "weather"), tool_id(a, "weather"));
        assert_ne!(tool_id(a, "weather"), tool_id(b, "weather"));
        assert_ne!(tool_id(a, "weather"), tool_id(a, "Weather"));
        assert_eq!(tool_id(a, "weather").get_version_num(), 5);
    }

    #[test]
    fn each_rule_of_the_definition_is_refused_with_its_own_error() {
        let with = |f: fn(&mut ToolDefinition)| {
            let mut d = definition("weather");
            f(&mut d);
            d
        };
        refused(with(|d| d.name = String::new()), ToolError::InvalidName);
        refused(with(|d| d.name = "has space".into()), ToolError::InvalidName);
        refused(with(|d| d.name = "t".repeat(65)), ToolError::InvalidName);
        refused(with(|d| d.name = "wé".into()), ToolError::InvalidName);
        refused(
            with(|d| d.description = " \n ".into()),
            ToolError::EmptyDescription,
        );
        refused(
            with(|d| d.description = "d".repeat(1025)),
            ToolError::DescriptionTooLong { max: 1024 },
        );
        refused(
            with(|d| d.description = "a\u{7}b".into()),
            ToolError::DescriptionControlCharacter,
        );
        refused(
            with(|d| d.parameters = json!({"type": "string"})),
            ToolError::ParametersNotAnObject,
        );
        refused(
            with(|d| d.parameters = json!([])),
            ToolError::ParametersNotAnObject,
        );
        refused(
            with(|d| d.parameters = json!({})),
            ToolError::ParametersNotAnObject,
        );
        refused(
            with(|d| d.parameters = json!({"type": "object", "description": "x".repeat(16 * 1024)})),
            ToolError::ParametersTooLarge { max_bytes: 16 * 1024 },
        );
        refused(with(|d| d.url = "not a url".into()), ToolError::InvalidUrl);
        refused(with(|d| d.url = "/relative".into()), ToolError::InvalidUrl);
        refused(
            with(|d| d.url = "https://a.example/x\ty".into()),
            ToolError::InvalidUrl,
        );
        refused(
            with(|d| d.url = "ftp://files.example.com/x".into()),
            ToolError::UrlNotHttp,
        );
        refused(
            with(|d| d.url = "file:///etc/passwd".into()),
            ToolError::UrlNotHttp,
        );
        refused(
            with(|d| d.url = "https://user:pw@tools.example.com/".into()),
            ToolError::UrlHasCredentials,
        );
        refused(
            with(|d| d.url = format!("https://tools.example.com/{}", "p".repeat(2048))),
            ToolError::UrlTooLong { max_bytes: 2048 },
        );
        refused(
            with(|d| d.timeout_ms = 999),
            ToolError::TimeoutOutOfRange {
                min: 1_000,
                max: 60_000,
            },
        );
        refused(
            with(|d| d.timeout_ms = 60_001),
            ToolError::TimeoutOutOfRange {
                min: 1_000,
                max: 60_000,
            },
        );
    }

    #[test]
    fn an_update_records_the_next_version_with_the_unchanged_fields_kept() {
        let change = ToolChange {
            name: Some("weather".into()),
            timeout_ms: Some(2_000),
            ..ToolChange::default()
        };
        tool()
            .given(vec![created(Uuid::from_u128(1), 1)])
            .when(C::UpdateTool { change })
            .then_expect_events(vec![E::Updated {
                version: 2,
                definition: ToolDefinition {
                    timeout_ms: 2_000,
                    ..definition("weather")
                },
            }]);
    }

    #[test]
    fn an_update_renaming_changing_nothing_or_breaking_a_rule_is_refused() {
        let given = vec![created(Uuid::from_u128(1), 1)];
        let cases = [
            (
                ToolChange {
                    name: Some("climate".into()),
                    description: Some("x".into()),
                    ..ToolChange::default()
                },
                ToolError::NameImmutable,
            ),
            (
                ToolChange {
                    name: Some("weather".into()),
                    ..ToolChange::default()
                },
                ToolError::NothingToUpdate,
            ),
            (
                ToolChange {
                    url: Some("gopher://x".into()),
                    ..ToolChange::default()
                },
                ToolError::UrlNotHttp,
            ),
        ];
        for (change, error) in cases {
            tool()
                .given(given.clone())
                .when(C::UpdateTool { change })
                .then_expect_error(error);
        }
    }

    #[test]
    fn a_rotation_replaces_the_sealed_secret_and_keeps_the_version() {
        let mut state = Tool::default();
        state.apply(created(Uuid::from_u128(1), 1));
        let later = at() + chrono::TimeDelta::seconds(60);
        state.apply(E::SecretRotated {
            secret: sealed(2),
            at: later,
        });
        assert_eq!(state.secret(), Some(&sealed(2)));
        assert_eq!(state.secret_rotated_at(), Some(later));
        assert_eq!(state.version(), 1);
    }

    #[test]
    fn a_deleted_tool_is_not_found_and_its_name_can_be_created_again_at_the_next_version() {
        let given = vec![created(Uuid::from_u128(1), 1), E::Deleted];
        for command in [
            C::DeleteTool,
            C::RotateSecret {
                secret: sealed(2),
                at: at(),
            },
            C::UpdateTool {
                change: ToolChange {
                    timeout_ms: Some(2_000),
                    ..ToolChange::default()
                },
            },
        ] {
            tool()
                .given(given.clone())
                .when(command)
                .then_expect_error(ToolError::NotFound);
        }
        tool()
            .given(given)
            .when(create(definition("weather")))
            .then_expect_events(vec![created(Uuid::from_u128(1), 2)]);
        let mut state = Tool::default();
        state.apply(created(Uuid::from_u128(1), 1));
        state.apply(E::Deleted);
        assert!(!state.exists());
        assert_eq!((state.secret(), state.secret_rotated_at()), (None, None));
    }

    #[test]
    fn every_tag_is_its_event_type_and_the_secret_is_stored_as_its_sealed_string() {
        let events = [
            created(Uuid::from_u128(1), 1),
            E::Updated {
                version: 2,
                definition: definition("weather"),
            },
            E::SecretRotated {
                secret: sealed(2),
                at: at(),
            },
            E::Deleted,
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
            assert_eq!(serde_json::from_value::<ToolEvent>(json).unwrap(), event);
        }
        let json = serde_json::to_value(created(Uuid::from_u128(1), 1)).unwrap();
        assert_eq!(json["secret"], "v1.k.nonce1.ct1");
    }
}
