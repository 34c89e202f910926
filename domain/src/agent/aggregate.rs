//! The agent aggregate: every version's definition, and the decisions that add one.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AgentChange, AgentCommand, AgentDefinition, AgentError, AgentEvent};
use crate::sink::write_all;

type Decision = Result<Vec<AgentEvent>, AgentError>;

/// An agent of one organization (the aggregate id is the agent id). Every version's definition
/// is kept, so a conversation pinned to a version keeps running with it after later updates.
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct Agent {
    org_id: Option<Uuid>,
    /// Index `n` holds version `n + 1`.
    versions: Vec<AgentDefinition>,
}

impl Agent {
    /// Whether `CreateAgent` has happened.
    pub fn exists(&self) -> bool {
        self.org_id.is_some()
    }

    /// The owning organization; the application compares it with the caller's.
    pub fn org_id(&self) -> Option<Uuid> {
        self.org_id
    }

    /// The latest version number (0 before creation).
    pub fn version(&self) -> u32 {
        u32::try_from(self.versions.len()).unwrap_or(u32::MAX)
    }

    /// The latest definition.
    pub fn latest(&self) -> Option<&AgentDefinition> {
        self.versions.last()
    }

    /// The definition of `version` (1-based), as it was recorded.
    pub fn at_version(&self, version: u32) -> Result<&AgentDefinition, AgentError> {
        let index = usize::try_from(version).ok().and_then(|v| v.checked_sub(1));
        index
            .and_then(|i| self.versions.get(i))
            .ok_or(AgentError::VersionNotFound)
    }

    /// Whether a `CreateAgent` with `definition` (as it would record it, names trimmed) is the
    /// one that created the agent: a request repeated with its idempotency key is, one that
    /// reuses the key for another definition is not, whatever versions came since.
    pub fn created_with(&self, definition: &AgentDefinition) -> bool {
        let first = self.versions.first();
        first.is_some() && definition.clone().validated().ok().as_ref() == first
    }

    fn create(&self, org_id: Uuid, definition: AgentDefinition) -> Decision {
        if self.exists() {
            return Err(AgentError::AlreadyExists);
        }
        Ok(vec![AgentEvent::Created {
            org_id,
            version: 1,
            definition: definition.validated()?,
        }])
    }

    fn update(&self, change: AgentChange) -> Decision {
        let Some(latest) = self.latest() else {
            return Err(AgentError::NotFound);
        };
        if change.is_empty() {
            return Err(AgentError::NothingToUpdate);
        }
        let latest = latest.clone();
        let definition = AgentDefinition {
            name: change.name.unwrap_or(latest.name),
            model: change.model.unwrap_or(latest.model),
            system_prompt: change.system_prompt.unwrap_or(latest.system_prompt),
            tools: change.tools.unwrap_or(latest.tools),
            approval: change.approval.unwrap_or(latest.approval),
            max_steps: change.max_steps.unwrap_or(latest.max_steps),
            temperature: change.temperature.or(latest.temperature),
            max_output_tokens: change.max_output_tokens.or(latest.max_output_tokens),
            approval_timeout_seconds: change
                .approval_timeout_seconds
                .or(latest.approval_timeout_seconds),
        };
        Ok(vec![AgentEvent::Updated {
            version: self.version() + 1,
            definition: definition.validated()?,
        }])
    }
}

impl Aggregate for Agent {
    const TYPE: &'static str = "agent";
    type Command = AgentCommand;
    type Event = AgentEvent;
    type Error = AgentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            AgentCommand::CreateAgent { org_id, definition } => self.create(org_id, definition)?,
            AgentCommand::UpdateAgent { change } => self.update(change)?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AgentEvent::Created {
                org_id, definition, ..
            } => {
                self.org_id = Some(org_id);
                self.versions.push(definition);
            }
            AgentEvent::Updated { definition, .. } => self.versions.push(definition),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::agent::{Approval, ApprovalMode};
    use AgentCommand as C;
    use AgentEvent as E;

    fn agent() -> TestFramework<Agent> {
        TestFramework::with(())
    }

    fn definition(name: &str) -> AgentDefinition {
        AgentDefinition {
            name: name.into(),
            model: "echo".into(),
            system_prompt: "Be brief.\n\tAlways.".into(),
            tools: vec!["search".into(), "send_mail".into()],
            approval: Approval::PerTool(BTreeMap::from([("send_mail".into(), ApprovalMode::Always)])),
            max_steps: 10,
            temperature: Some(0.5),
            max_output_tokens: None,
            approval_timeout_seconds: None,
        }
    }

    fn created(org_id: Uuid, name: &str) -> E {
        E::Created {
            org_id,
            version: 1,
            definition: definition(name),
        }
    }

    fn refused(definition: AgentDefinition, error: AgentError) {
        agent()
            .given_no_previous_events()
            .when(C::CreateAgent {
                org_id: Uuid::new_v4(),
                definition,
            })
            .then_expect_error(error);
    }

    #[test]
    fn creating_records_version_one_with_the_trimmed_name() {
        let org = Uuid::new_v4();
        agent()
            .given_no_previous_events()
            .when(C::CreateAgent {
                org_id: org,
                definition: definition("  Helper "),
            })
            .then_expect_events(vec![created(org, "Helper")]);
    }

