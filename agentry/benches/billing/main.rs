//! Billing on the run path (issue 15): what reserving before and settling after each LLM call
//! costs, at 16 concurrent runs in one organization and across 16 organizations.
//!
//! `cargo bench -p agentry --bench billing` (needs Postgres). `BENCH_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/agentry_bench_billing, dropped and recreated),
//! `BENCH_SECONDS` per phase (default 8), `BENCH_CLIENTS` (default 16), `BENCH_ROUNDS`
//! (default 2; 0 skips part 1), `BENCH_SIDE_ROUNDS` (default `BENCH_ROUNDS`, rounded up to an
//! even count; 0 skips part 2), `BENCH_SIDE_CLIENTS` (default half of `BENCH_CLIENTS`). About
//! 2.5 minutes.
//!
//! 1. **End to end**: the runs bench's 3-step runs (model → tool → model, against an LLM and a
//!    tool that answer at once) by `BENCH_CLIENTS` clients, each one run after another; all
//!    clients in one organization, then each in its own. For each, the application is built
//!    with billing off and on in turn (off, on, on, off for 2 rounds: drift of the machine
//!    falls on both), each phase on a fresh application over the same database. The runs
//!    bench's overhead per step, and per LLM call the stretches billing works in (see
//!    `steps.rs`); every organization starts with 10^12 credits and the bench checks no run
//!    paused.
//! 2. **Side by side**: the same, with billing on in one application and off in another at the
//!    same moment, each on a database of its own (`<BENCH_DATABASE_URL>_beside` for the second)
//!    on the same Postgres, `BENCH_SIDE_CLIENTS` clients each (by default half, so the machine
//!    carries `BENCH_CLIENTS` runs as in part 1). In turn the machine drifts between phases by
//!    more than the goal (1 ms p99 per LLM call); side by side both feel the same drift. A
//!    control round with billing off in both shows the measurement's own noise (and the two
//!    databases' difference).
//! 3. **The ledger alone**: reserve + settle pairs timed directly against a `BillingService`,
//!    1 task, `BENCH_CLIENTS` tasks on one account, and as many on one account each, next to a
//!    bare INSERT + COMMIT from 1 and from `BENCH_CLIENTS` connections in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../support/mod.rs"]
mod support;

// Shared with the runs bench; not every field is read here.
#[allow(dead_code)]
#[path = "../runs/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../runs/servers.rs"]
mod servers;

mod ledger;
mod load;
mod report;
mod runs;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use commands::billing::{BillingConfig, BillingService};
use eventstore::EventStore;

use report::{Layout, Outcome};
use runs::{Org, Phase, Target, together};
use steps::Steps;
use support::env_or;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = support::database_url("agentry_bench_billing");
    let seconds = Duration::from_secs(env_or("BENCH_SECONDS", 8));
    let clients = env_or("BENCH_CLIENTS", 16) as usize;
    let rounds = env_or("BENCH_ROUNDS", 2) as usize;
    // Even, so each database is billed as often as the other.
    let side_rounds = env_or("BENCH_SIDE_ROUNDS", rounds as u64).next_multiple_of(2) as usize;
    let side_clients = (env_or("BENCH_SIDE_CLIENTS", clients as u64 / 2) as usize).clamp(1, clients);
    println!("machine at the start: load average {}\n", load::load_average());

    let timeline = Arc::new(servers::Timeline::default());
    let llm_url = servers::start_llm(Arc::clone(&timeline)).await;
    let tool_url = servers::start_tool(Arc::clone(&timeline)).await;
    let (target, orgs) = Target::create(&url, &llm_url, &tool_url, &timeline, clients).await;

    let mut outcomes = Vec::new();
    for layout in [Layout::OneOrg, Layout::ManyOrgs] {
        let members = layout.members(&orgs, clients);
        let (mut off, mut on) = (Steps::default(), Steps::default());
        for round in 0..rounds {
            // off, on, then on, off: a drift of the machine weighs on both alike.
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for billing in order {
                let label = format!("{}-{}-{round}", layout.tag(), if billing { "on" } else { "off" });
                let phase = target.phase(&label, &members, billing, seconds).await;
                let steps = if billing { &mut on } else { &mut off };
                add_phase(steps, &target, (label, phase)).await;
            }
        }
        outcomes.push(Outcome { layout, off, on });
    }
    if rounds > 0 {
        println!();
        report::print_runs(
            &format!("end to end: {clients} concurrent runs, billing off and on in turn"),
            &outcomes,
            clients,
            ["off", "on"],
        );
    }

    if side_rounds > 0 {
        side_by_side(&target, &orgs, side_clients, side_rounds, seconds).await;
    }

    let store = EventStore::new(
        eventstore::database::connect(&url, 32).await.unwrap(),
        domain::upcasting::upcasters(),
    );
    let billing = Arc::new(BillingService::new(
        &store,
        BillingConfig {
            signup_credits: runs::SIGNUP_CREDITS,
            stripe: None,
        },
    ));
    support::create_bare_table(&target.pool).await;
    // Each bare INSERT phase right before the pairs it is compared with.
    let cpu = load::CpuSnapshot::take();
    let every_org: Vec<uuid::Uuid> = orgs.iter().map(|org| org.org_id).collect();
    let bare_1 = ledger::bare(&target.pool, 1, seconds / 2).await;
    let alone = ledger::pairs(&billing, &target.pool, &every_org[..1], seconds / 2).await;
    let bare_n = ledger::bare(&target.pool, clients, seconds / 2).await;
    let one_account = ledger::pairs(&billing, &target.pool, &vec![every_org[0]; clients], seconds / 2).await;
    let many_accounts = ledger::pairs(&billing, &target.pool, &every_org, seconds / 2).await;
    println!("ledger phases: {}\n", cpu.usage_until_now());
    report::print_ledger(
        clients,
        (&bare_1, &bare_n),
        [&alone, &one_account, &many_accounts],
    );
    target.pool.close().await;
}

