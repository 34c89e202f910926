//! From a phase's runs to the figures: the runs bench's overhead per step, and the stretches of
//! each LLM call where billing does its work, from the servers' times and the events'
//! `recorded_at` stamps (taken just before each append, inside the aggregate's lock).
//!
//! Per LLM call `k` of a run (2 per run):
//! - *reserve stretch*: `llm_call.started` #k stamp → LLM request k arrives. Without billing:
//!   the append of `llm_call.started` and sending the request; with it, also waiting for the
//!   account's lock and the reservation's append.
//! - *settle stretch*: `llm_call.completed` #k stamp → the next thing the run does (call 1: the
//!   tool request; call 2: the `conversation.run_ended` stamp, taken once the run's end is
//!   committed: a stamp is taken before its append, and the last answer, the charge and
//!   `run.completed` may be one append). With billing, the charge's append (after the
//!   account's lock) is in it.
//!
//! Their sum per call, billing on against off, is what billing adds to an LLM call.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use sqlx::PgPool;

use crate::client::Finished;

/// The figures of one or more phases of the same kind (pooled).
pub struct Steps {
    pub runs: usize,
    pub incomplete: usize,
    pub runs_per_second: Vec<f64>,
    /// LLM 1 last byte → LLM request 2, and LLM 2 last byte → run ended, pooled.
    pub step: Histogram<u64>,
    pub llm_to_llm: Histogram<u64>,
    pub to_end: Histogram<u64>,
    /// Reserve stretch + settle stretch of one call.
    pub per_call: Histogram<u64>,
    pub reserve: Histogram<u64>,
    pub settle: Histogram<u64>,
    pub client: Histogram<u64>,
    /// Gaps between consecutive moments of a run, by (from, to): histogram and the sum of
    /// the gap's index in its run (to order the table).
    gaps: HashMap<(String, String), (Histogram<u64>, usize)>,
}

/// A run's moments: (label, when), labels numbered from the second occurrence (`#2`).
type Moments = Vec<(String, DateTime<Utc>)>;

fn histogram() -> Histogram<u64> {
    Histogram::new(3).unwrap()
}

fn micros(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_microseconds().unwrap_or(0).max(0) as u64
}

/// A quantile in milliseconds, 2 decimals.
pub fn ms(histogram: &Histogram<u64>, quantile: f64) -> String {
    format!("{:.2}", histogram.value_at_quantile(quantile) as f64 / 1e3)
}

/// `p50 / p99` in milliseconds.
pub fn p50_p99(histogram: &Histogram<u64>) -> String {
    format!("{} / {}", ms(histogram, 0.5), ms(histogram, 0.99))
}

impl Default for Steps {
    fn default() -> Self {
        Self {
            runs: 0,
            incomplete: 0,
            runs_per_second: Vec::new(),
            step: histogram(),
            llm_to_llm: histogram(),
            to_end: histogram(),
            per_call: histogram(),
            reserve: histogram(),
            settle: histogram(),
            client: histogram(),
            gaps: HashMap::new(),
        }
    }
}

impl Steps {
    /// Adds the runs of a phase (those started and ended inside its window).
    pub async fn add_phase(
        &mut self,
        pool: &PgPool,
        finished: &[Finished],
        since: i64,
        runs_per_second: f64,
    ) {
        self.runs_per_second.push(runs_per_second);
        let measured: Vec<&Finished> = finished.iter().filter(|run| run.measured).collect();
        let stamps = stamps(pool, &measured, since).await;
        for run in measured {
            let events = stamps.get(&run.run_id).cloned().unwrap_or_default();
            let conversation = stamps.get(&run.conversation_id).cloned().unwrap_or_default();
            if !self.add_run(run, &events, &conversation) {
                self.incomplete += 1;
                if self.incomplete <= 3 {
                    println!(
                        "incomplete run {} ({}): {:?} {events:?}",
                        run.run_id, run.tag, run.times
                    );
                }
            }
        }
    }

