//! The conversation aggregate: which agent version it uses, its runs, and the one active run.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ConversationCommand, ConversationError, ConversationEvent, MAX_INPUT_BYTES, MAX_TITLE_CHARS};
use crate::sink::write_all;
use crate::text::{TextError, trimmed};

type Decision = Result<Vec<ConversationEvent>, ConversationError>;

/// The run a conversation is busy with, and its input (kept until the run ends, so an
/// interrupted start can still record the run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRun {
    /// The run.
    pub run_id: Uuid,
    /// The user's input.
    pub input: String,
}

/// A conversation of one organization (the aggregate id is the conversation id). The state
/// stays small: run ids, never the transcript, which is read from the runs' events.
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct Conversation {
    org_id: Option<Uuid>,
    agent_id: Uuid,
    agent_version: u32,
    title: Option<String>,
    runs: Vec<Uuid>,
    active: Option<ActiveRun>,
    archived: bool,
}

impl Conversation {
    /// Whether `Create` has happened.
    pub fn exists(&self) -> bool {
        self.org_id.is_some()
    }

    /// The owning organization.
    pub fn org_id(&self) -> Option<Uuid> {
        self.org_id
    }

    /// The agent.
    pub fn agent_id(&self) -> Uuid {
        self.agent_id
    }

    /// The agent version every run uses.
    pub fn agent_version(&self) -> u32 {
        self.agent_version
    }

    /// The label, if any.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> &[Uuid] {
        &self.runs
    }

    /// The run not yet ended, if any.
    pub fn active_run(&self) -> Option<&ActiveRun> {
        self.active.as_ref()
    }

    /// Whether it takes no new runs.
    pub fn is_archived(&self) -> bool {
        self.archived
    }

    /// Whether a `Create` with this agent and title (as it would record it, trimmed) is the one
    /// that created the conversation: a request repeated with its idempotency key is, one that
    /// reuses the key for something else is not.
    pub fn created_with(&self, agent_id: Uuid, title: Option<&str>) -> bool {
        let title = title.map(str::trim).filter(|title| !title.is_empty());
        self.exists() && self.agent_id == agent_id && self.title.as_deref() == title
    }

    fn create(&self, org_id: Uuid, agent_id: Uuid, agent_version: u32, title: Option<String>) -> Decision {
        if self.exists() {
            return Err(ConversationError::AlreadyExists);
        }
        let title = match title {
            Some(title) => match trimmed(&title, MAX_TITLE_CHARS, true) {
                Ok(title) if title.is_empty() => None,
                Ok(title) => Some(title),
                Err(TextError::TooLong | TextError::Empty) => {
                    return Err(ConversationError::TitleTooLong { max: MAX_TITLE_CHARS });
                }
            },
            None => None,
        };
        Ok(vec![ConversationEvent::Created {
            org_id,
            agent_id,
            agent_version,
            title,
        }])
    }

    fn start_run(&self, run_id: Uuid, input: String) -> Decision {
        if !self.exists() {
            return Err(ConversationError::NotFound);
        }
        if self.runs.contains(&run_id) {
            return Err(ConversationError::RunAlreadyStarted { run_id });
        }
        if let Some(active) = &self.active {
            return Err(ConversationError::RunActive {
                run_id: active.run_id,
            });
        }
        if self.archived {
            return Err(ConversationError::Archived);
        }
        check_input(&input)?;
        Ok(vec![ConversationEvent::RunStarted { run_id, input }])
    }

    fn end_run(&self, run_id: Uuid) -> Decision {
        if !self.exists() {
            return Err(ConversationError::NotFound);
        }
        Ok(match &self.active {
            Some(active) if active.run_id == run_id => vec![ConversationEvent::RunEnded { run_id }],
            _ => Vec::new(),
        })
    }

    fn archive(&self) -> Decision {
        if !self.exists() {
            return Err(ConversationError::NotFound);
        }
        Ok(if self.archived {
            Vec::new()
        } else {
            vec![ConversationEvent::Archived]
        })
    }
}

/// The rules for a run's input: not blank, at most [`MAX_INPUT_BYTES`], no control characters
/// but newline, carriage return and tab.
pub fn check_input(input: &str) -> Result<(), ConversationError> {
    if input.trim().is_empty() {
        return Err(ConversationError::EmptyInput);
    }
    if input.len() > MAX_INPUT_BYTES {
        return Err(ConversationError::InputTooLong {
            max_bytes: MAX_INPUT_BYTES,
        });
    }
    if input
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ConversationError::InputControlCharacter);
    }
    Ok(())
}

