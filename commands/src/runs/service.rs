//! The conversations and runs application service.

use eventstore::RequestOrigin;
use std::sync::Arc;

use domain::Role;
use domain::agent::{Agent, AgentDefinition, AgentError};
use domain::conversation::{Conversation, ConversationCommand, ConversationError, check_input};
use domain::idempotency::IdempotencyKey;
use domain::run::{Run, RunCommand, RunError, RunEvent, RunStatus};
use eventstore::log::FollowerProgress;
use eventstore::{CommandBus, CommandContext, CommandError, CommitObserver, DecidedWith, EventStore};
use sqlx::PgPool;
use uuid::Uuid;

use super::waiting::{self, SweepHorizon, WaitingRun};
use super::{RunDispatch, RunsError, StepView, TranscriptMessage, steps_of, transcript_of};
use crate::identity::{Caller, GuardedCaller, IdentityError, IdentityService};
use crate::quotas::QuotaService;

use crate::pages::MAX_PAGE;

/// A conversation with its messages.
#[derive(Clone, Debug)]
pub struct ConversationView {
    /// The conversation's id.
    pub id: Uuid,
    /// The agent and the version every run uses.
    pub agent_id: Uuid,
    /// The agent version.
    pub agent_version: u32,
    /// Its label.
    pub title: Option<String>,
    /// Whether it takes no new runs.
    pub archived: bool,
    /// The run not yet ended.
    pub active_run: Option<Uuid>,
    /// Every message, oldest first.
    pub messages: Vec<TranscriptMessage>,
}

/// A conversation as listed.
#[derive(Clone, Debug)]
pub struct ConversationSummary {
    /// The conversation's id.
    pub id: Uuid,
    /// The agent.
    pub agent_id: Uuid,
    /// The agent version.
    pub agent_version: u32,
    /// Its label.
    pub title: Option<String>,
    /// Whether it takes no new runs.
    pub archived: bool,
    /// The run not yet ended.
    pub active_run: Option<Uuid>,
    /// How many runs it has had.
    pub runs: usize,
}

