//! One process's reading of the log's tail, shared by all of its followers.
//!
//! The relay and every projector follow the same log. Each reading it for itself cost one
//! statement and one decode of every event per follower: at 16 concurrent runs, 9.3 of a run's
//! 35 statements were these reads (BENCHMARKS.md, "Where Postgres's time goes"). The tail keeps
//! the latest events any follower of the process read, in order, so the others take them from
//! memory; a follower reads the database only when it has passed everything held.
//!
//! Why what it hands out is exactly what the log would: every read returns the events after a
//! cursor, in `(transaction_id, position)` order, of transactions older than every running one
//! (the log gate, `docs/event-store.md`). Nothing can ever appear behind what such a read
//! returned, so reads that each start where the previous one ended make one gapless stretch of
//! the log, and the events after any cursor inside it are those a read from that cursor would
//! return, minus whatever was committed after the stretch's last read.
//!
//! That last part is the one difference: a follower inside the stretch gets what it holds
//! without a read (it will find the rest on its next step). A follower that has passed
//! everything held is told it is caught up only by a read that began after it asked, so an
//! empty answer means what it meant before: nothing committed before the call is left unread.
//! Followers asking while a read is running share the next one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use super::{Cursor, RecordedEvent, read_after_with, whole_transactions};
use crate::held_connection::HeldConnection;
use crate::store::Upcasters;

/// How many events one read of the tail takes at most, whoever asks.
const READ_EVENTS: usize = 1_000;
/// How long one attempt at the shared read may take before its connection is taken for stuck
/// (a frozen backend) and dropped. Far above what a read of [`READ_EVENTS`] ordinary events
/// takes; a read of very large events that takes longer goes to the main pool, untimed
/// (`LogTail::read_shared`).
const SHARED_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events held: a follower further behind reads the database itself.
const HELD_EVENTS: usize = 4_096;
/// Most payload and metadata bytes held, about (an event may hold up to 8 MiB).
const HELD_BYTES: usize = 32 * 1024 * 1024;

/// The shared tail of one store's log (cloning shares it).
#[derive(Clone)]
pub struct LogTail {
    inner: Arc<Shared>,
}

struct Shared {
    /// For reads of a follower behind the stretch (several may run at once).
    pool: PgPool,
    /// For the shared read at the end, one at a time: a connection held open between reads
    /// (no pool's test round trips before and after each), whose session plans the read once
    /// (its plan is an index scan in log order under a `LIMIT`, sound at any size of the log).
    /// Planned on each execution, the read spent 0.9 s planning beside 0.6 s running in the
    /// billing bench.
    shared_reads: HeldConnection,
    upcasters: Upcasters,
    held: Mutex<Stretch>,
    /// One read of the tail at a time; followers that need one meanwhile wait for it to end,
    /// and the first of them reads for all.
    reading: tokio::sync::Mutex<()>,
    /// Reads of the database made so far.
    reads: AtomicU64,
}

/// A gapless stretch of the log: every event after `start` up to the last one held. It ends on
/// a transaction's last event (a full read's cut transaction is left for the next read), so a
/// follower served from it never gets part of a command where a read of its own would have
/// given all of it.
#[derive(Default)]
struct Stretch {
    /// Whether anything was read yet (before, no cursor is inside).
    known: bool,
    /// The cursor just before the first event held.
    start: Cursor,
    events: VecDeque<Arc<RecordedEvent>>,
    /// Each held event's [`approximate_bytes`], computed once when it is kept.
    sizes: VecDeque<usize>,
    bytes: usize,
    /// When the read that showed nothing after the end began (a read that reached the end and
    /// was not full): an empty answer is fresh for callers that asked before it.
    head_seen: Option<Instant>,
    /// The last shared read, when it failed: when it began, and why. Followers that asked
    /// before it began get its error rather than each waiting for a failure of their own in
    /// turn. A shared read that succeeds clears it.
    failed: Option<(Instant, String)>,
    /// How far a full shared read handed its caller past the end: the caller was served the
    /// whole read, while the stretch left out its cut transaction. Reading on from the end
    /// (not from that caller's cursor) keeps the stretch whole for everyone else.
    handed_out: Option<Cursor>,
}

