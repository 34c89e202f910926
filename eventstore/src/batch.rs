//! Sharing one round trip among requests that wait at the same moment.
//!
//! Under load most of a small query's cost is not its rows but the round trip around them:
//! the pool's checks, the statement, the commit, the wake-ups. A [`Batcher`] lets at most a
//! few batches of one kind run at once. A request that finds one free is sent at once, alone:
//! nothing waits for a batch to fill, so a quiet system is as fast as without it. Requests that
//! arrive while all are busy queue, and the next batch to finish takes the whole queue with it.
//!
//! Every queued request was queued before its batch started, so a batch's answer is never
//! older than the request: a check that must see "everything committed before this request"
//! (a removal applies to the very next request) stays exact.
//!
//! Each batch runs in a task of its own: a caller that stops waiting (a dropped request) never
//! leaves the others' work half done.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Work done for many requests at once.
pub trait BatchWork: Send + Sync + 'static {
    /// One request.
    type Item: Send + 'static;
    /// Its answer.
    type Output: Send + 'static;

    /// Whether `next` may join `batch` (never asked for the first item: a batch holds at least
    /// one). Queued items keep their order: the first that may not join closes the batch.
    fn may_join(&self, batch: &[Self::Item], next: &Self::Item) -> bool;

    /// Does the work: one answer per item, in the items' order.
    fn run(&self, batch: Vec<Self::Item>) -> impl Future<Output = Vec<Self::Output>> + Send;
}

struct Waiting<W: BatchWork> {
    item: W::Item,
    reply: oneshot::Sender<W::Output>,
}

struct Queue<W: BatchWork> {
    waiting: VecDeque<Waiting<W>>,
    /// Batch loops running now; a new one starts only below the limit.
    running: usize,
}

/// Runs [`BatchWork`] for concurrent callers, at most `max_running` batches at once.
pub struct Batcher<W: BatchWork> {
    work: W,
    queue: Mutex<Queue<W>>,
    max_running: usize,
}

/// Why a request got no answer: its batch's task ended without one (it panicked).
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("the batch carrying this request stopped before answering")]
pub struct BatchLost;

impl<W: BatchWork> Batcher<W> {
    /// A batcher running `work`, at most `max_running` batches at once (at least one).
    pub fn new(work: W, max_running: usize) -> Arc<Self> {
        Arc::new(Self {
            work,
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                running: 0,
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
        queue.waiting.is_empty() && queue.running == 0
    }

    /// Runs `item`, alone or in a batch, and answers what [`BatchWork::run`] gave it.
    pub async fn submit(self: &Arc<Self>, item: W::Item) -> Result<W::Output, BatchLost> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push_back(Waiting { item, reply });
            let free = queue.running < self.max_running;
            if free {
                queue.running += 1;
            }
            free
        };
        if start {
            tokio::spawn(Arc::clone(self).run_while_waiting());
        }
        answer.await.map_err(|_| BatchLost)
    }

    fn lock(&self) -> MutexGuard<'_, Queue<W>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes what waits, runs it, and goes on until nothing waits. It leaves under the queue's
    /// lock, so a request queued just before never waits without a loop to take it.
    async fn run_while_waiting(self: Arc<Self>) {
        loop {
            let (items, replies): (Vec<_>, Vec<_>) = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.running -= 1;
                    return;
                }
                self.take_batch(&mut queue.waiting)
            };
            if items.len() > 1 {
                metrics::histogram!("agentry_batch_size", "work" => std::any::type_name::<W>())
                    .record(items.len() as f64);
            }
            let outputs = self.work.run(items).await;
            for (reply, output) in replies.into_iter().zip(outputs) {
                // A caller that stopped waiting needs no answer.
                let _ = reply.send(output);
            }
        }
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
