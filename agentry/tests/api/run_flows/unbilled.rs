//! Runs that are not billed (`AGENTRY_BILLING_ENABLED=false`): no hold or charge has to come
//! between a run's start and its first model call, or between its answer and its end, so each
//! pair is recorded in one append (one commit fewer each), and the run is the same to a reader.

use serde_json::json;
use testkit::Reply;

use super::support::Flow;

#[tokio::test]
async fn an_unbilled_run_records_its_start_with_its_first_call_and_its_answer_with_its_end() {
    let flow = Flow::start_with(|settings| settings.billing.billing_enabled = false).await;
    flow.tool("weather", "/weather", None).await;
    let agent = flow.agent(&["weather"], json!("never")).await;
    flow.llm
        .push(Reply::tool_call("call_1", "weather", [r#"{"city":"Oslo"}"#]))
        .push(Reply::words("Sunny in Oslo."));

    let (conversation_id, run_id) = flow.run(&agent, "Weather?").await;
    let run = flow.run_reaching(&run_id, "completed").await;
    assert_eq!(run["output"], "Sunny in Oslo.", "{run:#}");
    assert_eq!(run["steps"][0]["tool_calls"][0]["status"], "completed", "{run:#}");
    let messages = flow.messages(&conversation_id).await;
    assert_eq!(
        messages.last().unwrap()["content"],
        "Sunny in Oslo.",
        "{messages:#?}"
    );

    // Every step is still an event, each with the next stream id; only the commits are fewer.
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT event_type, (payload ->> 'id')::bigint, transaction_id::text::bigint FROM events \
         WHERE aggregate_type = 'run' AND aggregate_id = $1 AND event_type <> 'message.delta' \
         ORDER BY sequence",
    )
    .bind(&run_id)
    .fetch_all(&flow.app.pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = rows.iter().map(|(kind, _, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "run.queued",
            "run.started",
            "llm_call.started",
            "llm_call.completed",
            "message.completed",
            "tool_call.requested",
            "tool_call.started",
            "tool_call.completed",
            "llm_call.started",
            "llm_call.completed",
            "message.completed",
            "run.completed",
        ]
    );
    let transaction = |index: usize| rows[index].2;
    assert_eq!(
        transaction(1),
        transaction(2),
        "the start and the first model call are one commit: {rows:?}"
    );
    assert_eq!(
        (transaction(9), transaction(10)),
        (transaction(11), transaction(11)),
        "the answer and the run's end are one commit: {rows:?}"
    );
    let mut ids: Vec<i64> = flow
        .events(&run_id)
        .await
        .iter()
        .flat_map(|(kind, payload)| match kind.as_str() {
            "message.delta" => {
                let first = payload["first_id"].as_i64().unwrap();
                let count = payload["chunks"].as_array().unwrap().len() as i64;
                (first..first + count).collect::<Vec<_>>()
            }
            _ => vec![payload["id"].as_i64().unwrap()],
        })
        .collect();
    let sorted = {
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted
    };
    assert_eq!(ids, sorted, "ids follow the log's order");
    ids.dedup();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "no hole, no repeat"
    );

    let billed: Vec<serde_json::Value> = crate::billing::all_entries(&flow.app, &flow.token)
        .await
        .into_iter()
        .filter(|entry| !entry["run_id"].is_null())
        .collect();
    assert!(billed.is_empty(), "nothing billed: {billed:#?}");
    flow.cleanup().await;
}