impl Aggregate for Conversation {
    const TYPE: &'static str = "conversation";
    type Command = ConversationCommand;
    type Event = ConversationEvent;
    type Error = ConversationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            ConversationCommand::Create {
                org_id,
                agent_id,
                agent_version,
                title,
            } => self.create(org_id, agent_id, agent_version, title)?,
            ConversationCommand::StartRun { run_id, input } => self.start_run(run_id, input)?,
            ConversationCommand::EndRun { run_id } => self.end_run(run_id)?,
            ConversationCommand::Archive => self.archive()?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ConversationEvent::Created {
                org_id,
                agent_id,
                agent_version,
                title,
            } => {
                self.org_id = Some(org_id);
                self.agent_id = agent_id;
                self.agent_version = agent_version;
                self.title = title;
            }
            ConversationEvent::RunStarted { run_id, input } => {
                self.runs.push(run_id);
                self.active = Some(ActiveRun { run_id, input });
            }
            ConversationEvent::RunEnded { run_id } => {
                if self.active.as_ref().is_some_and(|active| active.run_id == run_id) {
                    self.active = None;
                }
            }
            ConversationEvent::Archived => self.archived = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn created() -> ConversationEvent {
        ConversationEvent::Created {
            org_id: Uuid::from_u128(1),
            agent_id: Uuid::from_u128(2),
            agent_version: 3,
            title: None,
        }
    }

    fn start(run: u128) -> ConversationCommand {
        ConversationCommand::StartRun {
            run_id: Uuid::from_u128(run),
            input: "hello".to_owned(),
        }
    }

    #[test]
    fn a_second_run_is_refused_while_the_first_is_active_and_taken_once_it_ended() {
        let first = ConversationEvent::RunStarted {
            run_id: Uuid::from_u128(10),
            input: "hello".to_owned(),
        };
        TestFramework::<Conversation>::with(())
            .given(vec![created(), first.clone()])
            .when(start(11))
            .then_expect_error(ConversationError::RunActive {
                run_id: Uuid::from_u128(10),
            });
        TestFramework::<Conversation>::with(())
            .given(vec![
                created(),
                first,
                ConversationEvent::RunEnded {
                    run_id: Uuid::from_u128(10),
                },
            ])
            .when(start(11))
            .then_expect_events(vec![ConversationEvent::RunStarted {
                run_id: Uuid::from_u128(11),
                input: "hello".to_owned(),
            }]);
    }

    #[test]
    fn a_run_started_before_is_not_started_again_active_or_ended() {
        let first = ConversationEvent::RunStarted {
            run_id: Uuid::from_u128(10),
            input: "hello".to_owned(),
        };
        let refused = ConversationError::RunAlreadyStarted {
            run_id: Uuid::from_u128(10),
        };
        TestFramework::<Conversation>::with(())
            .given(vec![created(), first.clone()])
            .when(start(10))
            .then_expect_error(refused.clone());
        TestFramework::<Conversation>::with(())
            .given(vec![
                created(),
                first,
                ConversationEvent::RunEnded {
                    run_id: Uuid::from_u128(10),
                },
            ])
            .when(start(10))
            .then_expect_error(refused);
    }

    #[test]
    fn created_with_tells_the_same_creation_from_another() {
        let mut conversation = Conversation::default();
        assert!(!conversation.created_with(Uuid::from_u128(2), None));
        conversation.apply(ConversationEvent::Created {
            org_id: Uuid::from_u128(1),
            agent_id: Uuid::from_u128(2),
            agent_version: 3,
            title: Some("Trip".to_owned()),
        });
        assert!(conversation.created_with(Uuid::from_u128(2), Some(" Trip ")));
        assert!(!conversation.created_with(Uuid::from_u128(2), Some("Other")));
        assert!(!conversation.created_with(Uuid::from_u128(2), None));
        assert!(!conversation.created_with(Uuid::from_u128(9), Some("Trip")));
    }

    #[test]
    fn ending_a_run_that_is_not_active_records_nothing() {
        TestFramework::<Conversation>::with(())
            .given(vec![created()])
            .when(ConversationCommand::EndRun {
                run_id: Uuid::from_u128(10),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_archived_conversation_takes_no_run() {
        TestFramework::<Conversation>::with(())
            .given(vec![created(), ConversationEvent::Archived])
            .when(start(11))
            .then_expect_error(ConversationError::Archived);
    }

    #[test]
    fn input_rules() {
        assert_eq!(check_input("  \n"), Err(ConversationError::EmptyInput));
        assert_eq!(
            check_input("a\u{1b}b"),
            Err(ConversationError::InputControlCharacter)
        );
        assert!(check_input("line one\nline two\ttab").is_ok());
        assert!(matches!(
            check_input(&"x".repeat(MAX_INPUT_BYTES + 1)),
            Err(ConversationError::InputTooLong { .. })
        ));
    }
}