/// One page of conversations, newest first.
#[derive(Clone, Debug)]
pub struct ConversationPage {
    /// This page.
    pub conversations: Vec<ConversationSummary>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// A run with its steps.
#[derive(Clone, Debug)]
pub struct RunView {
    /// The run's id.
    pub id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// Where it stands.
    pub status: RunStatus,
    /// The user's input.
    pub input: String,
    /// The final answer, once completed.
    pub output: Option<String>,
    /// Why it failed: (code, detail).
    pub error: Option<(String, String)>,
    /// Its model calls and tool calls.
    pub steps: Vec<StepView>,
    /// Tokens and credits: (prompt, completion, credits).
    pub usage: (u64, u64, u64),
    /// The last stream id recorded (a stream reader resumes after it).
    pub last_event_id: u64,
}

/// One page of a conversation's runs, newest first.
#[derive(Clone, Debug)]
pub struct RunPage {
    /// This page.
    pub runs: Vec<RunView>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// A tool call awaiting a person's decision.
#[derive(Clone, Debug)]
pub struct PendingApproval {
    /// The run.
    pub run_id: Uuid,
    /// The call.
    pub call_id: Uuid,
    /// The tool.
    pub name: String,
    /// The arguments as the model wrote them.
    pub arguments: String,
    /// When it is denied with reason `expired`, if the agent set a timeout.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One page of pending approvals, newest first.
#[derive(Clone, Debug)]
pub struct ApprovalPage {
    /// This page.
    pub approvals: Vec<PendingApproval>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// Calls recorded as awaiting approval that no later event of their run decided or ended.
const PENDING_CALLS: &str = "
    SELECT r.aggregate_id, r.payload -> 'call', r.position FROM events r
     WHERE r.aggregate_type = 'run' AND r.event_type = 'tool_call.requested'
       AND (r.payload -> 'call' ->> 'approval') = 'pending'
       AND NOT EXISTS (
           SELECT 1 FROM events d
            WHERE d.aggregate_type = 'run' AND d.aggregate_id = r.aggregate_id AND d.sequence > r.sequence
              AND (d.event_type IN ('run.completed', 'run.failed', 'run.cancelled')
                   OR (d.event_type IN ('tool_call.approved', 'tool_call.denied')
                       AND (d.payload ->> 'call_id') = (r.payload -> 'call' ->> 'call_id'))))";

/// How many times a conversation's creation decides again after the agent (or the caller's
/// standing) changed between the read and the append, before answering that it keeps changing.
const AGENT_CHANGED_ATTEMPTS: usize = 5;

/// Conversations and runs: one per process, shared by every route and the executor.
pub struct RunService {
    pub(super) pool: PgPool,
    pub(super) store: EventStore,
    /// Where the conversation, run history and usage views stand (reads wait for a write of a
    /// moment ago to reach them).
    pub(super) progress: FollowerProgress,
    agents: CommandBus<Agent>,
    pub(super) conversations: CommandBus<Conversation>,
    pub(super) runs: Arc<CommandBus<Run>>,
    pub(super) dispatch: Arc<dyn RunDispatch>,
    /// The organizations' credits, when runs are billed (every process the CLI starts).
    pub(super) billing: Option<Arc<crate::billing::BillingService>>,
    quotas: Arc<QuotaService>,
}

impl RunService {
    /// A service over `store` that hands runs to `dispatch` and reads lists from the views
    /// whose progress `progress` follows.
    pub fn new(store: &EventStore, dispatch: Arc<dyn RunDispatch>, progress: FollowerProgress) -> Self {
        let quotas = Arc::new(QuotaService::new(store.pool().clone(), progress.clone()));
        Self {
            pool: store.pool().clone(),
            store: store.clone(),
            progress,
            agents: CommandBus::new(store.clone(), ()),
            conversations: CommandBus::new(store.clone(), ()),
            runs: Arc::new(CommandBus::new(store.clone(), ())),
            dispatch,
            billing: None,
            quotas,
        }
    }

    /// The same service, telling `observer` of every run event it commits (from the API, the
    /// executor or a sweep): how a run's events reach its live streams without waiting for
    /// the log. Call it before the service is shared.
    pub fn with_run_observer(mut self, observer: Arc<dyn CommitObserver<Run>>) -> Self {
        self.runs = Arc::new(CommandBus::new(self.store.clone(), ()).with_observer(observer));
        self
    }

    /// The organizations' plan limits this service enforces when a run starts (shared with the
    /// HTTP layer, which enforces the request rate, and the quota report).
    pub fn quotas(&self) -> &Arc<QuotaService> {
        &self.quotas
    }

    /// The runs' command bus, shared with the executor so both see one cache.
    pub fn runs(&self) -> &CommandBus<Run> {
        &self.runs
    }

