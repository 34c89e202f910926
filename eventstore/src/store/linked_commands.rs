//! Two commands on two aggregates committed in one transaction: both or neither.
//!
//! Some facts must never be seen apart. A run that says it ended must show the charge of its
//! last model call in the ledger, and the charge names the model call's event as its cause.
//! Recorded one after another, the charge is a second commit in series before the run may end
//! (the billing bench measured it as most of what billing adds to a run). Linked, the run's
//! command is decided first, the account's command is built from its events (it can name them:
//! event ids are chosen before the append), and both go to Postgres in one statement that
//! writes every event or none.
//!
//! Each aggregate is decided under its own lock, as any command is: the first's, then the
//! second's, always in that order (no path takes them the other way round, so two linked
//! commands cannot wait on each other). A lost race on either decides both again on the
//! winner's events.

use cqrs_es::Aggregate;

use super::aggregate_cache::Loaded;
use super::append::PendingAppend;
use super::{CommandBus, CommandContext, CommandError, Committed, NewEvent, StoreError};

/// What [`CommandBus::execute_linked`] did. When `first` is an error other than a refusal
/// ([`CommandError::Conflict`], [`CommandError::Store`]), nothing of either was written.
#[derive(Debug)]
pub struct Linked<A: Aggregate, B: Aggregate> {
    /// The first command's outcome, as [`CommandBus::execute`] would answer it.
    pub first: Result<Committed<A>, CommandError<A::Error>>,
    /// The second command's, when this call decided it: committed with the first, or refused,
    /// or decided to need nothing (the first was then committed alone). `None` when nothing of
    /// it was written: the first was refused, decided nothing, or failed. Run it alone then if
    /// it is still wanted.
    pub second: Option<Result<Committed<B>, CommandError<B::Error>>>,
}

type Decision<A> = Result<(A, Vec<<A as Aggregate>::Event>), CommandError<<A as Aggregate>::Error>>;

impl<A> CommandBus<A>
where
    A: Aggregate + Clone,
    A::Command: Clone,
{
    /// Decides `command` on `aggregate_id`, then `follow(events)` (the command's events, ids
    /// chosen) on `other_id` of `other`, and commits both in one statement: both are written
    /// or neither. When the second is refused or decides nothing, the first is committed alone.
    pub async fn execute_linked<B, F>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        other: &CommandBus<B>,
        other_id: &str,
        follow: F,
    ) -> Linked<A, B>
    where
        B: Aggregate + Clone,
        B::Command: Clone,
        F: Fn(&[NewEvent]) -> (B::Command, CommandContext),
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
        let other_slot = other.cache.slot(other_id);
        let mut attempts = 0;
        let mut other_stale = false;
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
            let first = match PendingAppend::of_commands(
                A::TYPE,
                aggregate_id,
                current.version,
                &[(&stored, context)],
            ) {
                Ok(first) => first,
                Err(error) => return failed(error),
            };
            let (other_command, other_context) = follow(&stored);
            let mut other_guard = other_slot.lock().await;
            let other_current = match other_guard.take() {
                // After a lost race the second is read again too: its remembered state would
                // lose it again.
                Some(loaded) if other_stale => other.refresh(other_id, Some(loaded)).await.map(|l| (l, true)),
                Some(loaded) => Ok((loaded, false)),
                None => other.refresh(other_id, None).await.map(|loaded| (loaded, true)),
            };
            let decided = match other_current {
                Ok((other_current, other_fresh)) => {
                    other
                        .decide_checked(other_id, other_current, other_fresh, &other_command)
                        .await
                }
                Err(error) => Err(error),
            };
            let (other_current, other_decision) = match decided {
                Ok(decided) => decided,
                Err(error) => return failed(error),
            };
            let written = match other_decision {
                Ok((other_state, other_events)) if !other_events.is_empty() => {
                    let second = other_events
                        .iter()
                        .map(NewEvent::from_domain)
                        .collect::<Result<Vec<_>, _>>()
                        .and_then(|other_stored| {
                            PendingAppend::of_commands(
                                B::TYPE,
                                other_id,
                                other_current.version,
                                &[(&other_stored, &other_context)],
                            )
                        });
                    let second = match second {
                        Ok(second) => second,
                        Err(error) => return failed(error),
                    };
                    let linked = self.store.append_linked(&[first, second]).await;
                    let other_version = other_current.version + other_events.len();
                    let written = match linked {
                        Ok(Some(mut appended)) => {
                            let other_appended = appended.pop().unwrap_or_default();
                            let own_appended = appended.pop().unwrap_or_default();
                            *other_guard = Some(Loaded {
                                state: other_state.clone(),
                                version: other_version,
                            });
                            if let Some(observer) = &other.observer {
                                observer.committed(other_id, &other_context, &other_events);
                            }
                            let second = Committed {
                                state: other_state,
                                version: other_version,
                                events: other_events,
                                appended: other_appended,
                            };
                            Ok((own_appended, Some(Ok(second))))
                        }
                        Ok(None) | Err(StoreError::Conflict { .. }) => {
                            // Kept (a tail read brings it up to date), not read whole again.
                            *other_guard = Some(other_current);
                            Err(())
                        }
                        Err(error) => return failed(error),
                    };
                    drop(other_guard);
                    written
                }
                // Refused, or nothing to record: the first is committed alone.
                other_decision => {
                    let version = other_current.version;
                    *other_guard = Some(other_current);
                    drop(other_guard);
                    let second = other_decision.map(|(state, events)| Committed {
                        state,
                        version,
                        events,
                        appended: Vec::new(),
                    });
                    let alone = [(stored.as_slice(), context)];
                    match self
                        .store
                        .append_commands(A::TYPE, aggregate_id, current.version, &alone, None)
                        .await
                    {
                        Ok(Some(appended)) => Ok((appended, Some(second))),
                        Ok(None) | Err(StoreError::Conflict { .. }) => Err(()),
                        Err(error) => return failed(error),
                    }
                }
            };
            match written {
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
                    // Another writer got to one of the two first: both are brought up to date
                    // and decided again, as often as the busier of the two buses allows.
                    metrics::counter!("agentry_command_conflicts_total", "aggregate_type" => A::TYPE)
                        .increment(1);
                    attempts += 1;
                    if attempts >= self.attempts.max(other.attempts) {
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
                    other_stale = true;
                }
            }
        }
    }

    /// Decides `command` on `current`, reading the aggregate again first when a refusal or a
    /// no-op was decided on remembered state; answers the state decided on and the decision.
    async fn decide_checked(
        &self,
        aggregate_id: &str,
        mut current: Loaded<A>,
        mut fresh: bool,
        command: &A::Command,
    ) -> Result<(Loaded<A>, Decision<A>), StoreError> {
        loop {
            let decision = self.decide(&current.state, command.clone()).await;
            let doubtful = decision.as_ref().map_or(true, |(_, events)| events.is_empty());
            if fresh || !doubtful {
                return Ok((current, decision));
            }
            current = self.refresh(aggregate_id, Some(current)).await?;
            fresh = true;
        }
    }
}