    #[test]
    fn an_agent_cannot_be_created_twice() {
        let org = Uuid::new_v4();
        agent()
            .given(vec![created(org, "Helper")])
            .when(C::CreateAgent {
                org_id: org,
                definition: definition("Helper"),
            })
            .then_expect_error(AgentError::AlreadyExists);
    }

    #[test]
    fn each_rule_of_the_definition_is_refused_with_its_own_error() {
        let with = |f: fn(&mut AgentDefinition)| {
            let mut d = definition("Helper");
            f(&mut d);
            d
        };
        refused(with(|d| d.name = " ".into()), AgentError::EmptyName);
        refused(
            with(|d| d.name = "n".repeat(101)),
            AgentError::NameTooLong { max: 100 },
        );
        refused(with(|d| d.model = String::new()), AgentError::EmptyModel);
        refused(
            with(|d| d.model = "m".repeat(101)),
            AgentError::ModelTooLong { max: 100 },
        );
        refused(
            with(|d| d.system_prompt = "p".repeat(32 * 1024 + 1)),
            AgentError::SystemPromptTooLong { max_bytes: 32 * 1024 },
        );
        refused(
            with(|d| d.system_prompt = "a\u{7}b".into()),
            AgentError::SystemPromptControlCharacter,
        );
        refused(
            with(|d| d.tools = (0..33).map(|i| format!("t{i}")).collect()),
            AgentError::TooManyTools { max: 32 },
        );
        refused(
            with(|d| d.tools.push("has space".into())),
            AgentError::InvalidToolName,
        );
        refused(
            with(|d| d.tools.push("t".repeat(65))),
            AgentError::InvalidToolName,
        );
        refused(with(|d| d.tools.push("search".into())), AgentError::DuplicateTool);
        refused(
            with(|d| d.tools.retain(|t| t == "search")),
            AgentError::ApprovalForUnknownTool,
        );
        refused(
            with(|d| d.max_steps = 0),
            AgentError::MaxStepsOutOfRange { max: 100 },
        );
        refused(
            with(|d| d.max_steps = 101),
            AgentError::MaxStepsOutOfRange { max: 100 },
        );
        refused(
            with(|d| d.temperature = Some(2.01)),
            AgentError::TemperatureOutOfRange { max: 2 },
        );
        refused(
            with(|d| d.temperature = Some(f64::NAN)),
            AgentError::TemperatureOutOfRange { max: 2 },
        );
        refused(
            with(|d| d.max_output_tokens = Some(32_769)),
            AgentError::MaxOutputTokensOutOfRange { max: 32_768 },
        );
    }

    #[test]
    fn an_update_records_the_next_version_with_the_unchanged_fields_kept() {
        let org = Uuid::new_v4();
        let change = AgentChange {
            name: Some("Renamed".into()),
            max_steps: Some(3),
            ..AgentChange::default()
        };
        let expected = AgentDefinition {
            name: "Renamed".into(),
            max_steps: 3,
            ..definition("Helper")
        };
        agent()
            .given(vec![
                created(org, "Helper"),
                E::Updated {
                    version: 2,
                    definition: definition("Helper 2"),
                },
            ])
            .when(C::UpdateAgent { change })
            .then_expect_events(vec![E::Updated {
                version: 3,
                definition: expected,
            }]);
    }

    #[test]
    fn an_update_breaking_a_rule_or_changing_nothing_is_refused() {
        let given = vec![created(Uuid::new_v4(), "Helper")];
        let change = AgentChange {
            tools: Some(vec!["search".into()]),
            ..AgentChange::default()
        };
        agent()
            .given(given.clone())
            .when(C::UpdateAgent { change })
            .then_expect_error(AgentError::ApprovalForUnknownTool);
        agent()
            .given(given)
            .when(C::UpdateAgent {
                change: AgentChange::default(),
            })
            .then_expect_error(AgentError::NothingToUpdate);
    }

    #[test]
    fn updating_an_agent_never_created_is_not_found() {
        let change = AgentChange {
            name: Some("x".into()),
            ..AgentChange::default()
        };
        agent()
            .given_no_previous_events()
            .when(C::UpdateAgent { change })
            .then_expect_error(AgentError::NotFound);
    }

    #[test]
    fn every_version_stays_readable_after_updates() {
        let mut state = Agent::default();
        state.apply(created(Uuid::new_v4(), "First"));
        state.apply(E::Updated {
            version: 2,
            definition: definition("Second"),
        });
        assert_eq!(state.version(), 2);
        assert_eq!(state.at_version(1).unwrap().name, "First");
        assert_eq!(state.latest().unwrap().name, "Second");
        assert_eq!(state.at_version(0), Err(AgentError::VersionNotFound));
        assert_eq!(state.at_version(3), Err(AgentError::VersionNotFound));
    }

    #[test]
    fn approval_is_stored_as_a_word_or_a_map_and_every_tag_is_its_event_type() {
        let all = AgentDefinition {
            approval: Approval::All(ApprovalMode::Always),
            ..definition("A")
        };
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(json["approval"], "always");
        assert!(json.get("max_output_tokens").is_none());
        let per_tool = serde_json::to_value(definition("A")).unwrap();
        assert_eq!(per_tool["approval"], serde_json::json!({"send_mail": "always"}));
        for event in [
            created(Uuid::new_v4(), "A"),
            E::Updated {
                version: 2,
                definition: all,
            },
        ] {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
            assert_eq!(serde_json::from_value::<AgentEvent>(json).unwrap(), event);
        }
    }
}
