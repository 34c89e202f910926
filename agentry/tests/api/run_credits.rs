//! Runs and the credit ledger, over HTTP with real concurrent runs: every model call reserved
//! before it is made and charged after, a run's credits equal to its charges, runs short of
//! credits paused (`awaiting_credits`) and resumed by a top-up, no run paused while the balance
//! covers it, and no run started without credit (402).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use testkit::Reply;

use crate::accounts::expect_json;
use crate::billing::{all_entries, balance};
use crate::helpers::assert_problem;
use crate::run_flows::support::{Flow, MODEL};
use crate::stripe_server::{WEBHOOK_SECRET, session_event};

/// Every call of these tests may answer at most this many tokens: its worst case, at one
/// credit per completion token (prompts are free here), is this many credits.
const MAX_OUTPUT: u64 = 10;

/// The flows' application with prompts free, one credit per completion token, `credits` to
/// start with, and Stripe's webhook (to top up).
async fn billed_flow(credits: u64) -> Flow {
    Flow::start_with(move |settings| billed(settings, credits)).await
}

/// The settings of [`billed_flow`].
fn billed(settings: &mut agentry::settings::Settings, credits: u64) {
    settings.runs.llm_prices = Some(format!(
        r#"{{"{MODEL}": {{"prompt": 0, "completion": 1000000}}}}"#
    ));
    settings.billing.signup_credits = credits;
    settings.billing.stripe_webhook_secret = Some(SecretString::from(WEBHOOK_SECRET));
}

/// An agent on [`MODEL`] whose answers are limited to [`MAX_OUTPUT`] tokens.
async fn limited_agent(flow: &Flow) -> String {
    limited_agent_with(flow, &[]).await
}

