use std::sync::Arc;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use thiserror::Error;

use super::aggregate_cache::{AggregateCache, Loaded};
use super::append::PendingAppend;
use super::{AppendedEvent, CommandContext, DecidedWith, EventStore, NewEvent, StoreError};

/// How many times a command is decided again after losing a race before the caller is told.
const DEFAULT_ATTEMPTS: usize = 5;
/// Aggregates kept in memory per bus.
const DEFAULT_CACHE_CAPACITY: usize = 100_000;

/// Why a command did not commit.
#[derive(Debug, Error)]
pub enum CommandError<E> {
    /// The aggregate refused the command: a business rule, safe to show the caller.
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept winning the race on this aggregate; trying again later may succeed.
    #[error("the aggregate kept changing concurrently; try again")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

/// What a committed command produced.
#[derive(Clone, Debug)]
pub struct Committed<A: Aggregate> {
    /// The aggregate as it stands after the command.
    pub state: A,
    /// Its version (number of events) after the command.
    pub version: usize,
    /// The events written, in order.
    pub events: Vec<A::Event>,
    /// Where they were written; empty when the command decided nothing needed recording.
    pub appended: Vec<AppendedEvent>,
}

/// Told of every command a [`CommandBus`] commits, right after the commit, in the committing
/// task: what must reach readers sooner than the log follower delivers (a run's live stream).
/// It must not block; it may lose nothing that matters, because the events are committed and
/// readers can always fall back on the store.
pub trait CommitObserver<A: Aggregate>: Send + Sync {
    /// `events` were committed to `aggregate_id` by a command with `context`.
    fn committed(&self, aggregate_id: &str, context: &CommandContext, events: &[A::Event]);
}

/// Runs cqrs-es aggregates over the [`EventStore`]: decide with `handle`, append the events in
/// one round trip, and keep the result in memory for the next command.
///
/// It replaces `cqrs_es::CqrsFramework` because that reloads the whole history on every
/// command and returns nothing about what it wrote (see DESIGN-NOTES §1). The `Aggregate`
/// trait and its `EventSink` are cqrs-es's own, so domain code is unchanged.
pub struct CommandBus<A: Aggregate> {
    pub(super) store: EventStore,
    services: A::Services,
    pub(super) cache: AggregateCache<A>,
    pub(super) attempts: usize,
    pub(super) observer: Option<Arc<dyn CommitObserver<A>>>,
}

impl<A> CommandBus<A>
where
    A: Aggregate + Clone,
    A::Command: Clone,
{
    /// A bus for one aggregate type.
    pub fn new(store: EventStore, services: A::Services) -> Self {
        Self {
            store,
            services,
            cache: AggregateCache::new(DEFAULT_CACHE_CAPACITY),
            attempts: DEFAULT_ATTEMPTS,
            observer: None,
        }
    }

    /// Tells `observer` of every commit from now on.
    pub fn with_observer(mut self, observer: Arc<dyn CommitObserver<A>>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// How many decisions a command gets before [`CommandError::Conflict`]; at least one.
    pub fn with_attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Decides `command` against the aggregate's current state and commits its events.
    ///
    /// A lost race (another node appended first) reloads the missing events and decides again,
    /// so `handle` must stay free of side effects: look things up before, put them in the command.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        self.run_one(aggregate_id, command, context, false, None)
            .await?
            .ok_or_else(nothing_written)
    }

    /// Like [`execute`](Self::execute) for a command that creates the aggregate under a fresh id:
    /// it skips the load and assumes the aggregate is new. If it was not, the append conflicts
    /// and the command is decided again on the real state, so this is never wrong, only faster.
    pub async fn create(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        self.run_one(aggregate_id, command, context, true, None)
            .await?
            .ok_or_else(nothing_written)
    }

    /// Like [`create`](Self::create) for a command decided with another aggregate's state
    /// (`decided_with`, at the version the decision saw): it commits only while that aggregate
    /// has not moved past it (and the caller's standing, when `decided_with` carries one, is
    /// unchanged), checked in the append itself. `Ok(None)`: it had moved (or the standing
    /// changed), nothing was written; read it again and decide again.
    pub async fn create_if_unmoved(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        decided_with: &DecidedWith,
    ) -> Result<Option<Committed<A>>, CommandError<A::Error>> {
        self.run_one(aggregate_id, command, context, true, Some(decided_with))
            .await
    }

    /// The aggregate's state and version as this process last knew them, without asking the
    /// store; `None` when it holds none. It may be behind what another node wrote since: base
    /// on it only a decision the store checks again (an append with [`DecidedWith`]), and
    /// confirm a refusal with [`load_versioned`](Self::load_versioned) before answering it.
    pub async fn remembered(&self, aggregate_id: &str) -> Option<(A, usize)> {
        let slot = self.cache.slot(aggregate_id);
        let guard = slot.lock().await;
        guard
            .as_ref()
            .map(|loaded| (loaded.state.clone(), loaded.version))
    }

    /// The aggregate's current state, brought up to date with the store (one query for the
    /// events this process has not seen).
    pub async fn load(&self, aggregate_id: &str) -> Result<A, StoreError> {
        Ok(self.load_versioned(aggregate_id).await?.0)
    }

    /// [`load`](Self::load), with the version (number of events) the state reflects.
    ///
    /// The aggregate's lock is held only to copy what this process knows and to keep what was
    /// read, never across the query: loads of one aggregate (a run's start reads its agent and
    /// tools, shared by every run) go to the store side by side instead of one after another.
    /// What is kept is the newer of the two, so a slower load never puts an older state back.
    pub async fn load_versioned(&self, aggregate_id: &str) -> Result<(A, usize), StoreError> {
        let slot = self.cache.slot(aggregate_id);
        let known = slot.lock().await.clone();
        let loaded = self.refresh(aggregate_id, known).await?;
        let mut guard = slot.lock().await;
        if guard.as_ref().is_none_or(|held| held.version < loaded.version) {
            *guard = Some(loaded.clone());
        }
        Ok((loaded.state, loaded.version))
    }

    async fn run_one(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        assume_new: bool,
        decided_with: Option<&DecidedWith>,
    ) -> Outcome<A> {
        let commands = [(command, context)];
        let mut outcomes = self.run(aggregate_id, &commands, assume_new, decided_with).await;
        outcomes.pop().unwrap_or_else(|| {
            Err(CommandError::Store(StoreError::Unexpected(
                "a command got no outcome".to_owned(),
            )))
        })
    }

    /// Decides `commands` in order, each on the state the previous left (a refused one leaves
    /// it as it was), and appends all their events in one append at the version the first saw;
    /// one outcome per command. A lost race decides all again on the winner's events.
    async fn run(
        &self,
        aggregate_id: &str,
        commands: &[(A::Command, &CommandContext)],
        assume_new: bool,
        decided_with: Option<&DecidedWith>,
    ) -> Vec<Outcome<A>> {
        self.run_riding(aggregate_id, commands, &[], assume_new, decided_with)
            .await
            .0
    }

    /// [`run`](Self::run) where a command may carry a rider (`riders[i]` for `commands[i]`; an
    /// empty slice for none): another aggregate's append committed with the command's events in
    /// one statement, or not at all. Answers each command's outcome and where its rider was
    /// written: `None` when it was not (its command decided nothing to record, was refused, or
    /// the rider's own aggregate had moved: that command is then answered
    /// [`CommandError::Conflict`] and nothing of it is written).
    pub(super) async fn run_riding(
        &self,
        aggregate_id: &str,
        commands: &[(A::Command, &CommandContext)],
        riders: &[Option<&PendingAppend>],
        assume_new: bool,
        decided_with: Option<&DecidedWith>,
    ) -> (Vec<Outcome<A>>, Vec<Option<Vec<AppendedEvent>>>) {
        let none_written = || commands.iter().map(|_| None).collect::<Vec<_>>();
        let slot = self.cache.slot(aggregate_id);
        let mut guard = slot.lock().await;
        // `fresh`: the state was just read from the store, not remembered or assumed.
        let (mut current, mut fresh) = match guard.take() {
            Some(loaded) => (loaded, false),
            None if assume_new => (Loaded::default(), false),
            None => match self.refresh(aggregate_id, None).await {
                Ok(loaded) => (loaded, true),
                Err(error) => return (all_failed(commands.len(), error), none_written()),
            },
        };
        // Commands whose rider could not be written: left out, answered `Conflict`.
        let mut dropped = vec![false; commands.len()];
        let mut attempts = 0;
        loop {
            let decisions = self.decide_all_but(&current, commands, &dropped).await;
            let doubtful = decisions
                .iter()
                .zip(&dropped)
                .filter(|(_, dropped)| !**dropped)
                .any(|(decision, _)| {
                    decision.as_ref().is_ok_and(|d| d.events.is_empty()) || decision.is_err()
                });
            if !fresh && doubtful {
                // A refusal or a no-op decided on remembered state may only reflect what this
                // process missed (another node removed the member, changed the role): such a
                // decision never reaches the store, so no conflict would correct it. Catch up
                // with one query for the missing tail and decide again before answering.
                match self.refresh(aggregate_id, Some(current)).await {
                    Ok(loaded) => current = loaded,
                    Err(error) => return (all_failed(commands.len(), error), none_written()),
                }
                fresh = true;
                continue;
            }
            let written = decisions
                .iter()
                .rev()
                .find_map(|decision| decision.as_ref().ok().filter(|d| d.version > current.version));
            let Some((state, version)) = written.map(|last| (last.state.clone(), last.version)) else {
                // Only refusals and no-ops: nothing to write, the state is as it was.
                *guard = Some(current);
                let outcomes = decisions
                    .into_iter()
                    .map(|decision| decision.map(|d| Some(d.committed(Vec::new()))))
                    .collect();
                return (outcomes, none_written());
            };
            // The riders of the commands that record something go with this append.
            let riding: Vec<Option<&PendingAppend>> = decisions
                .iter()
                .enumerate()
                .map(|(n, decision)| {
                    let records = decision.as_ref().is_ok_and(|d| !d.events.is_empty());
                    riders.get(n).copied().flatten().filter(|_| records)
                })
                .collect();
            match self
                .append(
                    aggregate_id,
                    &current,
                    commands,
                    &decisions,
                    decided_with,
                    &riding,
                )
                .await
            {
                Ok(Some((appended, mut rider_events))) => {
                    *guard = Some(Loaded { state, version });
                    // Still holding the aggregate's lock, so observers see its commits in order.
                    if let Some(observer) = &self.observer {
                        for ((_, context), decision) in commands.iter().zip(&decisions) {
                            if let Ok(decided) = decision
                                && !decided.events.is_empty()
                            {
                                observer.committed(aggregate_id, context, &decided.events);
                            }
                        }
                    }
                    let rider_outcomes = riding
                        .iter()
                        .map(|rider| {
                            rider.and_then(|_| (!rider_events.is_empty()).then(|| rider_events.remove(0)))
                        })
                        .collect();
                    return (split_appended(decisions, appended), rider_outcomes);
                }
                Ok(None) | Err(StoreError::Conflict { .. }) if riding.iter().any(Option::is_some) => {
                    // This aggregate or a rider's had moved: nothing was written. The riders
                    // whose aggregate moved are left out (their commands answered `Conflict`,
                    // so their callers decide again); only this aggregate's own race counts as
                    // an attempt, so a rider never makes the rest of the batch fail.
                    let riders_now: Vec<&PendingAppend> = riding.iter().flatten().copied().collect();
                    let moved = match self.store.first_sequences_taken(&riders_now).await {
                        Ok(moved) => moved,
                        Err(error) => return (all_failed(commands.len(), error), none_written()),
                    };
                    let mut moved = moved.into_iter();
                    let mut riders_moved = false;
                    for (rider, dropped) in riding.iter().zip(dropped.iter_mut()) {
                        if rider.is_some() && moved.next().unwrap_or(false) {
                            *dropped = true;
                            riders_moved = true;
                        }
                    }
                    let before = current.version;
                    match self.refresh(aggregate_id, Some(current)).await {
                        Ok(loaded) => current = loaded,
                        Err(error) => return (all_failed(commands.len(), error), none_written()),
                    }
                    fresh = true;
                    if current.version != before || !riders_moved {
                        metrics::counter!("agentry_command_conflicts_total", "aggregate_type" => A::TYPE)
                            .increment(1);
                        attempts += 1;
                        if attempts >= self.attempts {
                            *guard = Some(current);
                            return (all_conflicted(commands.len()), none_written());
                        }
                    }
                }
                Ok(None) => {
                    // The other aggregate moved (or the caller's standing changed): nothing was
                    // written, this one is as it was.
                    *guard = Some(current);
                    let outcomes = decisions
                        .into_iter()
                        .map(|decision| decision.map(|_| None))
                        .collect();
                    return (outcomes, none_written());
                }
                Err(StoreError::Conflict { .. }) => {
                    metrics::counter!("agentry_command_conflicts_total", "aggregate_type" => A::TYPE)
                        .increment(1);
                    attempts += 1;
                    if attempts >= self.attempts {
                        return (all_conflicted(commands.len()), none_written());
                    }
                    match self.refresh(aggregate_id, Some(current)).await {
                        Ok(loaded) => current = loaded,
                        Err(error) => return (all_failed(commands.len(), error), none_written()),
                    }
                    fresh = true;
                }
                Err(error) => return (all_failed(commands.len(), error), none_written()),
            }
        }
    }

    /// Appends what `decisions` decided, each command's events with its own metadata, and the
    /// riders given in the same statement (all or none); answers this aggregate's events and
    /// each rider's, in order.
    async fn append(
        &self,
        aggregate_id: &str,
        current: &Loaded<A>,
        commands: &[(A::Command, &CommandContext)],
        decisions: &[Result<Decided<A>, CommandError<A::Error>>],
        decided_with: Option<&DecidedWith>,
        riders: &[Option<&PendingAppend>],
    ) -> Result<Option<(Vec<AppendedEvent>, Vec<Vec<AppendedEvent>>)>, StoreError> {
        let mut stored = Vec::new();
        for ((_, context), decision) in commands.iter().zip(decisions) {
            if let Ok(decided) = decision {
                if decided.events.is_empty() {
                    continue;
                }
                let events = decided
                    .events
                    .iter()
                    .map(NewEvent::from_domain)
                    .collect::<Result<Vec<_>, _>>()?;
                stored.push((events, *context));
            }
        }
        let batch: Vec<(&[NewEvent], &CommandContext)> = stored
            .iter()
            .map(|(events, context)| (events.as_slice(), *context))
            .collect();
        let riders: Vec<PendingAppend> = riders.iter().flatten().map(|rider| (*rider).clone()).collect();
        if riders.is_empty() {
            let appended = self
                .store
                .append_commands(A::TYPE, aggregate_id, current.version, &batch, decided_with)
                .await?;
            return Ok(appended.map(|appended| (appended, Vec::new())));
        }
        let mut appends = vec![PendingAppend::of_commands(
            A::TYPE,
            aggregate_id,
            current.version,
            &batch,
        )?];
        appends[0].decided_with = decided_with.cloned();
        appends.extend(riders);
        let Some(mut written) = self.store.append_linked(appends).await? else {
            return Ok(None);
        };
        let own = written.remove(0);
        Ok(Some((own, written)))
    }

    /// [`decide_all`](Self::decide_all) leaving out the commands `dropped` marks: each of
    /// those is answered [`CommandError::Conflict`] and leaves the state as it was.
    async fn decide_all_but(
        &self,
        current: &Loaded<A>,
        commands: &[(A::Command, &CommandContext)],
        dropped: &[bool],
    ) -> Vec<Result<Decided<A>, CommandError<A::Error>>> {
        if !dropped.contains(&true) {
            return self.decide_all(current, commands).await;
        }
        let kept: Vec<(A::Command, &CommandContext)> = commands
            .iter()
            .zip(dropped)
            .filter(|(_, dropped)| !**dropped)
            .map(|((command, context), _)| (command.clone(), *context))
            .collect();
        let mut decided = self.decide_all(current, &kept).await.into_iter();
        dropped
            .iter()
            .map(|dropped| match dropped {
                true => Err(CommandError::Conflict),
                false => decided.next().unwrap_or(Err(CommandError::Conflict)),
            })
            .collect()
    }

    /// Decides each command on the state the previous one left (a refused one leaves it as it
    /// was): one copy of the state per command, as a single command costs.
    async fn decide_all(
        &self,
        current: &Loaded<A>,
        commands: &[(A::Command, &CommandContext)],
    ) -> Vec<Result<Decided<A>, CommandError<A::Error>>> {
        let mut decisions: Vec<Result<Decided<A>, CommandError<A::Error>>> =
            Vec::with_capacity(commands.len());
        for (command, _) in commands {
            let (base, base_version) = decisions
                .iter()
                .rev()
                .find_map(|decision| decision.as_ref().ok())
                .map_or((&current.state, current.version), |d| (&d.state, d.version));
            let decision = self
                .decide(base, command.clone())
                .await
                .map(|(state, events)| Decided {
                    state,
                    version: base_version + events.len(),
                    events,
                });
            decisions.push(decision);
        }
        decisions
    }

    /// Runs `handle` on a copy, so a rejected or conflicting decision leaves the cache intact.
    pub(super) async fn decide(
        &self,
        current: &A,
        command: A::Command,
    ) -> Result<(A, Vec<A::Event>), CommandError<A::Error>> {
        let mut state = current.clone();
        let sink = EventSink::default();
        state
            .handle(command, &self.services, &sink)
            .await
            .map_err(CommandError::Rejected)?;
        Ok((state, sink.collect().await))
    }

    /// Applies the events after `known` (one indexed query for the missing tail).
    ///
    /// Each loaded event must carry the next sequence: a gap or a repeat would mean the cache
    /// and the store disagree, and deciding on such a state could break any invariant.
    pub(super) async fn refresh(
        &self,
        aggregate_id: &str,
        known: Option<Loaded<A>>,
    ) -> Result<Loaded<A>, StoreError> {
        let mut loaded = known.unwrap_or_default();
        for (sequence, event) in self.store.load::<A>(aggregate_id, loaded.version).await? {
            let expected = loaded.version + 1;
            if sequence != expected {
                return Err(StoreError::SequenceGap {
                    aggregate_type: A::TYPE.to_owned(),
                    aggregate_id: aggregate_id.to_owned(),
                    expected,
                    found: sequence,
                });
            }
            loaded.state.apply(event);
            loaded.version = expected;
        }
        Ok(loaded)
    }
}

/// What `execute` and `create` answer if an append without a condition wrote nothing, which
/// the store never does (it writes every event or fails).
pub(super) fn nothing_written<E>() -> CommandError<E> {
    CommandError::Store(StoreError::Unexpected(
        "an unconditional append wrote nothing".to_owned(),
    ))
}

type Outcome<A> = Result<Option<Committed<A>>, CommandError<<A as Aggregate>::Error>>;

/// One command's decision within a run: the state and version it leaves, and its events.
struct Decided<A: Aggregate> {
    state: A,
    version: usize,
    events: Vec<A::Event>,
}

impl<A: Aggregate> Decided<A> {
    fn committed(self, appended: Vec<AppendedEvent>) -> Committed<A> {
        Committed {
            state: self.state,
            version: self.version,
            events: self.events,
            appended,
        }
    }
}

/// Every command of a run lost its races as often as it may.
fn all_conflicted<A: Aggregate>(commands: usize) -> Vec<Outcome<A>> {
    (0..commands).map(|_| Err(CommandError::Conflict)).collect()
}

/// Every command of a run failed with the store's `error` (the first gets it whole).
fn all_failed<A: Aggregate>(commands: usize, error: StoreError) -> Vec<Outcome<A>> {
    let mut outcomes: Vec<Outcome<A>> = (1..commands)
        .map(|_| Err(CommandError::Store(error.lossy_copy())))
        .collect();
    outcomes.insert(0, Err(CommandError::Store(error)));
    outcomes
}

/// Hands each committed command the events appended for it, in order.
fn split_appended<A: Aggregate>(
    decisions: Vec<Result<Decided<A>, CommandError<A::Error>>>,
    appended: Vec<AppendedEvent>,
) -> Vec<Outcome<A>> {
    let mut appended = appended.into_iter();
    decisions
        .into_iter()
        .map(|decision| {
            decision.map(|decided| {
                let own = appended.by_ref().take(decided.events.len()).collect();
                Some(decided.committed(own))
            })
        })
        .collect()
}