    /// Starts a conversation with an agent of the caller's organization, pinned at the agent's
    /// latest version (owners, admins, members).
    ///
    /// Neither the agent nor the caller's standing needs a query when this process knows them:
    /// the append commits only if the agent has not changed since and the caller's standing is
    /// still the one it was authorized with, both checked in the append's own statement. So the
    /// version pinned is the agent's latest at that moment whichever node updated it, and a
    /// member removed (a session ended, an organization suspended) a moment ago on any node
    /// writes nothing. When the append wrote nothing, the agent is read from the store and the
    /// standing from `identity`, and the decision made again. A refusal or an error is answered
    /// only from a standing read for this request.
    pub async fn create_conversation(
        &self,
        identity: &IdentityService,
        mut caller: GuardedCaller,
        agent_id: Uuid,
        title: Option<String>,
        key: Option<&IdempotencyKey>,
        origin: Option<RequestOrigin>,
    ) -> Result<(Uuid, u32), RunsError> {
        if !caller.confirmed() && may_start_conversations(caller.unconfirmed()).is_err() {
            caller = identity.confirm(&caller).await?;
        }
        let org_id = may_start_conversations(caller.unconfirmed())?;
        let id = key.map_or_else(Uuid::now_v7, |key| super::repeated::conversation_id(key, org_id));
        let mut remembered = self.agents.remembered(&agent_id.to_string()).await;
        for _ in 0..AGENT_CHANGED_ATTEMPTS {
            let attempt = self
                .try_create_conversation(
                    &caller,
                    id,
                    agent_id,
                    remembered.take(),
                    title.as_deref(),
                    origin.clone(),
                )
                .await;
            match attempt {
                Ok(Some(created)) => return Ok(created),
                // The agent moved, or the caller's standing changed: read the standing again
                // (answering the refusal it now calls for) and decide again.
                Ok(None) if caller.guarded() => {
                    caller = identity.confirm(&caller).await?;
                    may_start_conversations(caller.unconfirmed())?;
                }
                Ok(None) => {}
                // A failure of the store decided nothing with the standing: answered as it is
                // (a write's `OutcomeUnknown` above all, which a read of the standing failing
                // in turn would hide).
                Err(
                    failure @ RunsError::Identity(
                        IdentityError::OutcomeUnknown(_)
                        | IdentityError::DatabaseBusy
                        | IdentityError::Internal(_),
                    ),
                ) => return Err(failure),
                Err(error) => {
                    // Decided with a remembered standing (an agent of another organization,
                    // say): answered only if the standing read now allows the request at all.
                    if !caller.confirmed() {
                        let confirmed = identity.confirm(&caller).await?;
                        may_start_conversations(confirmed.unconfirmed())?;
                    }
                    // Only an id drawn from a key can exist already: the key sent again.
                    if key.is_some()
                        && matches!(error, RunsError::Conversation(ConversationError::AlreadyExists))
                    {
                        return self
                            .repeated_conversation(org_id, id, agent_id, title.as_deref())
                            .await;
                    }
                    return Err(error);
                }
            }
        }
        Err(IdentityError::Busy.into())
    }

    /// One decision of [`create_conversation`](Self::create_conversation) with the agent
    /// `remembered` (read from the store when `None` or not found): `Ok(None)` when the append
    /// found the agent or the caller's standing changed and wrote nothing.
    async fn try_create_conversation(
        &self,
        caller: &GuardedCaller,
        id: Uuid,
        agent_id: Uuid,
        remembered: Option<(Agent, usize)>,
        title: Option<&str>,
        origin: Option<RequestOrigin>,
    ) -> Result<Option<(Uuid, u32)>, RunsError> {
        let org_id = may_start_conversations(caller.unconfirmed())?;
        let key = agent_id.to_string();
        // An agent this process does not know of may have been created on another node.
        let (agent, version) = match remembered.filter(|(agent, _)| agent.exists()) {
            Some(known) => known,
            None => self.agents.load_versioned(&key).await?,
        };
        if agent.org_id() != Some(org_id) {
            return Err(AgentError::NotFound.into());
        }
        let create = ConversationCommand::Create {
            org_id,
            agent_id,
            agent_version: agent.version(),
            title: title.map(str::to_owned),
        };
        let decided_with = caller.decided_with(DecidedWith::new(
            <Agent as cqrs_es::Aggregate>::TYPE,
            &key,
            version,
        ));
        let context = caller.unconfirmed().context(origin);
        let created = self
            .conversations
            .create_if_unmoved(&id.to_string(), create, &context, &decided_with)
            .await?;
        Ok(created.map(|_| (id, agent.version())))
    }

