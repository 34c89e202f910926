//! Billing on the run path (issue 15): what reserving before and settling after each LLM call
//! costs, at 16 concurrent runs in one organization and across 16 organizations.
//!
//! `cargo bench -p agentry --bench billing` (needs Postgres). `BENCH_DATABASE_URL` (default
//! postgres://postgres@127.0.0.1:5432/agentry_bench_billing, dropped and recreated),
//! `BENCH_SECONDS` per phase (default 8), `BENCH_CLIENTS` (default 16), `BENCH_ROUNDS`
//! (default 2). About 1.5 minutes.
//!
//! 1. **End to end**: the runs bench's 3-step runs (model → tool → model, against an LLM and a
//!    tool that answer at once) by `BENCH_CLIENTS` clients, each one run after another; all
//!    clients in one organization, then each in its own. For each, the application is built
//!    with billing off and on in turn (off, on, on, off for 2 rounds: drift of the machine
//!    falls on both), each phase on a fresh application over the same database. The runs
//!    bench's overhead per step, and per LLM call the stretches billing works in (see
//!    `steps.rs`); every organization starts with 10^12 credits and the bench checks no run
//!    paused.
//! 2. **The ledger alone**: reserve + settle pairs timed directly against a `BillingService`,
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
use sqlx::migrate::MigrateDatabase;

use report::{Layout, Outcome};
use runs::{Org, Target};
use steps::Steps;
use support::env_or;

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = support::database_url("agentry_bench_billing");
    let seconds = Duration::from_secs(env_or("BENCH_SECONDS", 8));
    let clients = env_or("BENCH_CLIENTS", 16) as usize;
    let rounds = env_or("BENCH_ROUNDS", 2) as usize;
    let _ = sqlx::Postgres::drop_database(&url).await;
    println!("machine at the start: load average {}\n", load::load_average());

    let timeline = Arc::new(servers::Timeline::default());
    let llm_url = servers::start_llm(Arc::clone(&timeline)).await;
    let tool_url = servers::start_tool(Arc::clone(&timeline)).await;
    // Migrated by the first application; the bench's own connections open after it.
    let target = Target {
        pool: sqlx::PgPool::connect_lazy(&url).unwrap(),
        url: url.clone(),
        llm_url,
        tool_url,
        timeline,
    };
    let orgs = target.organizations(clients).await;
    let target = Target {
        pool: eventstore::database::connect(&url, 20).await.unwrap(),
        ..target
    };

    let mut outcomes = Vec::new();
    for layout in [Layout::OneOrg, Layout::ManyOrgs] {
        let members: Vec<Org> = match layout {
            Layout::OneOrg => vec![orgs[0].clone(); clients],
            Layout::ManyOrgs => orgs.clone(),
        };
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
                let steps = if billing { &mut on } else { &mut off };
                steps
                    .add_phase(&target.pool, &phase.finished, phase.since, phase.runs_per_second)
                    .await;
            }
        }
        outcomes.push(Outcome { layout, off, on });
    }
    println!();
    report::print_runs(&outcomes, clients);

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
