//! Conversations, runs and usage read from their views (the `conversations`, `run_history`
//! and `usage` projectors), not folded from the log: a list of a hundred runs is one query, not
//! a hundred loads of every event of each.
//!
//! A view follows the log a moment behind. Every read here first waits until the view holds
//! every event committed before the request (on any node): a client that just started a run or
//! read its stream's terminal event finds it. A view that cannot catch up within the wait
//! answers 503 `catching_up` (a stuck projector is loud, never a silently stale answer).

use chrono::NaiveDate;
use domain::conversation::ConversationError;
use projections::conversations::queries as conversation_queries;
use projections::runs::queries::{HistoryRun, RunFilter, runs_page};
use projections::usage::{Period, UsagePeriod, usage_by_period};
use projections::{CONVERSATIONS, RUN_HISTORY, USAGE};
use std::time::Duration;
use uuid::Uuid;

use super::{
    ConversationPage, ConversationSummary, ConversationView, RunPage, RunService, RunView, RunsError,
};
use crate::identity::{Caller, IdentityError};
use crate::pages::MAX_PAGE;

/// How long a read waits for a view to reach the log's head before answering `catching_up`.
const VIEW_WAIT: Duration = Duration::from_secs(2);

impl RunService {
    /// A conversation of the caller's organization with every message.
    pub async fn conversation(&self, caller: &Caller, id: Uuid) -> Result<ConversationView, RunsError> {
        let org_id = caller.org()?;
        self.caught_up(CONVERSATIONS).await?;
        let (conversation, messages) = conversation_queries::conversation(&self.pool, org_id, id)
            .await?
            .ok_or(ConversationError::NotFound)?;
        Ok(ConversationView {
            id,
            agent_id: conversation.agent_id,
            agent_version: conversation.agent_version,
            title: conversation.title,
            archived: conversation.archived,
            active_run: conversation.active_run,
            messages,
        })
    }

    /// The caller's organization's conversations, newest first, `limit` at a time from
    /// `cursor` (a previous page's `next_cursor`).
    pub async fn conversations(
        &self,
        caller: &Caller,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<ConversationPage, RunsError> {
        let org_id = caller.org()?;
        self.caught_up(CONVERSATIONS).await?;
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        let mut rows =
            conversation_queries::conversations_page(&self.pool, org_id, limit + 1, cursor).await?;
        let next_cursor = next_cursor(&mut rows, limit, |row| row.position);
        let conversations = rows
            .into_iter()
            .map(|row| ConversationSummary {
                id: row.id,
                agent_id: row.agent_id,
                agent_version: row.agent_version,
                title: row.title,
                archived: row.archived,
                active_run: row.active_run,
                runs: row.runs,
            })
            .collect();
        Ok(ConversationPage {
            conversations,
            next_cursor,
        })
    }

    /// A conversation's runs, newest first, `limit` at a time from `cursor`.
    pub async fn conversation_runs(
        &self,
        caller: &Caller,
        conversation_id: Uuid,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<RunPage, RunsError> {
        self.conversation_in_org(caller.org()?, conversation_id).await?;
        let filter = RunFilter {
            conversation_id: Some(conversation_id),
            status: None,
        };
        self.runs_where(caller, &filter, limit, cursor).await
    }

    /// The run history of the caller's organization: its runs matching `filter`, newest first,
    /// `limit` at a time from `cursor`.
    pub async fn runs_where(
        &self,
        caller: &Caller,
        filter: &RunFilter,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<RunPage, RunsError> {
        let org_id = caller.org()?;
        self.caught_up(RUN_HISTORY).await?;
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        let mut rows = runs_page(&self.pool, org_id, filter, limit + 1, cursor).await?;
        let next_cursor = next_cursor(&mut rows, limit, |row| row.position);
        Ok(RunPage {
            runs: rows.into_iter().map(run_from_history).collect(),
            next_cursor,
        })
    }

    /// The caller's organization's usage per `period` over the days `from..=to` (owners,
    /// admins and auditors).
    pub async fn usage(
        &self,
        caller: &Caller,
        period: Period,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UsagePeriod>, RunsError> {
        let org_id = caller.org()?;
        caller.require(domain::Role::can_read_audit, "read the organization's usage")?;
        self.caught_up(USAGE).await?;
        Ok(usage_by_period(&self.pool, org_id, period, from, to).await?)
    }

    /// Waits until the view `name` holds every event committed before this call.
    async fn caught_up(&self, name: &str) -> Result<(), RunsError> {
        if self.progress.caught_up_with_log(name, VIEW_WAIT).await? {
            return Ok(());
        }
        tracing::warn!(view = name, "read model is behind the log; answering catching_up");
        Err(IdentityError::CatchingUp.into())
    }
}

/// Trims a page read with one row more than `limit` and answers the next page's cursor.
fn next_cursor<T>(rows: &mut Vec<T>, limit: i64, position: impl Fn(&T) -> i64) -> Option<i64> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    rows.last().map(position).filter(|_| more)
}

fn run_from_history(run: HistoryRun) -> RunView {
    RunView {
        id: run.id,
        conversation_id: run.conversation_id,
        status: run.status,
        input: run.input,
        output: run.output,
        error: run.error,
        steps: run.steps,
        usage: run.usage,
        last_event_id: run.last_event_id,
    }
}
