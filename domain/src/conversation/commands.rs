//! Commands of the conversation aggregate.

use uuid::Uuid;

/// What a caller (or the runtime) asks of a conversation.
#[derive(Clone, Debug, PartialEq)]
pub enum ConversationCommand {
    /// Start a conversation with an agent at one version.
    Create {
        /// The organization.
        org_id: Uuid,
        /// The agent.
        agent_id: Uuid,
        /// The agent's version, kept for every run of the conversation.
        agent_version: u32,
        /// An optional label (trimmed; blank means none).
        title: Option<String>,
    },
    /// Claim the conversation for a new run: refused while another run is active.
    StartRun {
        /// The new run's id.
        run_id: Uuid,
        /// What the user said (kept here until the run is recorded, so an interrupted start can
        /// be finished from this event alone).
        input: String,
    },
    /// The run ended (completed, failed or cancelled): the conversation takes runs again. A
    /// run that is not the active one changes nothing.
    EndRun {
        /// The run that ended.
        run_id: Uuid,
    },
    /// No new runs from now on; the conversation stays readable.
    Archive,
}
