//! What the store refuses at append: an event over the documented size, and text the read side
//! could never hold (U+0000). Either way nothing is written and the error says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventstore::store::NewEvent;
use eventstore::{RequestOrigin, StoreError};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{context, renamed_event, store};

fn event_with_payload(payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "tool_call.completed".to_owned(),
        event_version: "1".to_owned(),
        payload: payload.to_string(),
    }
}

async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn an_event_over_the_size_limit_is_refused_and_nothing_is_written(pool: PgPool) {
    let store = store(&pool);
    let ctx = context(Uuid::now_v7());
    let limit = eventstore::store::MAX_EVENT_BYTES;
    let huge = "x".repeat(limit + 1);
    // One small event and one too large in the same command: the command is all or nothing.
    let events = [
        renamed_event(0),
        event_with_payload(json!({ "type": "tool_call.completed", "output": huge })),
    ];

    let outcome = store.append("run", "big", 0, &events, &ctx).await;

    match outcome {
        Err(StoreError::EventTooLarge {
            event_type,
            bytes,
            limit: refused_at,
        }) => {
            assert_eq!(event_type, "tool_call.completed");
            assert!(bytes > limit, "{bytes} bytes reported");
            assert_eq!(refused_at, limit);
        }
        other => panic!("expected EventTooLarge, got {other:?}"),
    }
    assert_eq!(event_count(&pool).await, 0, "nothing was written");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_event_just_under_the_size_limit_is_stored(pool: PgPool) {
    let store = store(&pool);
    let ctx = context(Uuid::now_v7());
    // Leaves room for the metadata, which counts towards the limit.
    let output = "y".repeat(eventstore::store::MAX_EVENT_BYTES - 4_096);
    let event = event_with_payload(json!({ "type": "tool_call.completed", "output": output }));

    store.append("run", "fits", 0, &[event], &ctx).await.unwrap();

    assert_eq!(event_count(&pool).await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_nul_character_anywhere_in_a_payload_is_refused_and_nothing_is_written(pool: PgPool) {
    let store = store(&pool);
    let ctx = context(Uuid::now_v7());
    let cases = [
        json!({ "type": "user.registered", "email": "a\u{0}@example.com" }),
        json!({ "type": "x", "nested": { "list": ["fine", "not\u{0}fine"] } }),
        json!({ "type": "x", "key\u{0}": "a NUL in a field name" }),
    ];
    for (n, payload) in cases.into_iter().enumerate() {
        let events = [renamed_event(n), event_with_payload(payload.clone())];

        let outcome = store.append("run", &format!("nul-{n}"), 0, &events, &ctx).await;

        match outcome {
            Err(StoreError::UnstorableText { event_type, field }) => {
                assert_eq!(event_type, "tool_call.completed", "{payload}");
                assert_eq!(field, "payload", "{payload}");
            }
            other => panic!("{payload}: expected UnstorableText, got {other:?}"),
        }
    }
    assert_eq!(event_count(&pool).await, 0, "nothing was written");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_nul_character_in_the_metadata_is_refused(pool: PgPool) {
    let store = store(&pool);
    let mut ctx = context(Uuid::now_v7());
    ctx.request = Some(RequestOrigin::id_only("req\u{0}uest"));

    let outcome = store.append("run", "meta", 0, &[renamed_event(0)], &ctx).await;

    assert!(
        matches!(&outcome, Err(StoreError::UnstorableText { field, .. }) if field == "metadata"),
        "{outcome:?}"
    );
    assert_eq!(event_count(&pool).await, 0, "nothing was written");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_escaped_backslash_before_u0000_is_ordinary_text_and_is_stored(pool: PgPool) {
    let store = store(&pool);
    let ctx = context(Uuid::now_v7());
    // The text `\u0000` (a backslash, then "u0000"): JSON writes it `\\u0000`, no NUL in it.
    let event = event_with_payload(json!({ "type": "x", "code": "printf(\"\\u0000\")" }));

    store.append("run", "escaped", 0, &[event], &ctx).await.unwrap();

    let stored: String = sqlx::query_scalar("SELECT payload->>'code' FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, "printf(\"\\u0000\")");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_events_of_one_command_take_positions_in_sequence_order(pool: PgPool) {
    let store = store(&pool);
    let ctx = context(Uuid::now_v7());
    let events: Vec<NewEvent> = (0..200).map(renamed_event).collect();

    let appended = store
        .append("organization", "many", 0, &events, &ctx)
        .await
        .unwrap();

    let rows: Vec<(i64, i64, Uuid)> =
        sqlx::query_as("SELECT sequence, position, event_id FROM events ORDER BY position")
            .fetch_all(&pool)
            .await
            .unwrap();
    let sequences: Vec<i64> = rows.iter().map(|row| row.0).collect();
    assert_eq!(
        sequences,
        (1..=200).collect::<Vec<i64>>(),
        "positions follow sequences"
    );
    let ids: Vec<Uuid> = rows.iter().map(|row| row.2).collect();
    let sent: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
    assert_eq!(ids, sent, "the n-th event given is the n-th stored");
    let reported: Vec<(i64, i64)> = appended.iter().map(|e| (e.sequence, e.position)).collect();
    let stored: Vec<(i64, i64)> = rows.iter().map(|row| (row.0, row.1)).collect();
    assert_eq!(reported, stored);
}
