//! Sharing one round trip among requests that wait at the same moment.
//!
//! Under load most of a small query's cost is not its rows but the round trip around them:
//! the pool's checks, the statement, the commit, the wake-ups. A [`Batcher`] lets at most a
//! few batches of one kind run at once (and one more item its work calls urgent, alone: see
//! [`BatchWork::urgent`]). A request that finds one free starts a batch at once (alone if
//! nothing else waits, after the few yields below for work that gathers). Requests that
//! arrive while all are busy queue, and the next batch to finish takes the queue with it (as
//! much of it as may share a batch: [`BatchWork::may_join`]). For work that asks for it
//! ([`BatchWork::gathers`]), a loop about to take a batch first lets the requests already on
//! their way join the queue (a few yields to the runtime while it grows, no timer:
//! [`Batcher::gather`]). Nothing waits for a batch to fill, so a quiet system is as fast as
//! without it.
//!
//! Every queued request was queued before its batch started, so a batch's answer is never
//! older than the request: a check that must see "everything committed before this request"
//! (a removal applies to the very next request) stays exact.
//!
//! Each batch runs in a task of its own: a caller that stops waiting (a dropped request) never
//! leaves the others' work half done.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use tokio::sync::oneshot;

/// Work done for many requests at once.
pub trait BatchWork: Send + Sync + 'static {
    /// One request.
    type Item: Send + 'static;
    /// Its answer.
    type Output: Send + 'static;

    /// Whether `next` may join `batch` (never asked for the first item: a batch holds at least
    /// one). Queued items keep their order: the first that may not join closes the batch. Must
    /// not panic (it runs under the queue's lock; see `LoopSlot`).
    fn may_join(&self, batch: &[Self::Item], next: &Self::Item) -> bool;

    /// Does the work: one answer per item, in the items' order.
    fn run(&self, batch: Vec<Self::Item>) -> impl Future<Output = Vec<Self::Output>> + Send;

    /// Whether `item` holds others up while it waits (a busy aggregate's batch, which every
    /// command queued on that aggregate waits behind): when every batch slot is taken it is
    /// run at once, alone, in one slot kept for such items; when that slot is taken too, it
    /// queues as any other. None by default.
    fn urgent(&self, _item: &Self::Item) -> bool {
        false
    }

    /// Whether a batch may wait a few yields for the requests on their way when `item` waits
    /// in its queue ([`Batcher::gather`]). Every queued item must agree: while one that holds
    /// others up (a chain of requests each waiting on the one before) waits, the next batch is
    /// taken at once. None by default. Must not panic, as [`may_join`](Self::may_join).
    fn gathers(&self, _item: &Self::Item) -> bool {
        false
    }
}

/// At most this many yields to the runtime before a batch is taken ([`Batcher::gather`]): 4
/// carried more per batch than one; 16 no more than 4 (BENCHMARKS.md, "Batches gather what is
/// on its way").
const MAX_GATHER_YIELDS: usize = 4;

struct Waiting<W: BatchWork> {
    item: W::Item,
    reply: oneshot::Sender<W::Output>,
}

struct Queue<W: BatchWork> {
    waiting: VecDeque<Waiting<W>>,
    /// Batch loops running now; a new one starts only below the limit.
    running: usize,
    /// Whether an urgent item runs alone in the slot kept for them (see [`BatchWork::urgent`]).
    urgent_running: bool,
}

/// Runs [`BatchWork`] for concurrent callers, at most `max_running` batches at once, plus one
/// urgent item alone.
pub struct Batcher<W: BatchWork> {
    work: W,
    queue: Mutex<Queue<W>>,
    max_running: usize,
}

/// What a submitted request starts.
enum Start<W: BatchWork> {
    /// A batch loop, which takes it with whatever else waits.
    Loop,
    /// Its own run in the urgent slot.
    Alone(Waiting<W>),
    /// Nothing: a running loop takes it.
    Nothing,
}

/// A running batch loop's place in [`Queue::running`], given back however the loop ends.
///
/// A loop leaves by its own path when nothing waits, and a panic in its work is caught
/// ([`Batcher::run_while_waiting`]). If its task ends otherwise (a panic in
/// [`BatchWork::gathers`] or [`BatchWork::may_join`], which must not panic, or the task
/// dropped as its runtime shuts down), this gives its place back, so later requests start
/// loops of their own instead of queueing for ever behind a loop that is gone; what already
/// waits goes with the next request's loop.
struct LoopSlot<W: BatchWork> {
    batcher: Arc<Batcher<W>>,
    /// Whether the loop left by its own path, its place already given back.
    left: bool,
}