    /// Archives a conversation (owners, admins, members): it takes no new runs.
    pub async fn archive_conversation(
        &self,
        caller: &Caller,
        id: Uuid,
        origin: Option<RequestOrigin>,
    ) -> Result<(), RunsError> {
        caller.require(Role::can_write, "archive conversations")?;
        self.conversation_in_org(caller.org()?, id).await?;
        self.conversations
            .execute(
                &id.to_string(),
                ConversationCommand::Archive,
                &caller.context(origin),
            )
            .await?;
        Ok(())
    }

    /// Starts a run of a conversation with the user's `input` (owners, admins, members) and
    /// hands it to an executor; answers at once, the run queued.
    ///
    /// The conversation is claimed first (one active run), then the run is recorded. A start
    /// interrupted between the two is finished by the next attempt: the claim holds the input.
    pub async fn start_run(
        &self,
        caller: &Caller,
        conversation_id: Uuid,
        input: String,
        key: Option<&IdempotencyKey>,
        origin: Option<RequestOrigin>,
    ) -> Result<(Uuid, RunStatus), RunsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "start runs")?;
        let Some(key) = key else {
            return self
                .start_new_run(caller, org_id, conversation_id, Uuid::now_v7(), input, origin)
                .await;
        };
        let run_id = super::repeated::run_id(key, org_id, conversation_id);
        // A key sent again finds its run before any limit is counted: repeating a start that
        // happened costs nothing and is refused nothing.
        if self.started_before(org_id, conversation_id, run_id).await? {
            return self.repeated_start(org_id, conversation_id, run_id, &input).await;
        }
        let started = self
            .start_new_run(caller, org_id, conversation_id, run_id, input.clone(), origin)
            .await;
        match started {
            // A limit counted the run of the same key that a racing start was recording
            // (admission waits for it): the start happened, and this is its repeat.
            Err(RunsError::Quota(_) | RunsError::Billing(_))
                if self.started_before(org_id, conversation_id, run_id).await? =>
            {
                self.repeated_start(org_id, conversation_id, run_id, &input).await
            }
            other => other,
        }
    }

