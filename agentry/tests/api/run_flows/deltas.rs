//! A long streamed answer: recorded in a few `message.delta` batches whose chunks join to the
//! answer, every event of the run taking stream ids 1, 2, 3, … with no gap and no repeat.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::Reply;

use super::support::Flow;

/// The stream ids an event takes: `id`, or for `message.delta` one per chunk from `first_id`.
fn ids_of(kind: &str, payload: &Value) -> Vec<u64> {
    if kind == "message.delta" {
        let first = payload["first_id"].as_u64().unwrap();
        let chunks = payload["chunks"].as_array().unwrap().len() as u64;
        (first..first + chunks).collect()
    } else {
        vec![
            payload["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{kind} has no id: {payload}")),
        ]
    }
}

#[tokio::test]
async fn a_long_answer_is_recorded_in_a_handful_of_batches_with_gapless_stream_ids() {
    let flow = Flow::start().await;
    let agent = flow.agent(&[], json!("never")).await;
    let chunks: Vec<String> = (0..300).map(|n| format!("t{n} ")).collect();
    let answer: String = chunks.concat();
    // 300 chunks over about 3 s: several 200 ms windows.
    flow.llm
        .push(Reply::text(chunks.clone()).every(Duration::from_millis(10)));

    let (_, run_id) = flow.run(&agent, "Say a lot").await;
    let run = flow.run_reaching(&run_id, "completed").await;
    assert_eq!(run["output"], answer.as_str(), "{run:#}");
    assert_eq!(run["steps"][0]["content"], answer.as_str());

    let events = flow.events(&run_id).await;
    let batches: Vec<&Value> = events
        .iter()
        .filter(|(kind, _)| kind == "message.delta")
        .map(|(_, payload)| payload)
        .collect();
    assert!(
        (2..=40).contains(&batches.len()),
        "300 chunks over ~3 s in 200 ms windows should be a handful of rows, not {}",
        batches.len()
    );
    let recorded: Vec<String> = batches
        .iter()
        .flat_map(|batch| batch["chunks"].as_array().unwrap().iter())
        .map(|chunk| chunk.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recorded, chunks, "every chunk once, in order");
    assert!(batches.iter().all(|batch| batch["step"] == 1));

    let ids: Vec<u64> = events
        .iter()
        .flat_map(|(kind, payload)| ids_of(kind, payload))
        .collect();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "stream ids with a gap or a repeat");
    assert_eq!(run["last_event_id"], ids.len() as u64, "{run:#}");
    assert!(ids.len() > 300);
    flow.cleanup().await;
}
