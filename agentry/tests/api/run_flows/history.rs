//! A conversation's later run sends the model everything said before, in order: the earlier
//! runs' inputs and answers, then the new input (the executor reads earlier runs once).

use serde_json::json;
use testkit::Reply;

use super::support::Flow;

#[tokio::test]
async fn a_second_run_sends_the_model_the_first_runs_messages_before_its_own_input() {
    let flow = Flow::start().await;
    let agent = flow.agent(&[], json!("never")).await;
    flow.llm.push(Reply::words("Oslo is rainy"));
    let (conversation, first) = flow.run(&agent, "Weather in Oslo?").await;
    flow.run_reaching(&first, "completed").await;

    flow.llm.push(Reply::words("Take an umbrella"));
    let second = crate::runs::start_run(&flow.app, &flow.token, &conversation, "What should I pack?").await;
    flow.run_reaching(&second, "completed").await;

    let requests = flow.llm.requests();
    let sent: Vec<(String, String)> = requests
        .last()
        .expect("the second run called the model")
        .messages()
        .iter()
        .map(|message| {
            (
                message["role"].as_str().unwrap_or_default().to_owned(),
                message["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("system", "You are terse."),
        ("user", "Weather in Oslo?"),
        ("assistant", "Oslo is rainy"),
        ("user", "What should I pack?"),
    ]
    .iter()
    .map(|(role, content)| ((*role).to_owned(), (*content).to_owned()))
    .collect();
    assert_eq!(
        sent,
        expected,
        "{:#?}",
        requests.last().map(|request| request.messages())
    );
    flow.cleanup().await;
}