/// Adds a phase's runs to `steps` after printing what it did; no run may have paused for
/// credits.
async fn add_phase(steps: &mut Steps, target: &Target, (label, phase): (String, Phase)) {
    println!(
        "{label}: {:.1} runs/s, {} runs; {} run.paused; {}",
        phase.runs_per_second,
        phase.finished.len(),
        phase.paused,
        phase.usage
    );
    assert_eq!(
        phase.paused, 0,
        "a run paused for credits: the figures would include its wait"
    );
    steps
        .add_phase(&target.pool, &phase.finished, phase.since, phase.runs_per_second)
        .await;
}

/// Billing on and off at the same moment: two applications, each on a database of its own
/// (one log each, so neither executes the other's runs) on the same Postgres, `clients`
/// clients each, in one measuring window. Which database bills alternates by round (`rounds`
/// is even). Then a control round with billing off in both: the difference two unbilled
/// applications show side by side, the measurement's own noise plus the two databases'
/// difference (the first holds part 1's history; the alternation cancels it, the control
/// does not).
async fn side_by_side(first: &Target, first_orgs: &[Org], clients: usize, rounds: usize, seconds: Duration) {
    let (second, second_orgs) = Target::create(
        &beside(&first.url),
        &first.llm_url,
        &first.tool_url,
        &first.timeline,
        clients,
    )
    .await;
    let mut outcomes = Vec::new();
    let mut controls = Vec::new();
    for layout in [Layout::OneOrg, Layout::ManyOrgs] {
        let databases = [
            (first, layout.members(first_orgs, clients)),
            (&second, layout.members(&second_orgs, clients)),
        ];
        let (mut off, mut on) = (Steps::default(), Steps::default());
        for round in 0..rounds {
            let label = format!("{}-beside-{round}", layout.tag());
            let billed = Some(round % 2);
            for (target, billing, phase) in side_round(&label, &databases, billed, seconds).await {
                let steps = if billing { &mut on } else { &mut off };
                add_phase(steps, target, phase).await;
            }
        }
        outcomes.push(Outcome { layout, off, on });

        let label = format!("{}-control", layout.tag());
        let mut unbilled = [Steps::default(), Steps::default()];
        let phases = side_round(&label, &databases, None, seconds).await;
        for ((target, _, phase), steps) in phases.into_iter().zip(&mut unbilled) {
            add_phase(steps, target, phase).await;
        }
        let [first_off, second_off] = unbilled;
        controls.push(Outcome {
            layout,
            off: first_off,
            on: second_off,
        });
    }
    println!();
    report::print_runs(
        &format!(
            "side by side: billing on in one application and off in another at the same moment, {clients} concurrent runs each ({rounds} rounds, the billed database alternating)"
        ),
        &outcomes,
        clients,
        ["off", "on"],
    );
    report::print_runs(
        &format!(
            "control: billing off in both applications side by side, {clients} concurrent runs each (the difference is the measurement's noise plus the two databases' difference: the first holds part 1's history)"
        ),
        &controls,
        clients,
        ["off, database 1", "off, database 2"],
    );
    second.pool.close().await;
}

/// One side-by-side round: each database's application serving at once, billing on in the
/// one numbered `billed` (none: all unbilled). Answers, in the databases' order, each one's
/// target, whether it billed, and its phase with the label it is printed under.
async fn side_round<'a>(
    label: &str,
    databases: &'a [(&'a Target, Vec<Org>); 2],
    billed: Option<usize>,
    seconds: Duration,
) -> Vec<(&'a Target, bool, (String, Phase))> {
    let apps: Vec<(&Target, &[Org], bool)> = databases
        .iter()
        .enumerate()
        .map(|(index, (target, members))| (*target, members.as_slice(), billed == Some(index)))
        .collect();
    let phases = together(label, &apps, seconds).await;
    apps.iter()
        .zip(phases)
        .enumerate()
        .map(|(index, ((target, _, billing), phase))| {
            let on_off = if *billing { "on" } else { "off" };
            let label = format!("{label} (database {}, billing {on_off})", index + 1);
            (*target, *billing, (label, phase))
        })
        .collect()
}

/// The database beside `url`'s: its name with `_beside` appended, the rest of the URL as is.
fn beside(url: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("BENCH_DATABASE_URL is a URL");
    let name = url.path().trim_start_matches('/').to_owned();
    url.set_path(&format!("/{name}_beside"));
    url.to_string()
}