    /// Adds one run; `false` when it is not the expected 3-step run.
    fn add_run(&mut self, run: &Finished, events: &Moments, conversation: &Moments) -> bool {
        let times = &run.times;
        let at = |label: &str| {
            events
                .iter()
                .chain(conversation)
                .find(|(name, _)| name == label)
                .map(|(_, at)| *at)
        };
        let shaped = times.llm_requests.len() == 2
            && times.llm_last_bytes.len() == 2
            && times.tool_requests.len() == 1;
        let labels = [
            "llm_call.started",
            "llm_call.started #2",
            "llm_call.completed",
            "llm_call.completed #2",
            "run.completed",
            "conversation.run_ended",
        ];
        let found: Vec<_> = labels.iter().filter_map(|label| at(label)).collect();
        if !shaped || found.len() != labels.len() {
            return false;
        }
        let [
            started_1,
            started_2,
            completed_1,
            completed_2,
            _run_completed,
            ended,
        ] = found[..]
        else {
            return false;
        };
        let between = micros(times.llm_last_bytes[0], times.llm_requests[1]);
        let to_end = micros(times.llm_last_bytes[1], ended);
        self.llm_to_llm.record(between).unwrap();
        self.to_end.record(to_end).unwrap();
        self.step.record(between).unwrap();
        self.step.record(to_end).unwrap();
        let calls = [
            (
                started_1,
                times.llm_requests[0],
                completed_1,
                times.tool_requests[0],
            ),
            (started_2, times.llm_requests[1], completed_2, ended),
        ];
        for (started, requested, completed, next) in calls {
            let (reserve, settle) = (micros(started, requested), micros(completed, next));
            self.reserve.record(reserve).unwrap();
            self.settle.record(settle).unwrap();
            self.per_call.record(reserve + settle).unwrap();
        }
        self.client.record(run.client_latency.as_micros() as u64).unwrap();
        self.runs += 1;
        self.add_gaps(run, events, conversation);
        true
    }

    /// The run's whole timeline (the servers' moments among the events' stamps), gap by gap.
    fn add_gaps(&mut self, run: &Finished, events: &Moments, conversation: &Moments) {
        let times = &run.times;
        let mut moments: Moments = events.iter().chain(conversation).cloned().collect();
        for (number, (request, last)) in times.llm_requests.iter().zip(&times.llm_last_bytes).enumerate() {
            moments.push((format!("[LLM request {}]", number + 1), *request));
            moments.push((format!("[LLM last byte {}]", number + 1), *last));
        }
        moments.push(("[tool request]".to_owned(), times.tool_requests[0]));
        moments.sort_by_key(|(_, at)| *at);
        for (index, pair) in moments.windows(2).enumerate() {
            let entry = self
                .gaps
                .entry((pair[0].0.clone(), pair[1].0.clone()))
                .or_insert_with(|| (histogram(), 0));
            entry.0.record(micros(pair[0].1, pair[1].1)).unwrap();
            entry.1 += index;
        }
    }

    /// The gaps seen in at least 5% of the runs, in the order they come in a run.
    pub fn print_gaps(&self) {
        println!("| from | to | runs | p50 ms | p99 ms |");
        println!("|---|---|---|---|---|");
        let mut ordered: Vec<_> = self.gaps.iter().collect();
        ordered.sort_by_key(|(_, (histogram, index_sum))| *index_sum / histogram.len().max(1) as usize);
        for ((from, to), (histogram, _)) in ordered {
            if histogram.len() * 20 < self.runs as u64 {
                continue;
            }
            println!(
                "| {from} | {to} | {} | {} | {} |",
                histogram.len(),
                ms(histogram, 0.5),
                ms(histogram, 0.99)
            );
        }
    }

    /// Runs per second, the phases' mean.
    pub fn rate(&self) -> f64 {
        self.runs_per_second.iter().sum::<f64>() / self.runs_per_second.len().max(1) as f64
    }
}

/// Each run's and conversation's events after `since`, with the ledger's reservations and
/// charges of the run's calls among the run's, as (type, recorded_at) in order, by aggregate
/// id (the run's id for its ledger entries).
async fn stamps(pool: &PgPool, runs: &[&Finished], since: i64) -> HashMap<String, Moments> {
    let run_ids: Vec<String> = runs.iter().map(|run| run.run_id.clone()).collect();
    let conversation_ids: Vec<String> = runs.iter().map(|run| run.conversation_id.clone()).collect();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CASE WHEN aggregate_type = 'credit_account' THEN split_part(payload ->> 'llm_call', '/', 1) ELSE aggregate_id END,
                event_type, metadata ->> 'recorded_at'
           FROM events
          WHERE position > $3
            AND ((aggregate_type = 'run' AND aggregate_id = ANY($1))
              OR (aggregate_type = 'conversation' AND aggregate_id = ANY($2))
              OR (event_type IN ('credit_account.reserved', 'credit_account.charged')
                  AND split_part(payload ->> 'llm_call', '/', 1) = ANY($1)))
          ORDER BY position",
    )
    .bind(&run_ids)
    .bind(&conversation_ids)
    .bind(since)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut stamps: HashMap<String, Moments> = HashMap::new();
    for (owner, event_type, recorded_at) in rows {
        let at = DateTime::parse_from_rfc3339(&recorded_at)
            .unwrap()
            .with_timezone(&Utc);
        let moments = stamps.entry(owner).or_default();
        let seen = moments
            .iter()
            .filter(|(label, _)| label.split(" #").next() == Some(event_type.as_str()))
            .count();
        let label = if seen == 0 {
            event_type
        } else {
            format!("{event_type} #{}", seen + 1)
        };
        moments.push((label, at));
    }
    stamps
}