/// [`limited_agent`] with `tools`.
async fn limited_agent_with(flow: &Flow, tools: &[&str]) -> String {
    let body = json!({
        "name": "Billed agent",
        "model": MODEL,
        "tools": tools,
        "max_output_tokens": MAX_OUTPUT,
        "max_steps": 3,
    });
    let response = flow
        .app
        .with_bearer(&flow.token)
        .post_json("/v1/agents", &body)
        .await;
    expect_json(response, StatusCode::CREATED, "create agent").await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Starts a run of an agent with the `weather` tool (at `path` on the tool server): the model
/// asks for the tool (3 completion tokens), then answers (2). Answers the run's id.
async fn weather_run(flow: &Flow, path: &str) -> String {
    flow.tool("weather", path, None).await;
    let agent = limited_agent_with(flow, &["weather"]).await;
    flow.llm
        .push(Reply::tool_call("call_1", "weather", [r#"{"city":"Oslo"}"#]).with_usage(5, 3))
        .push(Reply::words("Sunny").with_usage(9, 2));
    flow.run(&agent, "Weather?").await.1
}

/// Starts `count` runs at once, each in a conversation of its own: their ids.
async fn start_runs_at_once(flow: &Flow, agent: &str, count: usize) -> Vec<String> {
    let mut conversations = Vec::new();
    for _ in 0..count {
        conversations.push(crate::runs::conversation(&flow.app, &flow.token, agent).await);
    }
    let starts = conversations
        .iter()
        .map(|conversation| crate::runs::start_run(&flow.app, &flow.token, conversation, "Go"));
    futures::future::join_all(starts).await
}

/// The ledger's charges per run.
async fn charges_by_run(flow: &Flow) -> HashMap<String, u64> {
    let mut charges = HashMap::new();
    for entry in all_entries(&flow.app, &flow.token).await {
        if entry["kind"] == "charged" {
            *charges
                .entry(entry["run_id"].as_str().unwrap().to_owned())
                .or_default() += entry["credits"].as_u64().unwrap();
        }
    }
    charges
}

/// Waits until every run in `runs` has a status other than `queued` and `running`.
async fn settled_statuses(flow: &Flow, runs: &[String]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut statuses = Vec::new();
        for run in runs {
            statuses.push(flow.get_run(run).await["status"].as_str().unwrap().to_owned());
        }
        if statuses
            .iter()
            .all(|status| status != "queued" && status != "running")
        {
            return statuses;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "runs still going: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn org_id(flow: &Flow) -> uuid::Uuid {
    let me = expect_json(
        flow.app.with_bearer(&flow.token).get("/v1/me").await,
        StatusCode::OK,
        "me",
    )
    .await;
    me["org_id"].as_str().unwrap().parse().unwrap()
}

/// Buys `credits` through Stripe's webhook (signed as Stripe signs), delivered to `flow`'s node.
async fn top_up(flow: &Flow, event_id: &str, credits: u64) {
    top_up_on(flow, &flow.app, event_id, credits).await;
}

/// [`top_up`], delivered to `node`.
async fn top_up_on(flow: &Flow, node: &crate::helpers::TestApp, event_id: &str, credits: u64) {
    let event = session_event(
        event_id,
        "checkout.session.completed",
        &format!("cs_{event_id}"),
        org_id(flow).await,
        credits,
        100,
    );
    let body = serde_json::to_vec(&event).unwrap();
    let signature =
        commands::billing::stripe::sign(WEBHOOK_SECRET.as_bytes(), chrono::Utc::now().timestamp(), &body);
    let response = node
        .request(reqwest::Method::POST, "/v1/billing/stripe/webhook")
        .header("content-type", "application/json")
        .header("Stripe-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let answer = expect_json(response, StatusCode::OK, "webhook").await;
    assert_eq!(answer["result"], "granted", "{answer}");
}

#[tokio::test]
async fn with_credits_for_n_calls_n_plus_k_concurrent_runs_make_n_calls_and_the_rest_wait_for_a_top_up() {
    const N: usize = 3;
    const K: usize = 3;
    let flow = billed_flow(N as u64 * MAX_OUTPUT).await;
    let agent = limited_agent(&flow).await;
    // Each answer takes a moment, so the calls are under way together; each costs its worst case.
    for index in 0..N + K {
        flow.llm.push(
            Reply::words(&format!("answer {index}"))
                .with_usage(7, MAX_OUTPUT)
                .after(Duration::from_millis(300)),
        );
    }

    let runs = start_runs_at_once(&flow, &agent, N + K).await;
    let statuses = settled_statuses(&flow, &runs).await;
    let completed: Vec<&String> = runs
        .iter()
        .zip(&statuses)
        .filter(|(_, status)| *status == "completed")
        .map(|(run, _)| run)
        .collect();
    let paused: Vec<&String> = runs
        .iter()
        .zip(&statuses)
        .filter(|(_, status)| *status == "awaiting_credits")
        .map(|(run, _)| run)
        .collect();
    assert_eq!((completed.len(), paused.len()), (N, K), "{statuses:?}");
    assert_eq!(flow.llm.request_count(), N, "exactly N model calls were made");
    let account = balance(&flow.app, &flow.token).await;
    assert_eq!(
        (account["credits"].as_i64(), account["reserved"].as_i64()),
        (Some(0), Some(0)),
        "{account}"
    );

    // A paused run holds nothing, says why, and another run cannot start: 402.
    let events = flow.events(paused[0]).await;
    let (kind, pause) = events.last().unwrap();
    assert_eq!(kind, "run.paused");
    assert_eq!(pause["reason"], "insufficient_credits", "{pause}");
    assert_eq!(pause["credits_needed"], MAX_OUTPUT, "{pause}");
    let conversation = crate::runs::conversation(&flow.app, &flow.token, &agent).await;
    let refused = flow
        .app
        .with_bearer(&flow.token)
        .post_json(
            &format!("/v1/conversations/{conversation}/runs"),
            &json!({"input": "more"}),
        )
        .await;
    let problem = assert_problem(refused, StatusCode::PAYMENT_REQUIRED).await;
    assert_eq!(problem["code"], "insufficient_credits", "{problem}");

    // A paused run can be cancelled; a top-up wakes the others, which finish.
    flow.cancel(paused[0]).await;
    flow.run_reaching(paused[0], "cancelled").await;
    for index in 0..K - 1 {
        flow.llm
            .push(Reply::words(&format!("later {index}")).with_usage(7, MAX_OUTPUT));
    }
    top_up(&flow, "evt_topup", (K as u64 - 1) * MAX_OUTPUT).await;
    for run in &paused[1..] {
        let done = flow.run_reaching(run, "completed").await;
        assert_eq!(done["usage"]["credits"], MAX_OUTPUT, "{done:#}");
        let types = flow.event_types(run).await;
        let resumed = types.iter().position(|kind| kind == "run.resumed").unwrap();
        assert!(
            types.iter().position(|kind| kind == "run.paused").unwrap() < resumed,
            "{types:?}"
        );
    }
    assert_eq!(flow.llm.request_count(), N + K - 1);

    // A run's credits are its charges in the ledger; nothing is held, nothing is left.
    let charges = charges_by_run(&flow).await;
    for run in &runs {
        let credits = flow.get_run(run).await["usage"]["credits"].as_u64().unwrap();
        assert_eq!(charges.get(run).copied().unwrap_or(0), credits, "run {run}");
    }
    let account = balance(&flow.app, &flow.token).await;
    assert_eq!(
        (account["credits"].as_i64(), account["reserved"].as_i64()),
        (Some(0), Some(0)),
        "{account}"
    );
    flow.cleanup().await;
}

#[tokio::test]
async fn no_run_pauses_while_the_balance_covers_its_calls_even_when_worst_cases_exceed_it() {
    const RUNS: usize = 8;
    // Each call reserves 10 and costs 5: the balance covers every call's worst case at its
    // turn (the last one finds 10 left), but fewer than half of them at a time.
    let actual = MAX_OUTPUT / 2;
    let flow = billed_flow((RUNS as u64 - 1) * actual + MAX_OUTPUT).await;
    let agent = limited_agent(&flow).await;
    for index in 0..RUNS {
        flow.llm.push(
            Reply::words(&format!("answer {index}"))
                .with_usage(7, actual)
                .after(Duration::from_millis(200)),
        );
    }

    let runs = start_runs_at_once(&flow, &agent, RUNS).await;
    let statuses = settled_statuses(&flow, &runs).await;
    assert!(
        statuses.iter().all(|status| status == "completed"),
        "{statuses:?}"
    );
    let charges = charges_by_run(&flow).await;
    assert_eq!(charges.values().sum::<u64>(), RUNS as u64 * actual);
    for run in &runs {
        assert_eq!(charges[run], actual, "run {run}");
    }
    let account = balance(&flow.app, &flow.token).await;
    assert_eq!(
        (account["credits"].as_u64(), account["reserved"].as_i64()),
        (Some(MAX_OUTPUT - actual), Some(0)),
        "{account}"
    );
    flow.cleanup().await;
}

#[tokio::test]
async fn each_model_call_is_reserved_before_it_is_made_and_charged_from_the_providers_usage() {
    let flow = billed_flow(1_000).await;
    let agent = limited_agent(&flow).await;
    flow.llm.push(Reply::words("counted by us").without_usage());

    let (_, run) = flow.run(&agent, "Hello").await;
    let done = flow.run_reaching(&run, "completed").await;
    let entries: Vec<Value> = all_entries(&flow.app, &flow.token)
        .await
        .into_iter()
        .filter(|entry| entry["run_id"] == run.as_str())
        .collect();
    let kinds: Vec<&str> = entries
        .iter()
        .rev()
        .map(|entry| entry["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reserved", "charged", "released"], "{entries:#?}");
    let (reserved, charged, released) = (&entries[2], &entries[1], &entries[0]);
    assert_eq!(
        reserved["credits"], MAX_OUTPUT,
        "the worst case: the answer's limit"
    );
    assert_eq!(reserved["llm_call"], format!("{run}/1"));
    assert_eq!(charged["credits"], done["usage"]["credits"], "{done:#}");
    assert_eq!(
        charged["tokens_counted"], true,
        "the provider reported no usage: {charged}"
    );
    assert_eq!(
        charged["credits"].as_u64().unwrap() + released["credits"].as_u64().unwrap(),
        MAX_OUTPUT
    );
    // Each entry names the run's event that caused it.
    let events: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, to_jsonb(event_id) FROM events WHERE aggregate_type = 'run' AND aggregate_id = $1",
    )
    .bind(&run)
    .fetch_all(&flow.app.pool)
    .await
    .unwrap();
    let event_of = |kind: &str| events.iter().find(|(found, _)| found == kind).unwrap().1.clone();
    assert_eq!(reserved["caused_by"], event_of("llm_call.started"), "{reserved}");
    assert_eq!(charged["caused_by"], event_of("llm_call.completed"), "{charged}");
    // The run's start, its first call's start and the call's hold are one commit, as are the
    // run's end and its last charge: nobody sees the run ended without its charge, and the
    // request waits for no second commit in series.
    let transaction_of = |run_event: &'static str, ledger_event: &'static str| {
        let pool = flow.app.pool.clone();
        let run = run.clone();
        async move {
            let transactions: Vec<(String, String)> = sqlx::query_as(
                "SELECT event_type, transaction_id::text FROM events
                  WHERE (aggregate_type = 'run' AND aggregate_id = $1 AND event_type = $2)
                     OR (aggregate_type = 'credit_account' AND event_type = $3
                         AND payload ->> 'llm_call' = $1 || '/1')",
            )
            .bind(&run)
            .bind(run_event)
            .bind(ledger_event)
            .fetch_all(&pool)
            .await
            .unwrap();
            assert_eq!(transactions.len(), 2, "{transactions:?}");
            assert_eq!(transactions[0].1, transactions[1].1, "{transactions:?}");
        }
    };
    transaction_of("run.started", "credit_account.reserved").await;
    transaction_of("run.completed", "credit_account.charged").await;
    flow.cleanup().await;
}

#[tokio::test]
async fn a_call_that_asks_for_a_tool_is_charged_in_the_commit_of_its_answer() {
    let flow = billed_flow(1_000).await;
    let run = weather_run(&flow, "/weather").await;
    let done = flow.run_reaching(&run, "completed").await;
    assert_eq!(done["usage"]["credits"], 3 + 2, "{done:#}");
    let charges = charges_by_run(&flow).await;
    assert_eq!(charges.get(&run), Some(&(3 + 2)), "{charges:?}");
    // The first answer (the one asking for the tool) and its charge are one commit, so no
    // charge is in flight on the account when the tool's result asks for the next hold.
    let pool = &flow.app.pool;
    let answered: String = sqlx::query_scalar(
        "SELECT transaction_id::text FROM events
          WHERE aggregate_type = 'run' AND aggregate_id = $1 AND event_type = 'llm_call.completed'
          ORDER BY sequence LIMIT 1",
    )
    .bind(&run)
    .fetch_one(pool)
    .await
    .unwrap();
    let charged: Vec<String> = sqlx::query_scalar(
        "SELECT transaction_id::text FROM events
          WHERE aggregate_type = 'credit_account' AND event_type = 'credit_account.charged'
            AND payload ->> 'llm_call' = $1 || '/1'",
    )
    .bind(&run)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        charged,
        [answered],
        "the first call's charge, once, in its answer's commit"
    );
    flow.cleanup().await;
}

#[tokio::test]
async fn a_failed_call_is_not_charged_and_one_cancelled_while_streaming_is_charged_for_what_it_streamed() {
    let flow = billed_flow(1_000).await;
    let agent = limited_agent(&flow).await;
    flow.llm
        .push(Reply::error(400).with_body(r#"{"error": {"message": "no"}}"#))
        .push(Reply::text((0..100).map(|n| format!("slow{n} "))).every(Duration::from_millis(100)));

    let (_, failed) = flow.run(&agent, "Hello").await;
    flow.run_reaching(&failed, "failed").await;
    let (_, cancelled) = flow.run(&agent, "Hello again").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !flow
        .event_types(&cancelled)
        .await
        .iter()
        .any(|kind| kind == "message.delta")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answer did not stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = balance(&flow.app, &flow.token).await;
    assert_eq!(
        held["reserved"], MAX_OUTPUT,
        "the streaming call holds its worst case: {held}"
    );
    flow.cancel(&cancelled).await;
    let run = flow.run_reaching(&cancelled, "cancelled").await;

    // What the provider streamed before the cancel was paid for: the call is charged for the
    // text recorded of it, its tokens counted (four characters a token; prompts are free here).
    let step = &run["steps"][0];
    let recorded_chars = step["content"].as_str().unwrap().chars().count() as u64;
    assert!(recorded_chars > 0, "{run:#}");
    let streamed = recorded_chars.div_ceil(4).min(MAX_OUTPUT);
    assert_eq!(step["status"], "cancelled", "{run:#}");
    assert_eq!(step["completion_tokens"], streamed, "{run:#}");
    assert_eq!(run["usage"]["credits"], streamed, "{run:#}");
    let account = balance(&flow.app, &flow.token).await;
    assert_eq!(
        (account["credits"].as_u64(), account["reserved"].as_i64()),
        (Some(1_000 - streamed), Some(0)),
        "{account}"
    );
    let entries: Vec<Value> = all_entries(&flow.app, &flow.token)
        .await
        .into_iter()
        .filter(|entry| entry["run_id"] == failed.as_str() || entry["run_id"] == cancelled.as_str())
        .collect();
    let kinds: Vec<String> = entries
        .iter()
        .map(|entry| format!("{} {}", entry["kind"].as_str().unwrap(), entry["credits"]))
        .collect();
    assert_eq!(
        kinds,
        [
            format!("released {}", MAX_OUTPUT - streamed),
            format!("charged {streamed}"),
            "reserved 10".to_owned(),
            "released 10".to_owned(),
            "charged 0".to_owned(),
            "reserved 10".to_owned(),
        ],
        "newest first: the failed call's hold released in full, the cancelled one's charged for what it streamed"
    );
    let charge = &entries[1];
    assert_eq!(charge["tokens_counted"], true, "{charge}");
    let cancel_event: Value = sqlx::query_scalar(
        "SELECT to_jsonb(event_id) FROM events WHERE aggregate_type = 'run' AND aggregate_id = $1 AND event_type = 'run.cancelled'",
    )
    .bind(&cancelled)
    .fetch_one(&flow.app.pool)
    .await
    .unwrap();
    assert_eq!(
        charge["caused_by"], cancel_event,
        "the charge names the cancel: {charge}"
    );
    flow.cleanup().await;
}

#[tokio::test]
async fn a_hold_an_ended_run_was_left_with_is_released_when_another_run_needs_the_credits() {
    // Credits for two calls' worst cases.
    let flow = billed_flow(2 * MAX_OUTPUT).await;
    let agent = limited_agent(&flow).await;
    flow.llm
        .push(Reply::words("first").with_usage(7, 3))
        .push(Reply::words("second").with_usage(7, 3));
    let (_, first) = flow.run(&agent, "one").await;
    flow.run_reaching(&first, "completed").await;

    // What an executor leaves when the run is ended on another node while it asks for its next
    // call's hold, and it dies right after that hold is committed: a hold of an ended run that
    // nobody will settle (here asked through a billing service of its own, as that node's).
    let org_id = org_id(&flow).await;
    let node = crate::billing::billing_node(&flow.app, &flow.app.pool, 0);
    let first_id: uuid::Uuid = first.parse().unwrap();
    let context = eventstore::CommandContext::system(Some(org_id));
    let late = node
        .reserve(org_id, first_id, &format!("{first}/2"), MAX_OUTPUT, &context)
        .await
        .unwrap();
    assert!(
        matches!(late, commands::billing::ReserveOutcome::Reserved(_)),
        "{late:?}"
    );
    let account = balance(&flow.app, &flow.token).await;
    assert_eq!(
        (account["credits"].as_u64(), account["reserved"].as_u64()),
        (Some(2 * MAX_OUTPUT - 3), Some(MAX_OUTPUT)),
        "the balance covers another call, the credits available do not: {account}"
    );

    // The next run's call would wait for that hold to come back (up to a minute), then pause
    // for good; instead the ended run's hold is released and the call made.
    let (_, second) = flow.run(&agent, "two").await;
    let done = flow.run_reaching(&second, "completed").await;
    assert_eq!(done["usage"]["credits"], 3, "{done:#}");
    let account = balance(&flow.app, &flow.token).await;
    assert_eq!(
        (account["credits"].as_u64(), account["reserved"].as_u64()),
        (Some(2 * MAX_OUTPUT - 6), Some(0)),
        "{account}"
    );
    let late_entries: Vec<String> = all_entries(&flow.app, &flow.token)
        .await
        .into_iter()
        .filter(|entry| entry["run_id"] == first.as_str() && entry["llm_call"] == format!("{first}/2"))
        .map(|entry| format!("{} {}", entry["kind"].as_str().unwrap(), entry["credits"]))
        .collect();
    assert_eq!(
        late_entries,
        [
            format!("released {MAX_OUTPUT}"),
            "charged 0".to_owned(),
            format!("reserved {MAX_OUTPUT}")
        ],
        "the ended run recorded no call of step 2: nothing charged"
    );
    flow.cleanup().await;
}

#[tokio::test]
async fn a_smaller_hold_another_executor_left_for_the_next_call_is_topped_up_to_its_worst_case() {
    let flow = billed_flow(1_000).await;
    let run = weather_run(&flow, "/slow/1500/weather").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !flow
        .event_types(&run)
        .await
        .iter()
        .any(|kind| kind == "tool_call.started")
    {
        assert!(tokio::time::Instant::now() < deadline, "the tool was not called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // While the tool answers, the next call's key gets a hold smaller than that call's worst
    // case: what an executor taken over leaves when it asked for the hold ahead, with a tool
    // result it never recorded (here asked through a billing service of its own).
    let org_id = org_id(&flow).await;
    let node = crate::billing::billing_node(&flow.app, &flow.app.pool, 0);
    let run_id: uuid::Uuid = run.parse().unwrap();
    let context = eventstore::CommandContext::system(Some(org_id));
    let smaller = node
        .reserve(org_id, run_id, &format!("{run}/2"), 4, &context)
        .await
        .unwrap();
    assert!(
        matches!(smaller, commands::billing::ReserveOutcome::Reserved(_)),
        "{smaller:?}"
    );

    let done = flow.run_reaching(&run, "completed").await;
    assert_eq!(done["usage"]["credits"], 3 + 2, "{done:#}");
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for entry in all_entries(&flow.app, &flow.token).await.into_iter().rev() {
        if entry["run_id"] == run.as_str() {
            by_key
                .entry(entry["llm_call"].as_str().unwrap().to_owned())
                .or_default()
                .push(format!(
                    "{} {}",
                    entry["kind"].as_str().unwrap(),
                    entry["credits"]
                ));
        }
    }
    assert_eq!(
        by_key.get(&format!("{run}/2")).unwrap(),
        &["reserved 4", "charged 2", "released 2"],
        "{by_key:#?}"
    );
    assert_eq!(
        by_key.get(&format!("{run}/2+")),
        Some(&vec![
            "reserved 6".to_owned(),
            "charged 0".to_owned(),
            "released 6".to_owned()
        ]),
        "the call's worst case (10) was held in full, the difference under a key of its own: {by_key:#?}"
    );
    let account = balance(&flow.app, &flow.token).await;
    assert_eq!(
        (account["credits"].as_u64(), account["reserved"].as_u64()),
        (Some(1_000 - 5), Some(0)),
        "{account}"
    );
    flow.cleanup().await;
}

#[tokio::test]
async fn with_nats_a_run_paused_on_one_node_is_woken_by_a_top_up_on_another_and_finishes() {
    // After each run, 5 credits are left: enough to start a run, not for its call.
    const START: u64 = MAX_OUTPUT + 5;
    let nats = testkit::PrivateNats::start();
    let url = nats.url();
    let node_url = url.clone();
    let flow = Flow::start_with(move |settings| {
        billed(settings, START);
        settings.bus.nats_url = Some(url);
    })
    .await;
    let llm_url = flow.llm.base_url().to_owned();
    let other = flow
        .app
        .spawn_node_with(move |settings| {
            billed(settings, START);
            settings.bus.nats_url = Some(node_url);
            settings.runs.llm_base_url = Some(llm_url);
            settings.runs.llm_api_key = Some(SecretString::from("test-key"));
        })
        .await;
    let agent = limited_agent(&flow).await;
    for index in 0..3 {
        flow.llm
            .push(Reply::words(&format!("answer {index}")).with_usage(7, MAX_OUTPUT));
    }
    let (_, first) = flow.run(&agent, "one").await;
    flow.run_reaching(&first, "completed").await;
    let (_, second) = flow.run(&agent, "two").await;
    // The first run leaves 5 credits: the second starts, and pauses before its call.
    let paused = flow.run_reaching(&second, "awaiting_credits").await;
    assert_eq!(paused["usage"]["credits"], 0, "{paused:#}");

    // The grant is committed on the other node; the run is woken through the shared queue.
    top_up_on(&flow, &other, "evt_other_node", MAX_OUTPUT).await;
    let done = flow.run_reaching(&second, "completed").await;
    assert_eq!(done["usage"]["credits"], MAX_OUTPUT, "{done:#}");
    let (_, third) = flow.run(&agent, "three").await;
    flow.run_reaching(&third, "awaiting_credits").await;
    top_up_on(&flow, &other, "evt_other_node_again", MAX_OUTPUT).await;
    flow.run_reaching(&third, "completed").await;
    assert_eq!(flow.llm.request_count(), 3);
    other.cleanup().await;
    flow.cleanup().await;
}
