//! Dropping a model's stream closes the provider's connection, as the provider sees it.

use std::time::Duration;

use futures::StreamExt;
use runtime::llm::{ChatEvent, ChatModel};
use testkit::{FakeLlm, Reply};

use crate::helpers::{model, request, settings, user};

#[tokio::test]
async fn dropping_the_stream_mid_answer_closes_the_connection() {
    let llm = FakeLlm::start().await;
    let words: Vec<String> = (0..100).map(|n| format!("word{n} ")).collect();
    llm.push(Reply::text(words).every(Duration::from_millis(20)));
    let mut stream = model(settings(&llm))
        .stream(request(vec![user("talk")]))
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, ChatEvent::TextDelta("word0 ".to_owned()));
    assert_eq!(llm.open_streams(), 1);

    drop(stream);

    assert!(
        llm.wait_closed_early(1, Duration::from_secs(2)).await,
        "the provider kept streaming"
    );
    assert_eq!(llm.completed(), 0);
    assert_eq!(llm.open_streams(), 0);
}

#[tokio::test]
async fn dropping_the_stream_while_the_provider_is_silent_closes_the_connection() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::text(["thinking"]).then_stall());
    let mut stream = model(settings(&llm))
        .stream(request(vec![user("hi")]))
        .await
        .unwrap();
    stream.next().await.unwrap().unwrap();

    drop(stream);

    assert!(
        llm.wait_closed_early(1, Duration::from_secs(2)).await,
        "the response is still open"
    );
}

#[tokio::test]
async fn abandoning_the_call_before_its_first_chunk_closes_the_connection() {
    let llm = FakeLlm::start().await;
    llm.push(Reply::stall());
    let model = model(settings(&llm));
    let opening = model.stream(request(vec![user("hi")]));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), opening)
            .await
            .is_err()
    );

    assert!(
        llm.wait_closed_early(1, Duration::from_secs(2)).await,
        "the response is still open"
    );
}

#[tokio::test]
async fn a_finished_answer_is_not_counted_as_closed_early() {
    let llm = FakeLlm::start().await;
    let stream = model(settings(&llm))
        .stream(request(vec![user("hello there")]))
        .await
        .unwrap();
    let events: Vec<_> = stream.collect().await;
    assert!(matches!(events.last(), Some(Ok(ChatEvent::Done(_)))));

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!((llm.completed(), llm.closed_early()), (1, 0));
}