impl<W: BatchWork> Drop for LoopSlot<W> {
    fn drop(&mut self) {
        if !self.left {
            self.batcher.lock().running -= 1;
        }
    }
}

/// Why a request got no answer: its batch's task ended without one (it panicked).
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("the batch carrying this request stopped before answering")]
pub struct BatchLost;

impl<W: BatchWork> Batcher<W> {
    /// A batcher running `work`, at most `max_running` batches at once (at least one), plus one
    /// urgent item alone.
    pub fn new(work: W, max_running: usize) -> Arc<Self> {
        Arc::new(Self {
            work,
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                running: 0,
                urgent_running: false,
            }),
            max_running: max_running.max(1),
        })
    }

    /// The work it runs.
    pub fn work(&self) -> &W {
        &self.work
    }

    /// Whether nothing waits and no batch runs.
    pub fn is_idle(&self) -> bool {
        let queue = self.lock();
        queue.waiting.is_empty() && queue.running == 0 && !queue.urgent_running
    }

    /// Runs `item`, alone or in a batch, and answers what [`BatchWork::run`] gave it.
    pub async fn submit(self: &Arc<Self>, item: W::Item) -> Result<W::Output, BatchLost> {
        let (reply, answer) = oneshot::channel();
        let urgent = self.work.urgent(&item);
        let start = {
            let mut queue = self.lock();
            let waiting = Waiting { item, reply };
            if queue.running < self.max_running {
                queue.running += 1;
                queue.waiting.push_back(waiting);
                Start::Loop
            } else if urgent && !queue.urgent_running {
                queue.urgent_running = true;
                Start::Alone(waiting)
            } else {
                queue.waiting.push_back(waiting);
                Start::Nothing
            }
        };
        match start {
            Start::Loop => drop(tokio::spawn(Arc::clone(self).run_while_waiting())),
            Start::Alone(waiting) => drop(tokio::spawn(Arc::clone(self).run_urgent(waiting))),
            Start::Nothing => {}
        }
        answer.await.map_err(|_| BatchLost)
    }

    /// Runs an urgent item alone in the slot kept for one, and frees the slot (also when the
    /// work panics: the caller is then answered [`BatchLost`]).
    async fn run_urgent(self: Arc<Self>, waiting: Waiting<W>) {
        struct FreeSlot<'a, W: BatchWork>(&'a Batcher<W>);
        impl<W: BatchWork> Drop for FreeSlot<'_, W> {
            fn drop(&mut self) {
                self.0.lock().urgent_running = false;
            }
        }
        // Declared after `reply`, so dropped before it on a panic too: the slot is free before
        // the caller hears, so its next urgent item finds it free.
        let Waiting { item, reply } = waiting;
        let slot = FreeSlot(&self);
        let output = self.work.run(vec![item]).await.pop();
        drop(slot);
        if let Some(output) = output {
            // A caller that stopped waiting needs no answer.
            let _ = reply.send(output);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<W>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what waits, runs it, and goes on until nothing waits. It leaves under the queue's
    /// lock, so a request queued just before never waits without a loop to take it.
    async fn run_while_waiting(self: Arc<Self>) {
        let mut slot = LoopSlot {
            batcher: Arc::clone(&self),
            left: false,
        };
        loop {
            self.gather().await;
            let (items, replies): (Vec<_>, Vec<_>) = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.running -= 1;
                    slot.left = true;
                    return;
                }
                self.take_batch(&mut queue.waiting)
            };
            if items.len() > 1 {
                metrics::histogram!("agentry_batch_size", "work" => std::any::type_name::<W>())
                    .record(items.len() as f64);
            }
            // A panic in the work loses this batch's answers (its callers hear `BatchLost`) and
            // nothing else: the loop goes on with what waits behind it.
            let Ok(outputs) = AssertUnwindSafe(self.work.run(items)).catch_unwind().await else {
                tracing::error!(
                    work = std::any::type_name::<W>(),
                    "a batch's work panicked; its callers are told their request was lost"
                );
                continue;
            };
            for (reply, output) in replies.into_iter().zip(outputs) {
                // A caller that stopped waiting needs no answer.
                let _ = reply.send(output);
            }
        }
    }

    /// Lets the requests already on their way join the queue before a batch is taken: yields
    /// to the runtime while the queue grows, at most [`MAX_GATHER_YIELDS`] times, no timer,
    /// and only while every queued item [`BatchWork::gathers`].
    ///
    /// Under load, requests arrive in bursts (a batch's callers, answered together, send their
    /// next requests together), and a loop that took the queue at once carried the first of a
    /// burst alone and left the rest for its next batch: half the appends of the conversations
    /// bench went alone, each paying a statement and a commit. Idle, a request waits a yield or
    /// two: microseconds. Under a chain of requests each waiting on the one before (a billed
    /// run's appends through its organization's account), the yields add up along the chain:
    /// gathering everywhere cost billed runs across organizations +3.7 / +6.2 ms per LLM call
    /// (BENCHMARKS.md, "Batches gather what is on its way"), hence [`BatchWork::gathers`].
    async fn gather(&self) {
        let Some(mut queued) = self.gathering_queue() else {
            return;
        };
        for _ in 0..MAX_GATHER_YIELDS {
            tokio::task::yield_now().await;
            match self.gathering_queue() {
                Some(now) if now != queued => queued = now,
                _ => return,
            }
        }
    }

    /// How many requests wait, when some do and every one of them lets its batch gather. An
    /// empty queue does not gather: a loop about to leave leaves at once.
    fn gathering_queue(&self) -> Option<usize> {
        let queue = self.lock();
        let all_gather = !queue.waiting.is_empty()
            && queue
                .waiting
                .iter()
                .all(|waiting| self.work.gathers(&waiting.item));
        all_gather.then_some(queue.waiting.len())
    }

    /// The requests at the front of the queue that may share a batch, in order.
    fn take_batch(
        &self,
        waiting: &mut VecDeque<Waiting<W>>,
    ) -> (Vec<W::Item>, Vec<oneshot::Sender<W::Output>>) {
        let mut items = Vec::new();
        let mut replies = Vec::new();
        while let Some(next) = waiting.pop_front() {
            if !items.is_empty() && !self.work.may_join(&items, &next.item) {
                waiting.push_front(next);
                break;
            }
            items.push(next.item);
            replies.push(next.reply);
        }
        (items, replies)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    /// Items are numbers; an even one is urgent. Each run waits for a permit, so the test
    /// decides when batches finish, and counts the runs under way.
    struct Gated {
        gate: Semaphore,
        running: AtomicUsize,
        most_running: AtomicUsize,
    }

    impl BatchWork for Gated {
        type Item = u32;
        type Output = u32;

        fn may_join(&self, _batch: &[u32], _next: &u32) -> bool {
            true
        }

        async fn run(&self, batch: Vec<u32>) -> Vec<u32> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            self.gate.acquire().await.unwrap().forget();
            self.running.fetch_sub(1, Ordering::SeqCst);
            batch
        }

        fn urgent(&self, item: &u32) -> bool {
            item.is_multiple_of(2)
        }
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn an_urgent_item_runs_at_once_beside_busy_batches_and_only_one_at_a_time() {
        let batcher = Batcher::new(
            Gated {
                gate: Semaphore::new(0),
                running: AtomicUsize::new(0),
                most_running: AtomicUsize::new(0),
            },
            1,
        );
        let submit = |item: u32| {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move { batcher.submit(item).await.unwrap() })
        };
        // The one slot is busy with 1; 3 queues behind it; 2 (urgent) runs at once beside it.
        let first = submit(1);
        settle().await;
        let plain = submit(3);
        let urgent = submit(2);
        settle().await;
        assert_eq!(
            batcher.work().running.load(Ordering::SeqCst),
            2,
            "1 and 2 run, 3 waits"
        );
        // A second urgent item while the urgent slot is taken queues like any other.
        let second_urgent = submit(4);
        settle().await;
        assert_eq!(batcher.work().running.load(Ordering::SeqCst), 2);
        assert!(!batcher.is_idle());

        batcher.work().gate.add_permits(10);
        for (task, item) in [(first, 1), (plain, 3), (urgent, 2), (second_urgent, 4)] {
            assert_eq!(task.await.unwrap(), item);
        }
        assert_eq!(batcher.work().most_running.load(Ordering::SeqCst), 2);
        settle().await;
        assert!(batcher.is_idle(), "both slots freed");
    }

    /// Records each batch it runs; gathers when `gathering` says so, for every item but 0. Sets
    /// off the test's burst when a batch is about to start (the first `gathers` question).
    struct Recording {
        gathering: bool,
        batches: Mutex<Vec<Vec<u32>>>,
        starting: tokio::sync::Notify,
    }

    impl Recording {
        /// A batcher of one loop at a time over a new `Recording`.
        fn batcher(gathering: bool) -> Arc<Batcher<Self>> {
            let work = Self {
                gathering,
                batches: Mutex::new(Vec::new()),
                starting: tokio::sync::Notify::new(),
            };
            Batcher::new(work, 1)
        }
    }

    impl BatchWork for Recording {
        type Item = u32;
        type Output = u32;

        fn may_join(&self, _batch: &[u32], _next: &u32) -> bool {
            true
        }

        async fn run(&self, batch: Vec<u32>) -> Vec<u32> {
            self.batches.lock().unwrap().push(batch.clone());
            batch
        }

        fn gathers(&self, item: &u32) -> bool {
            self.starting.notify_one();
            self.gathering && *item != 0
        }
    }

    /// The batches `first` and a burst of `later` end in, when the burst sets off as `first`'s
    /// batch is about to start: on its way.
    async fn batches_of_a_burst(gathering: bool, first: u32, later: [u32; 3]) -> Vec<Vec<u32>> {
        let batcher = Recording::batcher(gathering);
        let burst = {
            let batcher = Arc::clone(&batcher);
            tokio::spawn(async move {
                batcher.work().starting.notified().await;
                futures::future::join_all(later.map(|item| batcher.submit(item))).await
            })
        };
        // Bounded: a batcher that never asks `gathers` never sets the burst off; fail, not hang.
        let both = async {
            batcher.submit(first).await.unwrap();
            burst.await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("the burst was never set off: no batch asked whether its items gather");
        let batches = batcher.work().batches.lock().unwrap();
        batches.clone()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_gathering_batch_waits_for_the_burst_on_its_way_and_only_then() {
        assert_eq!(
            batches_of_a_burst(true, 1, [2, 3, 4]).await,
            vec![vec![1, 2, 3, 4]],
            "one statement for the burst"
        );
        assert_eq!(
            batches_of_a_burst(false, 1, [2, 3, 4]).await,
            vec![vec![1], vec![2, 3, 4]],
            "work that does not gather takes the first request alone"
        );
        assert_eq!(
            batches_of_a_burst(true, 0, [2, 3, 4]).await,
            vec![vec![0], vec![2, 3, 4]],
            "an item that does not gather is taken at once"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_loop_with_nothing_left_to_take_leaves_at_once() {
        for gathering in [false, true] {
            let batcher = Recording::batcher(gathering);
            assert_eq!(batcher.submit(1).await.unwrap(), 1);
            // Its caller runs after the loop: had the loop yielded on its empty queue, it would
            // still hold its place (an account's batcher looks busy while it does).
            assert!(batcher.is_idle(), "gathering: {gathering}");
        }
    }

    /// Each item alone; 99 panics.
    struct Panicking;

    impl BatchWork for Panicking {
        type Item = u32;
        type Output = u32;

        fn may_join(&self, _batch: &[u32], _next: &u32) -> bool {
            false
        }

        async fn run(&self, batch: Vec<u32>) -> Vec<u32> {
            assert!(!batch.contains(&99), "the work panics on 99");
            batch
        }
    }

    #[tokio::test]
    async fn a_batch_that_panics_loses_its_callers_answer_and_nothing_else() {
        let batcher = Batcher::new(Panicking, 1);
        let bound = Duration::from_secs(10);

        // 2 queues behind 99, whose batch panics: 99's caller is told, 2 is still answered.
        let (lost, queued) = tokio::time::timeout(bound, async {
            tokio::join!(batcher.submit(99), batcher.submit(2))
        })
        .await
        .expect("the request queued behind the panic was never taken");
        assert!(lost.is_err(), "the panicking batch's caller hears it was lost");
        assert_eq!(queued.unwrap(), 2);

        // A panicking batch alone: its caller is told, and the loop leaves as usual.
        let alone = tokio::time::timeout(bound, batcher.submit(99))
            .await
            .expect("the panicking batch's caller was never answered");
        assert!(alone.is_err());

        // And the place the panicking loop held is free again for the next request.
        let next = tokio::time::timeout(bound, batcher.submit(1))
            .await
            .expect("the panicking loop kept its place");
        assert_eq!(next.unwrap(), 1);
        settle().await;
        assert!(batcher.is_idle());
    }
}
