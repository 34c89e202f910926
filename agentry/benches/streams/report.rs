//! The figures as text: a block per phase as it ends, then the summary tables for
//! BENCHMARKS.md with the ratios to the reference and to the seed's stack, and the goals.

use hdrhistogram::Histogram;

use crate::phases::{IdleFigures, Streaming, StreamingFigures};

/// The seed's stack (FastAPI + uvicorn + Redis pub/sub), measured on this machine kind:
/// server CPU per delivered delta, µs (DESIGN-NOTES §8).
const SEED_CPU_PER_DELTA_US: f64 = 650.0;
/// The seed's memory per idle WebSocket, KiB.
const SEED_KIB_PER_IDLE: f64 = 41.0;
/// Issue 13's goals: token p99 (ms), memory per idle WebSocket (KiB, and its floor), CPU
/// efficiency over the seed's.
const GOAL_P99_MS: f64 = 25.0;
const GOAL_KIB_PER_IDLE: f64 = 8.0;
const FLOOR_KIB_PER_IDLE: f64 = 20.0;
const GOAL_TIMES_SEED: f64 = 10.0;

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn pace(load: &Streaming) -> String {
    match load.every {
        Some(every) => format!("a chunk every {} ms", every.as_millis()),
        None => "as fast as possible".to_owned(),
    }
}

pub fn print_streaming(figures: &StreamingFigures, load: &Streaming) {
    let seconds = figures.window.as_secs_f64();
    println!(
        "{} runs × {} subscribers, {} chunks per run, {}; window {seconds:.1} s, {} runs finished in it",
        load.runs,
        load.subscribers,
        load.chunks,
        pace(load),
        figures.runs_finished
    );
    println!(
        "delivered {} deltas = {:.0}/s ({:.0} chunks/s generated)",
        figures.deltas,
        figures.delivered_per_second(),
        figures.chunks as f64 / seconds
    );
    let latency = &figures.latency;
    println!(
        "token latency: p50 {:.2} ms, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2} ({} samples)",
        ms(latency, 0.5),
        ms(latency, 0.9),
        ms(latency, 0.99),
        ms(latency, 0.999),
        latency.max() as f64 / 1000.0,
        latency.len()
    );
    println!(
        "server CPU {:.2} s = {:.2} µs per delivered delta ({:.0}% of a core); bench (clients + LLM) CPU {:.2} s; server RSS {:.1} MiB",
        figures.server_cpu,
        figures.cpu_per_delta_us(),
        figures.server_cpu * 100.0 / seconds,
        figures.bench_cpu,
        figures.server_rss_kib as f64 / 1024.0
    );
    println!("problems: {}", figures.problems);
}

pub fn print_nats_hop(latency: &Histogram<u64>) {
    println!(
        "core NATS publish → subscribe: p50 {:.2} ms, p99 {:.2}, p99.9 {:.2}, max {:.2} ({} samples)",
        ms(latency, 0.5),
        ms(latency, 0.99),
        ms(latency, 0.999),
        latency.max() as f64 / 1000.0,
        latency.len()
    );
}

pub fn print_idle(figures: &IdleFigures) {
    println!(
        "{} connections ({} attached) opened in {:.1} s; server RSS {} KiB with one open, {} with all, {} after {} s held, {} 2 s after closing, {} with {} opened again",
        figures.connections,
        figures.attached,
        figures.opened_in.as_secs_f64(),
        figures.rss_base,
        figures.rss_open,
        figures.rss_held,
        figures.hold.as_secs(),
        figures.rss_closed,
        figures.rss_reopened,
        figures.connections
    );
    println!(
        "memory per idle connection {:.2} KiB; server CPU while held {:.2} s ({:.1} µs per connection per second)",
        figures.kib_per_connection(),
        figures.cpu_held,
        figures.cpu_held * 1e6 / figures.connections as f64 / figures.hold.as_secs_f64()
    );
    println!("problems: {}", figures.problems);
}

fn find<'a, T>(figures: &'a [T], target: &str, name: impl Fn(&T) -> &str) -> Option<&'a T> {
    figures.iter().find(|figure| name(figure) == target)
}

