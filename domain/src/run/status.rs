//! Where a run stands.

use serde::{Deserialize, Serialize};

/// A run's status, as the contract names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for an executor (new, or after its approvals were decided).
    #[default]
    Queued,
    /// An executor is working on it.
    Running,
    /// A tool call waits for a person's decision; no executor holds the run.
    AwaitingApproval,
    /// The organization's credits do not cover the next model call; no executor holds the run,
    /// and it goes on by itself once credits arrive (or is cancelled).
    AwaitingCredits,
    /// The agent answered.
    Completed,
    /// It stopped on an error (the event says which).
    Failed,
    /// Someone cancelled it.
    Cancelled,
}

impl RunStatus {
    /// Whether nothing more will happen to the run.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The status named `name` ([`as_str`](Self::as_str)'s inverse).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::AwaitingApproval,
            Self::AwaitingCredits,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }

    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::AwaitingApproval => "awaiting_approval",
            Self::AwaitingCredits => "awaiting_credits",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}
