//! From the servers' times and the events' `recorded_at` stamps to the figures: overhead per
//! step, where it goes, and the bytes each run leaves in the database.
//!
//! Every event's `recorded_at` is taken when its command's metadata is built, just before its
//! append; so the gap from one event's stamp to the next is, roughly, the first one's append
//! (a round trip and a commit) plus whatever ran between them.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use sqlx::PgPool;

use crate::client::Finished;

/// The database's size at one moment.
pub struct Sizes {
    position: i64,
    events_bytes: i64,
    database_bytes: i64,
    /// Transactions committed in the database (`pg_stat_database`): with no explicit
    /// transaction, every statement is one.
    transactions: i64,
}

impl Sizes {
    pub async fn read(pool: &PgPool) -> Self {
        // Backends report their counters at most once a second, and an idle one only after
        // 10 s: wait that out so the counts are whole.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let (position, events_bytes, database_bytes, transactions): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE((SELECT max(position) FROM events), 0), pg_total_relation_size('events'), pg_database_size(current_database()),
                    (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        Self {
            position,
            events_bytes,
            database_bytes,
            transactions,
        }
    }
}

impl Sizes {
    /// Transactions committed between `earlier` and this reading.
    pub fn transactions_since(&self, earlier: &Sizes) -> i64 {
        self.transactions - earlier.transactions
    }
}

/// One concurrency's headline figures.
pub struct Summary {
    concurrency: usize,
    runs_per_second: f64,
    step: Histogram<u64>,
    llm_to_llm: Histogram<u64>,
    to_end: Histogram<u64>,
    client: Histogram<u64>,
    bytes_per_run: f64,
    relation_bytes_per_run: f64,
    transactions_per_run: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).unwrap()
}

