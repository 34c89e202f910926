//! Two commands on two aggregates committed in one transaction: both or neither.
//!
//! Some facts must never be seen apart. A run that says it ended must show the charge of its
//! last model call in the ledger, and the charge names the model call's event as its cause.
//! Recorded one after another, the charge is a second commit in series before the run may end
//! (the billing bench measured it as most of what billing adds to a run). A billed model call's
//! answer may go with its charge the same way, and a billed run's start with its first call's
//! hold. Linked, the run's command is decided first, the account's command is built from its
//! events (it can name them: event ids are chosen before the append), and both go to Postgres
//! in one statement that writes every event or none.
//!
//! The second aggregate is a busy one (an organization's credit account, which every model
//! call of every run reserves from and is charged on), so its commands are coalesced
//! ([`CoalescingBus`]): the first command's events ride in the second's next shared append
//! instead of holding the account for a round trip of their own, which in one busy
//! organization made every reservation wait on the run ends.
//!
//! Locks are taken in one order: the first aggregate's, then (inside the second's batch) the
//! second's; no path takes them the other way round, so linked commands cannot wait on each
//! other. A lost race on either decides both again on the winner's events.

use cqrs_es::Aggregate;

use super::aggregate_cache::Loaded;
use super::append::PendingAppend;
use super::{
    AppendedEvent, CoalescingBus, CommandBus, CommandContext, CommandError, Committed, NewEvent, StoreError,
};

/// What [`CommandBus::execute_linked`] did. When `first` is an error other than a refusal
/// ([`CommandError::Conflict`], [`CommandError::Store`]), nothing of either was written.
#[derive(Debug)]
pub struct Linked<A: Aggregate, B: Aggregate> {
    /// The first command's outcome, as [`CommandBus::execute`] would answer it.
    pub first: Result<Committed<A>, CommandError<A::Error>>,
    /// The second command's, when this call decided it: committed with the first, or refused,
    /// or decided to need nothing (the first was then committed alone). `None` when nothing of
    /// it was written: the first was refused, decided nothing, or failed, or `follow` found
    /// nothing to link to its events. Run it alone then if it is still wanted.
    pub second: Option<Result<Committed<B>, CommandError<B::Error>>>,
}

/// What one attempt wrote: the first's events and the second's outcome (`None`: nothing was
/// linked); `Err(())` when a race was lost and nothing was written.
type Attempt<B> = Result<
    (
        Vec<AppendedEvent>,
        Option<Result<Committed<B>, CommandError<<B as Aggregate>::Error>>>,
    ),
    (),
>;