fn ratio(agentry: f64, reference: Option<f64>) -> String {
    match reference {
        Some(reference) if reference > 0.0 => format!("{:.2}×", agentry / reference),
        _ => "–".to_owned(),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

pub fn print_summary(
    latency_load: &Streaming,
    latency: &[StreamingFigures],
    nats_hop: Option<&Histogram<u64>>,
    load_load: &Streaming,
    load: &[StreamingFigures],
    idle: &[IdleFigures],
) {
    println!("# Summary\n");
    if !latency.is_empty() {
        println!(
            "Token latency, {} runs × {} subscribers, {} chunks per run, {}:\n",
            latency_load.runs,
            latency_load.subscribers,
            latency_load.chunks,
            pace(latency_load)
        );
        print_streaming_table(latency);
        if let Some(hop) = nats_hop {
            println!(
                "\nThe NATS hop alone (core publish → subscribe, same message rate): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms.",
                ms(hop, 0.5),
                ms(hop, 0.99),
                hop.max() as f64 / 1000.0
            );
        }
        if let Some(agentry) = find(latency, "agentry", |f| f.target) {
            let reference = find(latency, "reference", |f| f.target);
            let p99 = ms(&agentry.latency, 0.99);
            println!(
                "\nAgentry p99 {p99:.2} ms: {} the reference's ({} p99); goal < {GOAL_P99_MS} ms: {}",
                ratio(p99, reference.map(|r| ms(&r.latency, 0.99))),
                reference.map_or("–".to_owned(), |r| format!("{:.2} ms", ms(&r.latency, 0.99))),
                verdict(p99 < GOAL_P99_MS)
            );
        }
    }
    if !load.is_empty() {
        println!(
            "\nSustained load, {} runs × {} subscribers, {} chunks per run, {}:\n",
            load_load.runs,
            load_load.subscribers,
            load_load.chunks,
            pace(load_load)
        );
        print_streaming_table(load);
        if let Some(agentry) = find(load, "agentry", |f| f.target) {
            let reference = find(load, "reference", |f| f.target);
            let per_delta = agentry.cpu_per_delta_us();
            let times_seed = SEED_CPU_PER_DELTA_US / per_delta;
            println!(
                "\nAgentry {per_delta:.2} µs of server CPU per delivered delta: {} the reference's; the seed's stack {SEED_CPU_PER_DELTA_US} µs, so {times_seed:.1}× better (goal ≥ {GOAL_TIMES_SEED}×: {})",
                ratio(per_delta, reference.map(StreamingFigures::cpu_per_delta_us)),
                verdict(times_seed >= GOAL_TIMES_SEED)
            );
        }
    }
    if !idle.is_empty() {
        println!("\nIdle WebSockets on one waiting run:\n");
        println!(
            "| server | connections | opened in | RSS with one | RSS with all | after hold | after closing | opened again | per connection | CPU while held | problems |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for figures in idle {
            println!(
                "| {} | {} | {:.1} s | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | **{:.2} KiB** | {:.2} s / {} s | {} |",
                figures.target,
                figures.connections,
                figures.opened_in.as_secs_f64(),
                figures.rss_base as f64 / 1024.0,
                figures.rss_open as f64 / 1024.0,
                figures.rss_held as f64 / 1024.0,
                figures.rss_closed as f64 / 1024.0,
                figures.rss_reopened as f64 / 1024.0,
                figures.kib_per_connection(),
                figures.cpu_held,
                figures.hold.as_secs(),
                figures.problems
            );
        }
        if let Some(agentry) = find(idle, "agentry", |f| f.target) {
            let reference = find(idle, "reference", |f| f.target);
            let kib = agentry.kib_per_connection();
            println!(
                "\nAgentry {kib:.2} KiB per idle WebSocket: {} the reference's; the seed's {SEED_KIB_PER_IDLE} KiB; goal ≤ {GOAL_KIB_PER_IDLE} KiB: {}, floor {FLOOR_KIB_PER_IDLE} KiB: {}",
                ratio(kib, reference.map(IdleFigures::kib_per_connection)),
                verdict(kib <= GOAL_KIB_PER_IDLE),
                verdict(kib <= FLOOR_KIB_PER_IDLE)
            );
        }
    }
}

fn print_streaming_table(figures: &[StreamingFigures]) {
    println!(
        "| server | delivered deltas/s | chunks/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU per delta | server CPU | bench CPU | problems |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for figures in figures {
        let seconds = figures.window.as_secs_f64();
        let latency = &figures.latency;
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | **{:.2} µs** | {:.0}% of a core | {:.0}% of a core | {} |",
            figures.target,
            figures.delivered_per_second(),
            figures.chunks as f64 / seconds,
            ms(latency, 0.5),
            ms(latency, 0.99),
            ms(latency, 0.999),
            latency.max() as f64 / 1000.0,
            figures.cpu_per_delta_us(),
            figures.server_cpu * 100.0 / seconds,
            figures.bench_cpu * 100.0 / seconds,
            figures.problems
        );
    }
}