/// What one read of the database returned.
struct Read {
    after: Cursor,
    events: Vec<Arc<RecordedEvent>>,
    began: Instant,
    /// Fewer events than asked: everything committed (past the gate) after `after` when it began.
    complete: bool,
}

/// What the stretch says about a cursor.
enum Answer {
    /// The events held after it (at least one).
    Events(Vec<Arc<RecordedEvent>>),
    /// It is at the end, and a read that began after the caller asked saw nothing more.
    CaughtUp,
    /// It is at the end (or past it, or nothing is held): a read is needed.
    NeedsRead,
    /// It is before the first event held: the caller reads the database itself.
    Behind,
}

impl Read {
    fn new(after: Cursor, events: Vec<RecordedEvent>, limit: usize, began: Instant) -> Self {
        Self {
            after,
            complete: events.len() < limit,
            events: events.into_iter().map(Arc::new).collect(),
            began,
        }
    }
}

/// `limit` as the read's SQL parameter.
fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl LogTail {
    /// The tail of the log in `pool`, read through `upcasters`.
    pub fn new(pool: PgPool, upcasters: Upcasters) -> Self {
        Self {
            inner: Arc::new(Shared {
                shared_reads: HeldConnection::generic_plan(&pool, "agentry-log-tail", SHARED_READ_TIMEOUT),
                pool,
                upcasters,
                held: Mutex::new(Stretch::default()),
                reading: tokio::sync::Mutex::new(()),
                reads: AtomicU64::new(0),
            }),
        }
    }

    /// At most `limit` committed events after `after`, in log order, as a read of the log would
    /// return them. Empty only when a read that began after this call found nothing.
    pub async fn read_after(&self, after: Cursor, limit: usize) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        Ok(owned(self.read_after_shared(after, limit).await?))
    }

    /// [`read_after`](Self::read_after), the events shared with the tail and the process's
    /// other followers rather than copied: a follower that looks at most of what it reads
    /// without keeping it (a projector skipping events it does not fold) copies nothing.
    pub async fn read_after_shared(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<Arc<RecordedEvent>>, sqlx::Error> {
        let asked = Instant::now();
        let limit = limit.max(1);
        loop {
            match self.answer(after, limit, asked) {
                Answer::Events(events) => return Ok(events),
                Answer::CaughtUp => return Ok(Vec::new()),
                Answer::Behind => return self.read_alone(after, limit).await,
                Answer::NeedsRead => {}
            }
            let reading = self.inner.reading.lock().await;
            match self.answer(after, limit, asked) {
                Answer::Events(events) => return Ok(events),
                Answer::CaughtUp => return Ok(Vec::new()),
                Answer::Behind => {
                    drop(reading);
                    return self.read_alone(after, limit).await;
                }
                Answer::NeedsRead => {}
            }
            if let Some(reason) = self.held().failed_since(asked) {
                return Err(sqlx::Error::Protocol(format!(
                    "the shared read of the log failed: {reason}"
                )));
            }
            // At the end of the stretch, or past it: read on from the end when the caller is
            // only inside what a full read handed out, else from the caller's cursor.
            let from = self.held().read_from(after);
            let read = self.read_shared(from).await?;
            // The caller is served from its own read, before the stretch is trimmed to its
            // limits (large events could otherwise put it behind what it just read).
            let served: Vec<Arc<RecordedEvent>> = read
                .events
                .iter()
                .filter(|event| event.cursor() > after)
                .take(limit)
                .cloned()
                .collect();
            {
                let complete = read.complete;
                let mut held = self.held();
                held.keep(read);
                let handed_out = served.last().map(|event| event.cursor());
                if !complete && handed_out.is_some_and(|cursor| cursor > held.end()) {
                    held.handed_out = handed_out;
                }
            }
            if !served.is_empty() {
                return Ok(served);
            }
        }
    }

    /// How many reads of the database the process's followers made through the tail so far:
    /// what it saves shows as fewer reads than follower steps.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    fn answer(&self, after: Cursor, limit: usize, asked: Instant) -> Answer {
        self.held().answer(after, limit, asked)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Stretch> {
        // The stretch is consistent between statements; a panic elsewhere leaves it usable.
        self.inner.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared read (called with `reading` held): its outcome is remembered for the
    /// followers waiting for it.
    async fn read_shared(&self, after: Cursor) -> Result<Read, sqlx::Error> {
        let began = Instant::now();
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let upcasters = &self.inner.upcasters;
        let limit = limit_of(READ_EVENTS);
        let held = self
            .inner
            .shared_reads
            .read(&(upcasters, after), |connection, (upcasters, after)| {
                Box::pin(read_after_with(connection, upcasters, *after, limit))
            })
            .await;
        let events = match held {
            // No answer in time, on the held connection nor on a new one: either the read is
            // slow (many large events) or no connection could be made. The main pool reads it
            // without a time limit, as before the connection was held, so a slow read is never
            // cut short again and again; its own limits answer for the connections.
            Err(sqlx::Error::PoolTimedOut) => {
                read_after_with(&self.inner.pool, upcasters, after, limit).await
            }
            other => other,
        };
        let outcome = events.map(|events| Read::new(after, events, READ_EVENTS, began));
        self.held().failed = outcome.as_ref().err().map(|error| (began, error.to_string()));
        outcome
    }

    /// A read for a follower behind the stretch, with its own limit. What it returns is kept
    /// only when it reaches the stretch's end (the follower caught up): the stretch then
    /// starts where this read did, so the followers around it stay inside.
    async fn read_alone(&self, after: Cursor, limit: usize) -> Result<Vec<Arc<RecordedEvent>>, sqlx::Error> {
        let began = Instant::now();
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let events = read_after_with(&self.inner.pool, &self.inner.upcasters, after, limit_of(limit)).await?;
        let read = Read::new(after, events, limit, began);
        let mut held = self.held();
        if !held.would_keep(&read) {
            return Ok(read.events);
        }
        let events = read.events.clone();
        held.keep(read);
        Ok(events)
    }
}

impl Stretch {
    fn end(&self) -> Cursor {
        self.events.back().map_or(self.start, |event| event.cursor())
    }

    fn answer(&self, after: Cursor, limit: usize, asked: Instant) -> Answer {
        if !self.known || after > self.end() {
            return Answer::NeedsRead;
        }
        if after < self.start {
            return Answer::Behind;
        }
        let first = self.events.partition_point(|event| event.cursor() <= after);
        if first < self.events.len() {
            let events = self.events.range(first..).take(limit).cloned().collect();
            return Answer::Events(events);
        }
        match self.head_seen {
            Some(seen) if seen >= asked => Answer::CaughtUp,
            _ => Answer::NeedsRead,
        }
    }

    /// Where the read for a caller at `after` (at or past the end) starts: the end when the
    /// caller is only inside what a full read handed out past it, else `after`.
    fn read_from(&self, after: Cursor) -> Cursor {
        let end = self.end();
        match self.handed_out {
            Some(handed_out) if self.known && end < after && after <= handed_out => end,
            _ => after,
        }
    }

    /// The reason of a shared read that failed after `asked`.
    fn failed_since(&self, asked: Instant) -> Option<String> {
        self.failed
            .as_ref()
            .filter(|(began, _)| *began >= asked)
            .map(|(_, reason)| reason.clone())
    }

    /// Whether [`keep`](Self::keep) would change anything for a read from behind the start:
    /// only a read that reaches the end. Checked first, so that a read not kept stays unshared
    /// and its caller gets its events without a copy.
    fn would_keep(&self, read: &Read) -> bool {
        let mut kept = read.events.len();
        if !read.complete {
            kept = whole_transactions(&read.events);
        }
        let reached = kept
            .checked_sub(1)
            .map_or(read.after, |last| read.events[last].cursor());
        !self.known || read.after >= self.start || reached >= self.end()
    }

    /// Keeps what a read returned, ending on a whole transaction:
    /// - from inside the stretch (its end, usually): the events past the end are appended;
    /// - from past the end, or with nothing held: they start a stretch of their own;
    /// - from before the start, reaching the end: they replace it (a wider stretch);
    /// - otherwise (behind, and short of the end) nothing changes.
    ///
    /// Then drops the oldest events beyond the limits.
    fn keep(&mut self, read: Read) {
        let Read {
            after,
            mut events,
            began,
            complete,
        } = read;
        if !complete {
            drop_cut_transaction(&mut events);
        }
        let reached = events.last().map_or(after, |event| event.cursor());
        let end = self.end();
        if self.known && self.start <= after && after <= end {
            if reached > end {
                for event in events.into_iter().filter(|event| event.cursor() > end) {
                    self.push(event);
                }
                self.head_seen = complete.then_some(began);
            } else if reached == end && complete {
                self.head_seen = Some(self.head_seen.map_or(began, |seen| seen.max(began)));
            }
        } else if !self.known || after > end || reached >= end {
            *self = Self {
                known: true,
                start: after,
                head_seen: complete.then_some(began),
                failed: self.failed.take(),
                ..Self::default()
            };
            for event in events {
                self.push(event);
            }
        }
        while self.events.len() > HELD_EVENTS || (self.bytes > HELD_BYTES && self.events.len() > 1) {
            let (Some(oldest), Some(size)) = (self.events.pop_front(), self.sizes.pop_front()) else {
                break;
            };
            self.bytes -= size;
            self.start = oldest.cursor();
        }
    }

    fn push(&mut self, event: Arc<RecordedEvent>) {
        let size = approximate_bytes(&event);
        self.bytes += size;
        self.sizes.push_back(size);
        self.events.push_back(event);
    }
}

/// Leaves out a full read's last transaction when the read may have cut it short (it is read
/// whole next time), unless the read holds nothing else (a command larger than a read).
fn drop_cut_transaction(events: &mut Vec<Arc<RecordedEvent>>) {
    let whole = whole_transactions(events);
    events.truncate(whole);
}

/// The events as the caller's own: moved out where nothing else shares them, else copied.
fn owned(events: Vec<Arc<RecordedEvent>>) -> Vec<RecordedEvent> {
    events.into_iter().map(Arc::unwrap_or_clone).collect()
}

/// About how many bytes an event's JSON takes in memory: enough to bound what the tail holds.
fn approximate_bytes(event: &RecordedEvent) -> usize {
    const EVENT: usize = 256;
    EVENT + json_bytes(&event.data) + json_bytes(&event.metadata)
}

fn json_bytes(value: &Value) -> usize {
    // A `Value` is 32 bytes; an object's key adds its `String` (24) and its map entry's share.
    const NODE: usize = 32;
    const KEY: usize = 48;
    NODE + match value {
        Value::String(text) => text.len(),
        Value::Array(items) => items.iter().map(json_bytes).sum(),
        Value::Object(fields) => fields
            .iter()
            .map(|(name, field)| KEY + name.len() + json_bytes(field))
            .sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use serde_json::json;
    use uuid::Uuid;

    use super::{Answer, Cursor, HELD_BYTES, HELD_EVENTS, Read, RecordedEvent, Stretch};

    fn event(position: i64, text: &str) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::now_v7(),
            position,
            transaction_id: 100 + u64::try_from(position).unwrap_or_default(),
            org_id: None,
            aggregate_type: "run".into(),
            aggregate_id: "r".into(),
            sequence: position,
            event_type: "run.text".into(),
            version: "1".into(),
            data: json!({ "text": text }),
            metadata: json!({}),
        }
    }

    fn read(after: Cursor, events: Vec<RecordedEvent>, complete: bool) -> Read {
        Read {
            after,
            events: events.into_iter().map(Arc::new).collect(),
            began: Instant::now(),
            complete,
        }
    }

    fn kept(count: i64, text: &str) -> Stretch {
        let mut stretch = Stretch::default();
        let events = (1..=count).map(|position| event(position, text)).collect();
        stretch.keep(read(Cursor::START, events, true));
        stretch
    }

    fn served(answer: Answer) -> Vec<i64> {
        match answer {
            Answer::Events(events) => events.iter().map(|event| event.position).collect(),
            Answer::CaughtUp => vec![],
            Answer::NeedsRead => vec![-1],
            Answer::Behind => vec![-2],
        }
    }

    #[test]
    fn a_cursor_inside_gets_the_events_after_it_up_to_its_limit() {
        let stretch = kept(10, "x");
        let fourth = event(4, "x").cursor();
        assert_eq!(served(stretch.answer(fourth, 3, Instant::now())), vec![5, 6, 7]);
        assert_eq!(
            served(stretch.answer(fourth, 100, Instant::now())),
            vec![5, 6, 7, 8, 9, 10]
        );
    }

    #[test]
    fn the_end_is_caught_up_only_for_callers_that_asked_before_the_last_read_began() {
        let asked_before = Instant::now();
        let stretch = kept(3, "x");
        let end = event(3, "x").cursor();
        assert_eq!(served(stretch.answer(end, 10, asked_before)), Vec::<i64>::new());
        let later = Instant::now() + Duration::from_millis(1);
        assert_eq!(
            served(stretch.answer(end, 10, later)),
            vec![-1],
            "a later caller needs a read"
        );
        let past = event(4, "x").cursor();
        assert_eq!(
            served(stretch.answer(past, 10, asked_before)),
            vec![-1],
            "past the end: a read"
        );
    }

    #[test]
    fn it_holds_at_most_its_count_and_a_follower_behind_reads_for_itself() {
        let count = i64::try_from(HELD_EVENTS).unwrap_or_default() + 10;
        let stretch = kept(count, "x");
        assert_eq!(stretch.events.len(), HELD_EVENTS);
        assert_eq!(stretch.start, event(10, "x").cursor());
        assert_eq!(
            served(stretch.answer(event(9, "x").cursor(), 5, Instant::now())),
            vec![-2]
        );
        assert_eq!(
            served(stretch.answer(event(10, "x").cursor(), 2, Instant::now())),
            vec![11, 12]
        );
    }

    #[test]
    fn it_holds_at_most_its_bytes_of_large_events() {
        let large = "y".repeat(1024 * 1024);
        let stretch = kept(100, &large);
        assert!(stretch.bytes <= HELD_BYTES, "{} bytes held", stretch.bytes);
        assert!(
            stretch.events.len() < 40,
            "{} large events held",
            stretch.events.len()
        );
        assert_eq!(stretch.events.back().map(|event| event.position), Some(100));
    }

    #[test]
    fn a_read_that_does_not_start_at_the_end_starts_a_new_stretch() {
        let mut stretch = kept(5, "x");
        let elsewhere = event(20, "x").cursor();
        stretch.keep(read(elsewhere, vec![event(21, "x")], true));
        assert_eq!(stretch.start, elsewhere);
        assert_eq!(
            served(stretch.answer(event(3, "x").cursor(), 5, Instant::now())),
            vec![-2]
        );
        assert_eq!(served(stretch.answer(elsewhere, 5, Instant::now())), vec![21]);
    }

    fn in_transaction(position: i64, transaction_id: u64) -> RecordedEvent {
        RecordedEvent {
            transaction_id,
            ..event(position, "x")
        }
    }

    #[test]
    fn a_full_read_leaves_its_cut_transaction_out_and_says_nothing_of_the_head() {
        let asked_before = Instant::now();
        let mut stretch = Stretch::default();
        let events = vec![in_transaction(1, 7), in_transaction(2, 8), in_transaction(3, 8)];
        stretch.keep(read(Cursor::START, events, false));
        assert_eq!(
            stretch.events.len(),
            1,
            "transaction 8 may go on past the read: read whole later"
        );
        assert_eq!(served(stretch.answer(Cursor::START, 10, asked_before)), vec![1]);
        let end = in_transaction(1, 7).cursor();
        assert_eq!(
            served(stretch.answer(end, 10, asked_before)),
            vec![-1],
            "a full read is not the head"
        );
    }

    #[test]
    fn a_full_read_of_one_transaction_is_kept_whole() {
        let mut stretch = Stretch::default();
        let events = vec![in_transaction(1, 8), in_transaction(2, 8)];
        stretch.keep(read(Cursor::START, events, false));
        assert_eq!(stretch.events.len(), 2);
    }

    #[test]
    fn a_read_from_inside_appends_only_what_is_past_the_end() {
        let mut stretch = kept(5, "x");
        let third = event(3, "x").cursor();
        stretch.keep(read(
            third,
            (4..=7).map(|position| event(position, "x")).collect(),
            true,
        ));
        let positions: Vec<i64> = stretch.events.iter().map(|event| event.position).collect();
        assert_eq!(positions, vec![1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn a_read_from_behind_replaces_the_stretch_only_when_it_reaches_the_end() {
        let mut stretch = Stretch::default();
        stretch.keep(read(
            event(10, "x").cursor(),
            (11..=15).map(|p| event(p, "x")).collect(),
            true,
        ));
        let short = read(
            event(2, "x").cursor(),
            (3..=12).map(|p| event(p, "x")).collect(),
            false,
        );
        assert!(!stretch.would_keep(&short), "short of the end: the stretch stays");
        let reaching = read(
            event(2, "x").cursor(),
            (3..=16).map(|p| event(p, "x")).collect(),
            true,
        );
        assert!(stretch.would_keep(&reaching));
        stretch.keep(reaching);
        assert_eq!(stretch.start, event(2, "x").cursor());
        assert_eq!(stretch.events.back().map(|event| event.position), Some(16));
    }

    #[test]
    fn a_failed_read_is_the_answer_only_for_those_who_asked_before_it_began() {
        let asked_before = Instant::now();
        let stretch = Stretch {
            failed: Some((Instant::now(), "connection refused".to_owned())),
            ..Stretch::default()
        };
        assert_eq!(
            stretch.failed_since(asked_before).as_deref(),
            Some("connection refused")
        );
        assert_eq!(
            stretch.failed_since(Instant::now() + Duration::from_millis(1)),
            None
        );
    }

    #[test]
    fn a_caller_handed_a_cut_transaction_reads_on_from_the_end() {
        let mut stretch = kept(3, "x");
        let end = event(3, "x").cursor();
        stretch.handed_out = Some(event(5, "x").cursor());
        assert_eq!(stretch.read_from(event(4, "x").cursor()), end);
        assert_eq!(stretch.read_from(event(5, "x").cursor()), end);
        let beyond = event(6, "x").cursor();
        assert_eq!(
            stretch.read_from(beyond),
            beyond,
            "past what was handed out: its own cursor"
        );
        assert_eq!(stretch.read_from(end), end);
    }

    #[test]
    fn a_read_from_behind_that_only_reaches_the_end_with_its_cut_transaction_is_not_kept() {
        let mut stretch = Stretch::default();
        stretch.keep(read(
            event(10, "x").cursor(),
            (11..=12).map(|p| event(p, "x")).collect(),
            true,
        ));
        let events = vec![
            in_transaction(5, 105),
            in_transaction(6, 106),
            in_transaction(12, 112),
        ];
        let full = read(event(4, "x").cursor(), events, false);
        assert!(
            !stretch.would_keep(&full),
            "without its cut transaction it stops short of the end"
        );
    }
}
