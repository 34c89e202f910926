//! The tables the bench prints: billing off against on for each layout of organizations, and
//! the ledger alone against the raw limit.

use hdrhistogram::Histogram;

use crate::ledger::{Bare, Figures};
use crate::steps::{Steps, ms, p50_p99};

/// Where the clients' runs are billed.
#[derive(Clone, Copy)]
pub enum Layout {
    /// Every client in one organization: every call goes through one account.
    OneOrg,
    /// Each client in its own organization.
    ManyOrgs,
}

impl Layout {
    pub fn tag(self) -> &'static str {
        match self {
            Self::OneOrg => "one-org",
            Self::ManyOrgs => "many-orgs",
        }
    }

    /// Each client's organization: the first of `orgs` for every client, or one each.
    pub fn members<T: Clone>(self, orgs: &[T], clients: usize) -> Vec<T> {
        match self {
            Self::OneOrg => vec![orgs[0].clone(); clients],
            Self::ManyOrgs => orgs[..clients].to_vec(),
        }
    }

    fn describe(self, clients: usize) -> String {
        match self {
            Self::OneOrg => "1 organization".to_owned(),
            Self::ManyOrgs => format!("{clients} organizations"),
        }
    }
}

/// One layout's phases, billing off and on pooled.
pub struct Outcome {
    pub layout: Layout,
    pub off: Steps,
    pub on: Steps,
}

/// `on − off` at a quantile, in milliseconds.
fn added(on: &Histogram<u64>, off: &Histogram<u64>, quantile: f64) -> String {
    let difference = on.value_at_quantile(quantile) as f64 - off.value_at_quantile(quantile) as f64;
    format!("{:+.2}", difference / 1e3)
}

fn added_p50_p99(on: &Histogram<u64>, off: &Histogram<u64>) -> String {
    format!("{} / {}", added(on, off, 0.5), added(on, off, 0.99))
}

/// The end-to-end figures under `title`: each layout with billing off and on (rows named
/// `labels`), the difference, and where the time goes in each.
pub fn print_runs(title: &str, outcomes: &[Outcome], clients: usize, labels: [&str; 2]) {
    println!("## {title}\n");
    println!(
        "| organizations | billing | runs/s | runs | overhead per step p50 / p99 ms | LLM→LLM p50 / p99 | last byte→run end p50 / p99 | per LLM call: reserve + settle stretches p50 / p99 | reserve stretch | settle stretch | client run latency p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for outcome in outcomes {
        let who = outcome.layout.describe(clients);
        for (billing, steps) in [(labels[0], &outcome.off), (labels[1], &outcome.on)] {
            println!(
                "| {who} | {billing} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
                steps.rate(),
                steps.runs,
                p50_p99(&steps.step),
                p50_p99(&steps.llm_to_llm),
                p50_p99(&steps.to_end),
                p50_p99(&steps.per_call),
                p50_p99(&steps.reserve),
                p50_p99(&steps.settle),
                p50_p99(&steps.client),
            );
        }
        let (on, off) = (&outcome.on, &outcome.off);
        println!(
            "| {who} | **{} − {}** | {:+.1} | | {} | {} | {} | **{}** | {} | {} | {} |",
            labels[1],
            labels[0],
            on.rate() - off.rate(),
            added_p50_p99(&on.step, &off.step),
            added_p50_p99(&on.llm_to_llm, &off.llm_to_llm),
            added_p50_p99(&on.to_end, &off.to_end),
            added_p50_p99(&on.per_call, &off.per_call),
            added_p50_p99(&on.reserve, &off.reserve),
            added_p50_p99(&on.settle, &off.settle),
            added_p50_p99(&on.client, &off.client),
        );
        if outcome.off.incomplete + outcome.on.incomplete > 0 {
            println!(
                "| {who} | incomplete runs: {} {}, {} {} | | | | | | | | | |",
                outcome.off.incomplete, labels[0], outcome.on.incomplete, labels[1]
            );
        }
    }
    for outcome in outcomes {
        for (billing, steps) in [(labels[0], &outcome.off), (labels[1], &outcome.on)] {
            println!(
                "\nwhere the time goes, {}, billing {billing} (gaps between consecutive moments; an event's moment is its `recorded_at`, taken inside its aggregate's lock just before its append):\n",
                outcome.layout.describe(clients)
            );
            steps.print_gaps();
        }
    }
    println!();
}

/// The ledger alone: pairs per second and their times, next to the bare INSERT.
pub fn print_ledger(clients: usize, (bare_1, bare_n): (&Bare, &Bare), [alone, one, many]: [&Figures; 3]) {
    println!("## the ledger alone: reserve + settle pairs against BillingService\n");
    println!(
        "raw limit in the same run: bare INSERT+COMMIT from 1 connection {:.0}/s, p50 / p99 {} ms; from {clients} connections {:.0}/s, p50 / p99 {} ms\n",
        bare_1.per_second,
        p50_p99(&bare_1.latency),
        bare_n.per_second,
        p50_p99(&bare_n.latency)
    );
    println!(
        "| tasks | accounts | pairs/s | pair p50 / p99 ms | reserve p50 / p99 | settle p50 / p99 | call → stamp (lock wait) p50 / p99 | stamp → answer (append) p50 / p99 | pair p50 ÷ bare p50 (same concurrency) | pair p99 ÷ bare p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let rows = [
        (1, 1, alone, bare_1),
        (clients, 1, one, bare_n),
        (clients, clients, many, bare_n),
    ];
    for (tasks, accounts, figures, bare) in rows {
        println!(
            "| {tasks} | {accounts} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            figures.pairs_per_second,
            p50_p99(&figures.pair),
            p50_p99(&figures.reserve),
            p50_p99(&figures.settle),
            p50_p99(&figures.lock_wait),
            p50_p99(&figures.append),
            ratio(&figures.pair, &bare.latency, 0.5),
            ratio(&figures.pair, &bare.latency, 0.99),
        );
    }
    println!(
        "\none account: {:.0} pairs/s × 2 appends × {:.3} ms (stamp → answer, mean) = the account's lock held {:.0}% of the time; alone an append takes {} ms (p50)",
        one.pairs_per_second,
        one.append.mean() / 1e3,
        one.pairs_per_second * 2.0 * one.append.mean() / 1e6 * 100.0,
        ms(&alone.append, 0.5),
    );
}

fn ratio(of: &Histogram<u64>, to: &Histogram<u64>, quantile: f64) -> f64 {
    of.value_at_quantile(quantile) as f64 / to.value_at_quantile(quantile).max(1) as f64
}