    /// [`start_run`](Self::start_run) of a run that `run_id` names for the first time.
    async fn start_new_run(
        &self,
        caller: &Caller,
        org_id: Uuid,
        conversation_id: Uuid,
        run_id: Uuid,
        input: String,
        origin: Option<RequestOrigin>,
    ) -> Result<(Uuid, RunStatus), RunsError> {
        // Held until the run is recorded: no other start of the organization counts runs meanwhile.
        let _admission = self.quotas.admit_run(org_id).await?;
        let conversation = self.conversation_in_org(org_id, conversation_id).await?;
        check_input(&input)?;
        self.require_credit(org_id).await?;
        let context = caller.context(origin);
        let claim = ConversationCommand::StartRun {
            run_id,
            input: input.clone(),
        };
        let mut settled_once = false;
        loop {
            match self
                .conversations
                .execute(&conversation_id.to_string(), claim.clone(), &context)
                .await
            {
                Ok(_) => break,
                // Only an id drawn from a key can have been started: the key sent again, by a
                // start racing this one or one interrupted before it recorded the run.
                Err(CommandError::Rejected(ConversationError::RunAlreadyStarted { .. })) => {
                    return self.repeated_start(org_id, conversation_id, run_id, &input).await;
                }
                Err(CommandError::Rejected(ConversationError::RunActive { run_id: active }))
                    if !settled_once =>
                {
                    settled_once = true;
                    if !self
                        .settle_active_run(&conversation, conversation_id, active)
                        .await?
                    {
                        return Err(ConversationError::RunActive { run_id: active }.into());
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        let version = self
            .record_run(&conversation, org_id, conversation_id, run_id, input, &context)
            .await?;
        self.dispatch.dispatch(run_id, version);
        Ok((run_id, RunStatus::Queued))
    }

    /// Deals with a conversation's active run found when starting another: records it if an
    /// interrupted start never did (it stays active), or releases the conversation if the run
    /// already ended. `true` when the conversation is free again.
    async fn settle_active_run(
        &self,
        conversation: &Conversation,
        conversation_id: Uuid,
        active: Uuid,
    ) -> Result<bool, RunsError> {
        let run = self.runs.load(&active.to_string()).await?;
        let org_id = conversation.org_id().unwrap_or_default();
        if !run.exists() {
            self.record_claimed_run(org_id, conversation_id, active).await?;
            return Ok(false);
        }
        if run.status().is_terminal() {
            self.end_conversation_run(conversation_id, active, org_id).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Records `run_id` and hands it to an executor when the conversation's active run is that
    /// run and a start was interrupted after claiming the conversation (or is recording it at
    /// this moment: recording is idempotent, and an executor takes a run once). Answers the
    /// claim's input, or `None` when the conversation's active run is another or none.
    pub(super) async fn record_claimed_run(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        run_id: Uuid,
    ) -> Result<Option<String>, RunsError> {
        let latest = self.conversations.load(&conversation_id.to_string()).await?;
        let Some(claim) = latest.active_run().filter(|claim| claim.run_id == run_id) else {
            return Ok(None);
        };
        let context = CommandContext::system(Some(org_id));
        let version = self
            .record_run(
                &latest,
                org_id,
                conversation_id,
                run_id,
                claim.input.clone(),
                &context,
            )
            .await?;
        self.dispatch.dispatch(run_id, version);
        Ok(Some(claim.input.clone()))
    }

    /// Records the run as queued; answers its version then (1: `run.queued` is a run's first
    /// event, also when an earlier attempt recorded it).
    async fn record_run(
        &self,
        conversation: &Conversation,
        org_id: Uuid,
        conversation_id: Uuid,
        run_id: Uuid,
        input: String,
        context: &CommandContext,
    ) -> Result<u64, RunsError> {
        let queue = RunCommand::Queue {
            run_id,
            org_id,
            conversation_id,
            agent_id: conversation.agent_id(),
            agent_version: conversation.agent_version(),
            input,
        };
        match self.runs.create(&run_id.to_string(), queue, context).await {
            Ok(_) | Err(CommandError::Rejected(RunError::AlreadyExists)) => Ok(1),
            Err(error) => Err(error.into()),
        }
    }

    /// Frees the conversation of a run that ended (the executor calls this after the run's last
    /// event; starting a run also does it when it finds an ended run still active).
    pub async fn end_conversation_run(
        &self,
        conversation_id: Uuid,
        run_id: Uuid,
        org_id: Uuid,
    ) -> Result<(), RunsError> {
        self.conversations
            .execute(
                &conversation_id.to_string(),
                ConversationCommand::EndRun { run_id },
                &CommandContext::system(Some(org_id)),
            )
            .await?;
        Ok(())
    }

    /// A run of the caller's organization with its steps.
    pub async fn run(&self, caller: &Caller, id: Uuid) -> Result<RunView, RunsError> {
        let org_id = caller.org()?;
        let (run, events) = self.run_with_events(id).await?;
        if run.org_id() != Some(org_id) {
            return Err(RunError::NotFound.into());
        }
        Ok(run_view(id, &run, &events))
    }

    /// Cancels a run (owners, admins, members), whatever it is waiting for; the conversation
    /// takes runs again at once.
    pub async fn cancel(
        &self,
        caller: &Caller,
        id: Uuid,
        origin: Option<RequestOrigin>,
    ) -> Result<(), RunsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "cancel runs")?;
        let run = self.run_in_org(org_id, id).await?;
        let cancel = RunCommand::Cancel {
            by: caller.actor().to_string(),
            open_call_price: self.open_call_price(&run, id).await,
        };
        self.runs
            .execute(&id.to_string(), cancel, &caller.context(origin))
            .await?;
        self.dispatch.cancelled(id);
        self.end_conversation_run(run.conversation_id(), id, org_id)
            .await?;
        self.settle_run_credits(id, org_id).await?;
        Ok(())
    }

    /// Approves a pending tool call of a run (owners, admins, members); the run goes on once
    /// no call of its step is pending.
    pub async fn approve(
        &self,
        caller: &Caller,
        run_id: Uuid,
        call_id: Uuid,
        origin: Option<RequestOrigin>,
    ) -> Result<(), RunsError> {
        let approve = RunCommand::Approve {
            call_id,
            by: caller.actor().to_string(),
        };
        self.decide(caller, run_id, approve, origin).await
    }

    /// Denies a pending tool call; `reason` goes back to the model.
    pub async fn deny(
        &self,
        caller: &Caller,
        run_id: Uuid,
        call_id: Uuid,
        reason: String,
        origin: Option<RequestOrigin>,
    ) -> Result<(), RunsError> {
        let deny = RunCommand::Deny {
            call_id,
            by: caller.actor().to_string(),
            reason,
        };
        self.decide(caller, run_id, deny, origin).await
    }

    async fn decide(
        &self,
        caller: &Caller,
        run_id: Uuid,
        decision: RunCommand,
        origin: Option<RequestOrigin>,
    ) -> Result<(), RunsError> {
        let org_id = caller.org()?;
        caller.require(Role::can_write, "decide on tool calls")?;
        self.run_in_org(org_id, run_id).await?;
        let decided = self
            .runs
            .execute(&run_id.to_string(), decision, &caller.context(origin))
            .await?;
        if decided.state.status() == RunStatus::Queued {
            self.dispatch.dispatch(run_id, decided.version as u64);
        }
        Ok(())
    }

    /// Every run that has not ended (started before this process, perhaps by one that died):
    /// what an executor resumes at start.
    pub async fn unfinished_runs(&self) -> Result<Vec<Uuid>, RunsError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT q.aggregate_id FROM events q
              WHERE q.aggregate_type = 'run' AND q.sequence = 1
                AND NOT EXISTS (SELECT 1 FROM events t
                                 WHERE t.aggregate_type = 'run' AND t.aggregate_id = q.aggregate_id
                                   AND t.event_type IN ('run.completed', 'run.failed', 'run.cancelled'))
              ORDER BY q.position",
        )
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    /// Where a sweep for runs waiting for an executor starts: now (the runs already waiting are
    /// what an executor dispatches at its start, from [`Self::unfinished_runs`]).
    pub async fn sweep_horizon(&self) -> Result<SweepHorizon, RunsError> {
        Ok(waiting::horizon_now(&self.pool).await?)
    }

    /// The runs waiting for an executor (queued and never taken, or queued again once their
    /// approvals were decided) that began to wait since `since`, more than `grace` ago; and the
    /// horizon of the next sweep, which keeps every run still waiting in view. One indexed
    /// read of the log's recent events, plus a load for a run whose latest event is a decision
    /// (it waits only when no other call of its step is pending).
    pub async fn waiting_runs(
        &self,
        since: SweepHorizon,
        grace: std::time::Duration,
    ) -> Result<(Vec<WaitingRun>, SweepHorizon), RunsError> {
        let (candidates, mut horizon) = waiting::candidates(&self.pool, since, grace).await?;
        let mut due = Vec::new();
        for candidate in candidates {
            if !candidate.certainly_waiting {
                let run = self.runs.load(&candidate.run_id.to_string()).await?;
                if run.status() != RunStatus::Queued {
                    continue;
                }
            }
            horizon = horizon.keeping(candidate.transaction_id);
            if candidate.due {
                due.push(WaitingRun {
                    run_id: candidate.run_id,
                    version: candidate.version,
                });
            }
        }
        Ok((due, horizon))
    }

    /// Every tool call of the caller's organization awaiting approval, newest first.
    pub async fn pending_approvals(
        &self,
        caller: &Caller,
        limit: u32,
        cursor: Option<i64>,
    ) -> Result<ApprovalPage, RunsError> {
        let org_id = caller.org()?;
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        let rows: Vec<(String, serde_json::Value, i64)> = sqlx::query_as(&format!(
            "{PENDING_CALLS} AND r.org_id = $1 AND r.position < COALESCE($2, 9223372036854775807)
              ORDER BY r.position DESC LIMIT $3"
        ))
        .bind(org_id)
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let more = rows.len() as i64 > limit;
        let mut approvals = Vec::new();
        let mut next_cursor = None;
        for (run_id, call, position) in rows.into_iter().take(limit as usize) {
            let call: domain::run::Call = serde_json::from_value(call)
                .map_err(|error| IdentityError::Internal(format!("a stored tool call: {error}")))?;
            approvals.push(PendingApproval {
                run_id: parse_id(&run_id)?,
                call_id: call.call_id,
                name: call.name,
                arguments: call.arguments,
                expires_at: call.expires_at,
            });
            next_cursor = more.then_some(position);
        }
        Ok(ApprovalPage {
            approvals,
            next_cursor,
        })
    }

    /// Denies, with reason `expired`, every pending call whose approval timeout has passed,
    /// and hands its run back to an executor; answers how many. Several nodes may sweep at
    /// once: a call denied by another is simply not pending any more.
    pub async fn expire_approvals(&self) -> Result<usize, RunsError> {
        let rows: Vec<(String, serde_json::Value, i64)> = sqlx::query_as(&format!(
            "{PENDING_CALLS} AND (r.payload -> 'call' ->> 'expires_at')::timestamptz < now()
              ORDER BY r.position LIMIT 500"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut expired = 0;
        for (run_id, call, _) in rows {
            let Ok(call) = serde_json::from_value::<domain::run::Call>(call) else {
                continue;
            };
            let run_id = parse_id(&run_id)?;
            let deny = RunCommand::Deny {
                call_id: call.call_id,
                by: domain::Actor::System.to_string(),
                reason: "expired".to_owned(),
            };
            let run = self.runs.load(&run_id.to_string()).await?;
            let context = CommandContext::system(run.org_id());
            match self.runs.execute(&run_id.to_string(), deny, &context).await {
                Ok(decided) => {
                    expired += 1;
                    if decided.state.status() == RunStatus::Queued {
                        self.dispatch.dispatch(run_id, decided.version as u64);
                    }
                }
                Err(CommandError::Rejected(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(expired)
    }

    /// Whether the run has moved on without `executor`: ended, or taken by another executor.
    /// One indexed read of the run's latest lifecycle event; an executor asks this every
    /// second, so a cancel on another node stops its model or tool call within that.
    pub async fn run_moved_on(&self, run_id: Uuid, executor: Uuid) -> Result<bool, RunsError> {
        let latest: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT event_type, payload->>'executor' FROM events
              WHERE aggregate_type = 'run' AND aggregate_id = $1
                AND event_type IN ('run.started', 'run.resumed', 'run.completed', 'run.failed', 'run.cancelled')
              ORDER BY sequence DESC LIMIT 1",
        )
        .bind(run_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match latest {
            Some((event_type, holder)) if event_type == "run.started" || event_type == "run.resumed" => {
                holder.as_deref() != Some(executor.to_string().as_str())
            }
            Some(_) => true,
            None => false,
        })
    }

    /// The agent definition a run uses. A version never changes once recorded, so one this
    /// process already holds is used without a query.
    pub async fn agent_definition(&self, agent_id: Uuid, version: u32) -> Result<AgentDefinition, RunsError> {
        let key = agent_id.to_string();
        if let Some((agent, _)) = self.agents.remembered(&key).await
            && let Ok(definition) = agent.at_version(version)
        {
            return Ok(definition.clone());
        }
        let agent = self.agents.load(&key).await?;
        Ok(agent.at_version(version)?.clone())
    }

    /// The messages of the conversation's runs before `run_id` (ended runs: they never change,
    /// so an executor reads them once per execution).
    pub async fn transcript_before(
        &self,
        conversation_id: Uuid,
        run_id: Uuid,
    ) -> Result<Vec<TranscriptMessage>, RunsError> {
        let conversation = self.conversations.load(&conversation_id.to_string()).await?;
        let mut messages = Vec::new();
        for earlier in conversation
            .runs()
            .iter()
            .take_while(|earlier| **earlier != run_id)
        {
            let events = self.run_events(*earlier).await?;
            messages.extend(transcript_of(*earlier, &events));
        }
        Ok(messages)
    }

    /// The messages of one run so far (one query).
    pub async fn transcript_of_run(&self, run_id: Uuid) -> Result<Vec<TranscriptMessage>, RunsError> {
        let events = self.run_events(run_id).await?;
        Ok(transcript_of(run_id, &events))
    }

    async fn run_events(&self, id: Uuid) -> Result<Vec<RunEvent>, RunsError> {
        let events = self.store.load::<Run>(&id.to_string(), 0).await?;
        Ok(events.into_iter().map(|(_, event)| event).collect())
    }

    pub(super) async fn run_with_events(&self, id: Uuid) -> Result<(Run, Vec<RunEvent>), RunsError> {
        let events = self.run_events(id).await?;
        let mut run = Run::default();
        for event in &events {
            cqrs_es::Aggregate::apply(&mut run, event.clone());
        }
        Ok((run, events))
    }

    pub(super) async fn run_in_org(&self, org_id: Uuid, id: Uuid) -> Result<Run, RunsError> {
        let run = self.runs.load(&id.to_string()).await?;
        if run.org_id() != Some(org_id) {
            return Err(RunError::NotFound.into());
        }
        Ok(run)
    }

    pub(super) async fn conversation_in_org(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> Result<Conversation, RunsError> {
        let conversation = self.conversations.load(&id.to_string()).await?;
        if conversation.org_id() != Some(org_id) {
            return Err(ConversationError::NotFound.into());
        }
        Ok(conversation)
    }
}

/// The answer for a conversation and its messages.
pub(super) fn conversation_view(
    id: Uuid,
    conversation: &Conversation,
    messages: Vec<TranscriptMessage>,
) -> ConversationView {
    ConversationView {
        id,
        agent_id: conversation.agent_id(),
        agent_version: conversation.agent_version(),
        title: conversation.title().map(str::to_owned),
        archived: conversation.is_archived(),
        active_run: conversation.active_run().map(|active| active.run_id),
        messages,
    }
}

/// The answer for a run folded from `events`.
pub(super) fn run_view(id: Uuid, run: &Run, events: &[RunEvent]) -> RunView {
    let mut input = String::new();
    let mut output = None;
    let mut error = None;
    for event in events {
        match event {
            RunEvent::Queued { input: given, .. } => input.clone_from(given),
            RunEvent::Completed { output: answer, .. } => output = Some(answer.clone()),
            RunEvent::Failed { code, detail, .. } => error = Some((code.clone(), detail.clone())),
            _ => {}
        }
    }
    RunView {
        id,
        conversation_id: run.conversation_id(),
        status: run.status(),
        input,
        output,
        error,
        steps: steps_of(events),
        usage: run.usage(),
        last_event_id: run.last_id(),
    }
}

fn parse_id(text: &str) -> Result<Uuid, RunsError> {
    Uuid::parse_str(text).map_err(|error| IdentityError::Internal(error.to_string()).into())
}

/// The organization `caller` starts conversations in, if its role allows it (owners, admins,
/// members).
fn may_start_conversations(caller: &Caller) -> Result<Uuid, IdentityError> {
    let org_id = caller.org()?;
    caller.require(Role::can_write, "start conversations")?;
    Ok(org_id)
}