impl<A> CommandBus<A>
where
    A: Aggregate + Clone,
    A::Command: Clone,
{
    /// Decides `command` on `aggregate_id`, then `follow(events)` (the command's events, ids
    /// chosen) on `other_id` of `other`, and commits both in one statement: both are written
    /// or neither. When the second is refused or decides nothing, or `follow` answers `None`
    /// (the events the store decided call for no second command), the first is committed
    /// alone.
    pub async fn execute_linked<B, F>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        other: &CoalescingBus<B>,
        other_id: &str,
        follow: F,
    ) -> Linked<A, B>
    where
        B: Aggregate + Clone + 'static,
        B::Command: Clone + Send + Sync,
        B::Error: Send + Sync,
        F: Fn(&[NewEvent]) -> Option<(B::Command, CommandContext)>,
    {
        let failed = |error: StoreError| Linked {
            first: Err(CommandError::Store(error)),
            second: None,
        };
        if A::TYPE == B::TYPE && aggregate_id == other_id {
            // Its lock would be taken twice.
            return failed(StoreError::Unexpected(
                "a command cannot be linked with one on its own aggregate".to_owned(),
            ));
        }
        let slot = self.cache.slot(aggregate_id);
        let mut guard = slot.lock().await;
        let (mut current, mut fresh) = match guard.take() {
            Some(loaded) => (loaded, false),
            None => match self.refresh(aggregate_id, None).await {
                Ok(loaded) => (loaded, true),
                Err(error) => return failed(error),
            },
        };
        let mut attempts = 0;
        loop {
            let (state, events) = match self.decide(&current.state, command.clone()).await {
                Ok((state, events)) if !events.is_empty() => (state, events),
                doubtful if !fresh => {
                    // As in `run`: a refusal or a no-op on remembered state is checked first.
                    drop(doubtful);
                    match self.refresh(aggregate_id, Some(current)).await {
                        Ok(loaded) => current = loaded,
                        Err(error) => return failed(error),
                    }
                    fresh = true;
                    continue;
                }
                refused_or_nothing => {
                    let version = current.version;
                    *guard = Some(current);
                    return Linked {
                        first: refused_or_nothing.map(|(state, events)| Committed {
                            state,
                            version,
                            events,
                            appended: Vec::new(),
                        }),
                        second: None,
                    };
                }
            };
            let stored = match events
                .iter()
                .map(NewEvent::from_domain)
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(stored) => stored,
                Err(error) => return failed(error),
            };
            let attempt: Attempt<B> = match follow(&stored) {
                Some((other_command, other_context)) => {
                    let first = match PendingAppend::of_commands(
                        A::TYPE,
                        aggregate_id,
                        current.version,
                        &[(&stored, context)],
                    ) {
                        Ok(first) => first,
                        Err(error) => return failed(error),
                    };
                    match other
                        .execute_riding(other_id, other_command, &other_context, first)
                        .await
                    {
                        (second, Some(appended)) => Ok((appended, Some(second))),
                        // The second refused, or had nothing to record: the first goes alone.
                        (second @ (Ok(_) | Err(CommandError::Rejected(_))), None) => {
                            match self
                                .append_alone(aggregate_id, current.version, &stored, context)
                                .await
                            {
                                Ok(appended) => appended.map(|appended| (appended, Some(second))),
                                Err(error) => return failed(error),
                            }
                        }
                        // Nothing of either was written: this aggregate (the rider's) or the
                        // other kept moving.
                        (Err(CommandError::Conflict), None) => Err(()),
                        (Err(CommandError::Store(error)), None) => return failed(error),
                    }
                }
                None => match self
                    .append_alone(aggregate_id, current.version, &stored, context)
                    .await
                {
                    Ok(appended) => appended.map(|appended| (appended, None)),
                    Err(error) => return failed(error),
                },
            };
            match attempt {
                Ok((appended, second)) => {
                    let version = current.version + events.len();
                    *guard = Some(Loaded {
                        state: state.clone(),
                        version,
                    });
                    if let Some(observer) = &self.observer {
                        observer.committed(aggregate_id, context, &events);
                    }
                    return Linked {
                        first: Ok(Committed {
                            state,
                            version,
                            events,
                            appended,
                        }),
                        second,
                    };
                }
                Err(()) => {
                    metrics::counter!("agentry_command_conflicts_total", "aggregate_type" => A::TYPE)
                        .increment(1);
                    attempts += 1;
                    if attempts >= self.attempts {
                        *guard = Some(current);
                        return Linked {
                            first: Err(CommandError::Conflict),
                            second: None,
                        };
                    }
                    match self.refresh(aggregate_id, Some(current)).await {
                        Ok(loaded) => current = loaded,
                        Err(error) => return failed(error),
                    }
                    fresh = true;
                }
            }
        }
    }

    /// Appends `events` of the first aggregate without a second: `Ok(Err(()))` when its race was
    /// lost.
    async fn append_alone(
        &self,
        aggregate_id: &str,
        version: usize,
        events: &[NewEvent],
        context: &CommandContext,
    ) -> Result<Result<Vec<AppendedEvent>, ()>, StoreError> {
        let alone = [(events, context)];
        match self
            .store
            .append_commands(A::TYPE, aggregate_id, version, &alone, None)
            .await
        {
            Ok(Some(appended)) => Ok(Ok(appended)),
            Ok(None) | Err(StoreError::Conflict { .. }) => Ok(Err(())),
            Err(error) => Err(error),
        }
    }
}