fn micros(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_microseconds().unwrap_or(0).max(0) as u64
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> String {
    format!("{:.2}", histogram.value_at_quantile(quantile) as f64 / 1e3)
}

/// Prints the figures of one concurrency and answers its summary.
pub async fn analyse(
    pool: &PgPool,
    concurrency: usize,
    runs_per_second: f64,
    finished: &[Finished],
    (before, after): (&Sizes, &Sizes),
    idle_transactions: i64,
) -> Summary {
    let measured: Vec<&Finished> = finished.iter().filter(|run| run.measured).collect();
    let stamps = event_stamps(pool, &measured).await;

    let (mut to_tool, mut after_tool, mut llm_to_llm, mut to_end, mut step, mut client) = (
        histogram(),
        histogram(),
        histogram(),
        histogram(),
        histogram(),
        histogram(),
    );
    let mut gaps: HashMap<(String, String), (Histogram<u64>, usize)> = HashMap::new();
    let mut incomplete = 0;
    for run in &measured {
        let times = &run.times;
        let events = stamps.get(&run.run_id).cloned().unwrap_or_default();
        let conversation = stamps.get(&run.conversation_id).cloned().unwrap_or_default();
        let ended = conversation
            .iter()
            .find(|(label, _)| label == "conversation.run_ended")
            .map(|(_, at)| *at);
        let completed = events.iter().any(|(label, _)| label == "run.completed")
            && events.iter().any(|(label, _)| label == "tool_call.completed");
        let shaped = times.llm_requests.len() == 2
            && times.llm_last_bytes.len() == 2
            && times.tool_requests.len() == 1
            && times.tool_answers.len() == 1;
        let (Some(ended), true, true) = (ended, completed, shaped) else {
            incomplete += 1;
            if incomplete <= 3 {
                println!(
                    "incomplete run {} ({}): {times:?} {events:?} {conversation:?}",
                    run.run_id, run.tag
                );
            }
            continue;
        };
        let first_done = times.llm_last_bytes[0];
        to_tool
            .record(micros(first_done, times.tool_requests[0]))
            .unwrap();
        after_tool
            .record(micros(times.tool_answers[0], times.llm_requests[1]))
            .unwrap();
        let between = micros(first_done, times.llm_requests[1]);
        llm_to_llm.record(between).unwrap();
        let end = micros(times.llm_last_bytes[1], ended);
        to_end.record(end).unwrap();
        step.record(between).unwrap();
        step.record(end).unwrap();
        client.record(run.client_latency.as_micros() as u64).unwrap();

        // The run's whole timeline, the servers' moments among the events' stamps.
        let mut moments: Vec<(String, DateTime<Utc>)> = Vec::new();
        for (number, (request, last)) in times.llm_requests.iter().zip(&times.llm_last_bytes).enumerate() {
            moments.push((format!("[LLM request {}]", number + 1), *request));
            moments.push((format!("[LLM last byte {}]", number + 1), *last));
        }
        moments.push(("[tool request]".to_owned(), times.tool_requests[0]));
        moments.push(("[tool answered]".to_owned(), times.tool_answers[0]));
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (label, at) in events.iter().chain(conversation.iter()) {
            let count = seen.entry(label.as_str()).or_default();
            *count += 1;
            let label = if *count > 1 {
                format!("{label} #{count}")
            } else {
                label.clone()
            };
            moments.push((label, *at));
        }
        moments.sort_by_key(|(_, at)| *at);
        for (index, pair) in moments.windows(2).enumerate() {
            let entry = gaps
                .entry((pair[0].0.clone(), pair[1].0.clone()))
                .or_insert_with(|| (histogram(), 0));
            entry.0.record(micros(pair[0].1, pair[1].1)).unwrap();
            entry.1 += index;
        }
    }

    let runs = finished.len() as f64;
    let rows = event_sizes(pool, before.position).await;
    let total_bytes: i64 = rows.iter().map(|(_, _, bytes)| bytes).sum();
    println!(
        "{} runs in all, {} inside the window ({incomplete} not complete); {runs_per_second:.1} runs/s\n",
        finished.len(),
        measured.len()
    );
    println!("| overhead (ms) | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (name, histogram) in [
        ("LLM 1 last byte → tool request", &to_tool),
        ("tool answered → LLM request 2", &after_tool),
        ("LLM 1 last byte → LLM request 2", &llm_to_llm),
        ("LLM 2 last byte → run ended", &to_end),
        ("per step (the two above)", &step),
        ("client: POST …/runs → end seen", &client),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            ms(histogram, 0.5),
            ms(histogram, 0.9),
            ms(histogram, 0.99),
            ms(histogram, 1.0)
        );
    }
    println!(
        "\nwhere the time goes (gaps between consecutive moments; an event's moment is its `recorded_at`, taken just before its append):\n"
    );
    println!("| from | to | runs | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    let mut ordered: Vec<_> = gaps.into_iter().collect();
    ordered.sort_by_key(|(_, (histogram, index_sum))| *index_sum / histogram.len().max(1) as usize);
    for ((from, to), (histogram, _)) in &ordered {
        if histogram.len() * 20 < measured.len() as u64 {
            continue; // an ordering seen in fewer than 5% of the runs
        }
        println!(
            "| {from} | {to} | {} | {} | {} |",
            histogram.len(),
            ms(histogram, 0.5),
            ms(histogram, 0.99)
        );
    }
    println!("\ndatabase per run ({} runs):\n", finished.len());
    println!("| aggregate | rows/run | bytes/run (sum of pg_column_size of the rows) |");
    println!("|---|---|---|");
    for (aggregate, count, bytes) in &rows {
        println!(
            "| {aggregate} | {:.1} | {:.0} |",
            *count as f64 / runs,
            *bytes as f64 / runs
        );
    }
    let relation = (after.events_bytes - before.events_bytes) as f64 / runs;
    println!(
        "\n`events` with its indexes grew by {relation:.0} B/run (pg_total_relation_size); the database by {:.0} B/run (pg_database_size)\n",
        (after.database_bytes - before.database_bytes) as f64 / runs
    );
    let polls: u32 = finished.iter().map(|run| run.polls).sum();
    // Less the bench's own polls, and what an idle wait and a reading commit (the reading
    // after the phase waits as long).
    let transactions =
        (after.transactions_since(before) - i64::from(polls) - idle_transactions) as f64 / runs;
    println!(
        "the application committed {transactions:.1} transactions per run (pg_stat_database, less the bench's own {:.1} polls per run and the idle rate over the reading's wait)\n",
        f64::from(polls) / runs
    );
    Summary {
        concurrency,
        runs_per_second,
        step,
        llm_to_llm,
        to_end,
        client,
        bytes_per_run: total_bytes as f64 / runs,
        relation_bytes_per_run: relation,
        transactions_per_run: transactions,
    }
}

/// Each run's and conversation's events as (type, recorded_at), in order, by aggregate id.
async fn event_stamps(pool: &PgPool, runs: &[&Finished]) -> HashMap<String, Vec<(String, DateTime<Utc>)>> {
    let run_ids: Vec<String> = runs.iter().map(|run| run.run_id.clone()).collect();
    let conversation_ids: Vec<String> = runs.iter().map(|run| run.conversation_id.clone()).collect();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT aggregate_id, event_type, metadata ->> 'recorded_at' FROM events
         WHERE (aggregate_type = 'run' AND aggregate_id = ANY($1))
            OR (aggregate_type = 'conversation' AND aggregate_id = ANY($2))
         ORDER BY position",
    )
    .bind(&run_ids)
    .bind(&conversation_ids)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut stamps: HashMap<String, Vec<(String, DateTime<Utc>)>> = HashMap::new();
    for (aggregate_id, event_type, recorded_at) in rows {
        let at = DateTime::parse_from_rfc3339(&recorded_at)
            .unwrap()
            .with_timezone(&Utc);
        stamps.entry(aggregate_id).or_default().push((event_type, at));
    }
    stamps
}

/// Rows and bytes appended after `position`, by aggregate type.
async fn event_sizes(pool: &PgPool, position: i64) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT aggregate_type, count(*), sum(pg_column_size(e.*))::bigint FROM events e
         WHERE position > $1 GROUP BY aggregate_type ORDER BY aggregate_type",
    )
    .bind(position)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The table of every concurrency's headline figures.
pub fn print_summary(summaries: &[Summary]) {
    println!("## summary\n");
    println!(
        "| concurrent runs | runs/s | overhead per step p50 / p99 ms | LLM→LLM p50 / p99 ms | last byte→run end p50 / p99 ms | client run latency p50 / p99 ms | event bytes/run | `events` growth B/run | transactions/run |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for summary in summaries {
        println!(
            "| {} | {:.1} | {} / {} | {} / {} | {} / {} | {} / {} | {:.0} | {:.0} | {:.1} |",
            summary.concurrency,
            summary.runs_per_second,
            ms(&summary.step, 0.5),
            ms(&summary.step, 0.99),
            ms(&summary.llm_to_llm, 0.5),
            ms(&summary.llm_to_llm, 0.99),
            ms(&summary.to_end, 0.5),
            ms(&summary.to_end, 0.99),
            ms(&summary.client, 0.5),
            ms(&summary.client, 0.99),
            summary.bytes_per_run,
            summary.relation_bytes_per_run,
            summary.transactions_per_run,
        );
    }
}
