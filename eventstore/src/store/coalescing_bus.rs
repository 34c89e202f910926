//! Commands on one aggregate that wait at the same moment, decided one after another and
//! appended together.
//!
//! A [`CommandBus`] runs one command per aggregate at a time: it holds the aggregate's lock
//! across the append, so a busy aggregate (an organization's credit account, which every LLM
//! call of every run reserves from and is charged on) serves one command per round trip however
//! many wait. A [`CoalescingBus`] lets the commands that queued during one append go in the
//! next together: each is decided on the state the previous one left, exactly as if they had
//! run one after another in that order, and all their events are one append (each event with
//! its own command's metadata). Throughput then grows with the queue instead of being capped
//! by the round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cqrs_es::Aggregate;

use super::append::PendingAppend;
use super::command_bus::nothing_written;
use super::{AppendedEvent, CommandBus, CommandContext, CommandError, Committed};
use crate::batch::{BatchWork, Batcher};

/// At most this many commands decided and appended together.
const MAX_COMMANDS_TOGETHER: usize = 64;

/// A batch takes riders (see [`CoalescingBus::execute_riding`]) of at most this many bytes of
/// payload together; a rider alone may be larger.
const MAX_RIDER_BYTES: usize = 1024 * 1024;

/// Batchers kept before the idle ones are dropped.
const SWEEP_AT: usize = 1024;

/// A [`CommandBus`] whose `execute` shares appends among commands waiting on one aggregate.
pub struct CoalescingBus<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone + Send + Sync,
    A::Error: Send + Sync,
{
    bus: Arc<CommandBus<A>>,
    /// One batcher per aggregate with commands under way, idle ones dropped now and then.
    waiting: Mutex<HashMap<String, Arc<Batcher<AggregateCommands<A>>>>>,
}

type Output<A> = Result<Committed<A>, CommandError<<A as Aggregate>::Error>>;

impl<A> CoalescingBus<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone + Send + Sync,
    A::Error: Send + Sync,
{
    /// Coalesces the commands of `bus`.
    pub fn new(bus: CommandBus<A>) -> Self {
        Self {
            bus: Arc::new(bus),
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// The bus underneath, for loads and for commands that need no sharing.
    pub fn bus(&self) -> &CommandBus<A> {
        &self.bus
    }

    /// Whether no command of `aggregate_id` waits or is being appended in this process: one
    /// submitted now is decided and appended at once, behind nothing.
    pub fn is_idle(&self, aggregate_id: &str) -> bool {
        self.lock()
            .get(aggregate_id)
            .is_none_or(|batcher| batcher.is_idle())
    }

    /// [`CommandBus::execute`], sharing the append with the commands on the same aggregate
    /// that wait at the same moment.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
    ) -> Output<A> {
        self.submit(aggregate_id, command, context, None).await.0
    }

    /// [`execute`](Self::execute) with a rider: another aggregate's append committed in the
    /// same statement as this command's events, or not at all (see
    /// [`CommandBus::run_riding`]). Answers where the rider was written, `None` when it was not.
    pub(crate) async fn execute_riding(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        rider: PendingAppend,
    ) -> (Output<A>, Option<Vec<AppendedEvent>>) {
        self.submit(aggregate_id, command, context, Some(rider)).await
    }

    async fn submit(
        &self,
        aggregate_id: &str,
        command: A::Command,
        context: &CommandContext,
        rider: Option<PendingAppend>,
    ) -> (Output<A>, Option<Vec<AppendedEvent>>) {
        let batcher = self.batcher(aggregate_id);
        let queued = Queued {
            command,
            context: context.clone(),
            rider,
        };
        batcher.submit(queued).await.unwrap_or_else(|lost| {
            let error = CommandError::Store(super::StoreError::Unexpected(lost.to_string()));
            (Err(error), None)
        })
    }

    /// The batcher of `aggregate_id`'s commands.
    fn batcher(&self, aggregate_id: &str) -> Arc<Batcher<AggregateCommands<A>>> {
        let mut waiting = self.lock();

        if waiting.len() >= SWEEP_AT {
            // Aggregates with nothing under way need no batcher; dropping one that is just
            // finishing is harmless (a new one takes over; the aggregate's lock still
            // orders their commands).
            waiting.retain(|_, batcher| !batcher.is_idle());
        }
        Arc::clone(waiting.entry(aggregate_id.to_owned()).or_insert_with(|| {
            let work = AggregateCommands {
                bus: Arc::clone(&self.bus),
                aggregate_id: aggregate_id.to_owned(),
            };
            // One batch at a time per aggregate: the others queue and go together.
            Batcher::new(work, 1)
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Batcher<AggregateCommands<A>>>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The commands of one aggregate, run together.
struct AggregateCommands<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone + Send + Sync,
    A::Error: Send + Sync,
{
    bus: Arc<CommandBus<A>>,
    aggregate_id: String,
}

impl<A> BatchWork for AggregateCommands<A>
where
    A: Aggregate + Clone + 'static,
    A::Command: Clone + Send + Sync,
    A::Error: Send + Sync,
{
    type Item = Queued<A>;
    type Output = (Output<A>, Option<Vec<AppendedEvent>>);

    /// Within the limits; riders bring payload of their own, so they count too.
    fn may_join(&self, batch: &[Self::Item], next: &Self::Item) -> bool {
        let rider_bytes: usize = batch
            .iter()
            .chain([next])
            .filter_map(|queued| queued.rider.as_ref())
            .map(PendingAppend::payload_bytes)
            .sum();
        batch.len() < MAX_COMMANDS_TOGETHER && (rider_bytes <= MAX_RIDER_BYTES || next.rider.is_none())
    }

    async fn run(&self, batch: Vec<Self::Item>) -> Vec<Self::Output> {
        let commands: Vec<(A::Command, &CommandContext)> = batch
            .iter()
            .map(|queued| (queued.command.clone(), &queued.context))
            .collect();
        let riders: Vec<Option<&PendingAppend>> = batch.iter().map(|queued| queued.rider.as_ref()).collect();
        let (outcomes, riders) = self
            .bus
            .run_riding(&self.aggregate_id, &commands, &riders, false, None)
            .await;
        outcomes
            .into_iter()
            .zip(riders)
            .map(|(outcome, rider)| {
                (
                    outcome.and_then(|committed| committed.ok_or_else(nothing_written)),
                    rider,
                )
            })
            .collect()
    }
}

/// A command waiting for its batch, with its rider if it has one.
pub(super) struct Queued<A: Aggregate> {
    command: A::Command,
    context: CommandContext,
    rider: Option<PendingAppend>,
}
