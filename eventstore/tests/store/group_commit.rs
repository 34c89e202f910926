//! Group commit: appends that wait together share one statement, and each still gets exactly
//! the outcome it would have had alone.
//!
//! Each test holds the store's only writer on a row another transaction holds, queues appends
//! behind it, then lets it go: what was queued is written as one group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::credit_account::CreditAccount;
use eventstore::store::{AppendedEvent, CoalescingBus, DecidedWith, NewEvent, append_with};
use eventstore::{CommandBus, CommandContext, EventStore, StoreError};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::helpers::{RESERVATION, context, open_account, renamed_event, reserve, store};

pub(crate) type Outcome<T> = JoinHandle<Result<T, StoreError>>;

/// A transaction holding `aggregate_id`'s first event uncommitted: an append of that event
/// elsewhere waits on it.
pub(crate) async fn hold_first_event(pool: &PgPool, aggregate_id: &str) -> Transaction<'static, Postgres> {
    let mut transaction = pool.begin().await.unwrap();
    let ctx = context(Uuid::now_v7());
    append_with(
        &mut *transaction,
        "organization",
        aggregate_id,
        0,
        &[renamed_event(0)],
        &ctx,
    )
    .await
    .unwrap();
    transaction
}

/// Waits until `count` statements of this test's database wait on a lock.
pub(crate) async fn until_waiting_on_locks(pool: &PgPool, count: i64) {
    for _ in 0..500 {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{count} statements never waited on a lock");
}

/// A store with one writer, busy on `blocker` (held by the returned transaction) until the
/// transaction ends; its own append then conflicts.
pub(crate) async fn busy_store(
    pool: &PgPool,
) -> (
    EventStore,
    Transaction<'static, Postgres>,
    Outcome<Vec<AppendedEvent>>,
) {
    let store = store(pool).with_append_writers(1);
    let held = hold_first_event(pool, "blocker").await;
    let blocked = spawn(&store, |store| async move {
        store
            .append(
                "organization",
                "blocker",
                0,
                &[renamed_event(1)],
                &context(Uuid::now_v7()),
            )
            .await
    });
    until_waiting_on_locks(pool, 1).await;
    (store, held, blocked)
}

pub(crate) fn spawn<T, F, Fut>(store: &EventStore, append: F) -> Outcome<T>
where
    T: Send + 'static,
    F: FnOnce(EventStore) -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    tokio::spawn(append(store.clone()))
}

pub(crate) fn append_new(
    store: &EventStore,
    aggregate_id: &str,
    ctx: CommandContext,
) -> Outcome<Vec<AppendedEvent>> {
    let aggregate_id = aggregate_id.to_owned();
    spawn(store, |store| async move {
        store
            .append("organization", &aggregate_id, 0, &[renamed_event(2)], &ctx)
            .await
    })
}

/// The halves of a linked pair: the first account's events and the second's.
type PairOutcome = JoinHandle<(Vec<AppendedEvent>, Vec<AppendedEvent>)>;

/// Queues on `store` a linked pair of reservations under the key `pair`: one on `first_org`'s
/// account and one built from its events on `second_org`'s, all or none. Both accounts are
/// loaded first, so the pair is decided and queued without a read of its own.
async fn spawn_pair(store: &EventStore, first_org: Uuid, second_org: Uuid) -> PairOutcome {
    let bus = Arc::new(CommandBus::<CreditAccount>::new(store.clone(), ()));
    let accounts = Arc::new(CoalescingBus::new(CommandBus::<CreditAccount>::new(
        store.clone(),
        (),
    )));
    bus.load(&first_org.to_string()).await.unwrap();
    accounts.bus().load(&second_org.to_string()).await.unwrap();
    tokio::spawn(async move {
        let follow = |events: &[NewEvent]| {
            let mut follow_context = context(second_org);
            follow_context.causation_id = events.last().map(|event| event.event_id);
            Some((reserve("pair"), follow_context))
        };
        let linked = bus
            .execute_linked(
                &first_org.to_string(),
                reserve("pair"),
                &context(first_org),
                &accounts,
                &second_org.to_string(),
                follow,
            )
            .await;
        let first = linked.first.unwrap().appended;
        let second = linked.second.unwrap().unwrap().appended;
        (first, second)
    })
}

/// Gives queued appends time to reach the queue (they are spawned tasks).
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

pub(crate) async fn event_count(pool: &PgPool, aggregate_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
        .bind(aggregate_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn appends_waiting_together_share_one_transaction_and_keep_their_own_metadata(pool: PgPool) {
    let (store, held, blocked) = busy_store(&pool).await;
    let orgs: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let queued: Vec<_> = orgs
        .iter()
        .enumerate()
        .map(|(n, org)| append_new(&store, &format!("queued-{n}"), context(*org)))
        .collect();
    settle().await;
    held.commit().await.unwrap();

    assert!(
        matches!(blocked.await.unwrap(), Err(StoreError::Conflict { .. })),
        "the blocked append lost to the held one"
    );
    let mut transactions = Vec::new();
    for (n, outcome) in queued.into_iter().enumerate() {
        let appended = outcome.await.unwrap().unwrap();
        assert_eq!(appended.len(), 1);
        assert_eq!(appended[0].sequence, 1);
        transactions.push(appended[0].transaction_id);
        let org: Uuid = sqlx::query_scalar("SELECT org_id FROM events WHERE aggregate_id = $1")
            .bind(format!("queued-{n}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(org, orgs[n], "each event carries its own command's metadata");
    }
    transactions.dedup();
    assert_eq!(
        transactions.len(),
        1,
        "the 20 queued appends were one transaction"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn in_a_group_a_conflict_or_a_moved_aggregate_writes_nothing_and_the_rest_commit(pool: PgPool) {
    let ctx = context(Uuid::now_v7());
    let plain = store(&pool);
    plain
        .append("organization", "taken", 0, &[renamed_event(0)], &ctx)
        .await
        .unwrap();
    let other = [renamed_event(0), renamed_event(1)];
    plain
        .append("organization", "other", 0, &other, &ctx)
        .await
        .unwrap();

    let (store, held, blocked) = busy_store(&pool).await;
    let taken = append_new(&store, "taken", ctx.clone());
    let conditional = |aggregate_id: &'static str, seen: usize| {
        let ctx = ctx.clone();
        spawn(&store, move |store| async move {
            let decided_with = DecidedWith::new("organization", "other", seen);
            store
                .append_if_unmoved(
                    "organization",
                    aggregate_id,
                    0,
                    &[renamed_event(3)],
                    &ctx,
                    &decided_with,
                )
                .await
        })
    };
    let on_stale = conditional("decided-on-stale", 1);
    let on_current = conditional("decided-on-current", 2);
    let free = append_new(&store, "free", ctx.clone());
    settle().await;
    held.commit().await.unwrap();

    assert!(matches!(blocked.await.unwrap(), Err(StoreError::Conflict { .. })));
    assert!(
        matches!(taken.await.unwrap(), Err(StoreError::Conflict { .. })),
        "an append behind the aggregate conflicts as it would alone"
    );
    assert!(
        on_stale.await.unwrap().unwrap().is_none(),
        "moved: nothing written"
    );
    let current = on_current.await.unwrap().unwrap().expect("unmoved: written");
    let free = free.await.unwrap().unwrap();
    assert_eq!(
        current[0].transaction_id, free[0].transaction_id,
        "written as one group"
    );
    assert_eq!(event_count(&pool, "taken").await, 1);
    assert_eq!(event_count(&pool, "decided-on-stale").await, 0);
    assert_eq!(event_count(&pool, "decided-on-current").await, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_group_meeting_an_uncommitted_conflict_is_retried_one_by_one(pool: PgPool) {
    let (store, held, blocked) = busy_store(&pool).await;
    let contested_elsewhere = hold_first_event(&pool, "contested").await;
    let contested = append_new(&store, "contested", context(Uuid::now_v7()));
    let first = append_new(&store, "first", context(Uuid::now_v7()));
    let second = append_new(&store, "second", context(Uuid::now_v7()));
    settle().await;
    held.commit().await.unwrap();
    assert!(matches!(blocked.await.unwrap(), Err(StoreError::Conflict { .. })));
    // The group's statement now waits on the other transaction's `contested` row.
    until_waiting_on_locks(&pool, 1).await;
    contested_elsewhere.commit().await.unwrap();

    assert!(
        matches!(contested.await.unwrap(), Err(StoreError::Conflict { .. })),
        "the contested append conflicts"
    );
    assert_eq!(first.await.unwrap().unwrap().len(), 1, "the others still commit");
    assert_eq!(second.await.unwrap().unwrap().len(), 1);
    assert_eq!(event_count(&pool, "contested").await, 1);
    assert_eq!(event_count(&pool, "first").await, 1);
    assert_eq!(event_count(&pool, "second").await, 1);
}

/// What [`queued_behind_a_busy_writer`] left waiting.
struct QueuedBehind {
    /// The account the pair's first half is on.
    first_org: Uuid,
    /// Holds the store's one writer until committed.
    held: Transaction<'static, Postgres>,
    /// The append in that writer, which loses its race once `held` commits.
    blocked: Outcome<Vec<AppendedEvent>>,
    /// The linked pair.
    linked: PairOutcome,
    /// Three plain appends, each on an aggregate of its own.
    queued: Vec<Outcome<Vec<AppendedEvent>>>,
}

/// Opens two accounts with `opener`, then queues a linked pair on them and three plain
/// appends behind a store whose one writer is busy, and lets them settle in its queue.
async fn queued_behind_a_busy_writer(pool: &PgPool, opener: &CommandBus<CreditAccount>) -> QueuedBehind {
    let (first_org, second_org) = (Uuid::now_v7(), Uuid::now_v7());
    open_account(opener, first_org, 10 * RESERVATION).await;
    open_account(opener, second_org, 10 * RESERVATION).await;
    let (store, held, blocked) = busy_store(pool).await;
    let linked = spawn_pair(&store, first_org, second_org).await;
    let queued = (0..3)
        .map(|n| append_new(&store, &format!("queued-{n}"), context(Uuid::now_v7())))
        .collect();
    settle().await;
    QueuedBehind {
        first_org,
        held,
        blocked,
        linked,
        queued,
    }
}

/// A linked pair (a command on one account and one built from its events on another, all or
/// none) that waits with other appends is written in their statement: one transaction for
/// all, rather than a commit of its own.
#[sqlx::test(migrations = "../migrations")]
async fn a_linked_pair_waiting_with_other_appends_commits_in_their_transaction(pool: PgPool) {
    let opener = CommandBus::<CreditAccount>::new(store(&pool), ());
    let QueuedBehind {
        held,
        blocked,
        linked,
        queued,
        ..
    } = queued_behind_a_busy_writer(&pool, &opener).await;
    held.commit().await.unwrap();

    assert!(matches!(blocked.await.unwrap(), Err(StoreError::Conflict { .. })));
    let (first, second) = linked.await.unwrap();
    assert_eq!(
        (first.len(), second.len()),
        (1, 1),
        "both halves of the pair written"
    );
    let mut transactions = vec![first[0].transaction_id, second[0].transaction_id];
    for outcome in queued {
        transactions.push(outcome.await.unwrap().unwrap()[0].transaction_id);
    }
    transactions.dedup();
    assert_eq!(
        transactions.len(),
        1,
        "the pair and the three appends queued with it were one transaction"
    );
}

/// A linked pair whose first aggregate moves (another node appends to it) while the pair waits
/// in a group: the group's statement leaves the whole pair out and writes the appends waiting
/// with it; the pair is then decided again and committed once, both halves together.
#[sqlx::test(migrations = "../migrations")]
async fn a_linked_pair_that_lost_its_race_in_a_group_leaves_the_rest_of_the_group_written(pool: PgPool) {
    let other_node = CommandBus::<CreditAccount>::new(store(&pool), ());
    let QueuedBehind {
        first_org,
        held,
        blocked,
        linked,
        queued,
    } = queued_behind_a_busy_writer(&pool, &other_node).await;
    // Another node moves the pair's first aggregate while the pair waits.
    other_node
        .execute(&first_org.to_string(), reserve("elsewhere"), &context(first_org))
        .await
        .unwrap();
    held.commit().await.unwrap();

    assert!(matches!(blocked.await.unwrap(), Err(StoreError::Conflict { .. })));
    let mut plain = Vec::new();
    for outcome in queued {
        plain.push(outcome.await.unwrap().unwrap()[0].transaction_id);
    }
    plain.dedup();
    assert_eq!(plain.len(), 1, "the three plain appends were one transaction");
    let (first, second) = linked.await.unwrap();
    assert_eq!(
        first[0].transaction_id, second[0].transaction_id,
        "the pair, decided again, committed together"
    );
    assert_ne!(
        first[0].transaction_id, plain[0],
        "the pair was left out of the group that lost its race"
    );
    let elsewhere: i64 = sqlx::query_scalar(
        "SELECT sequence FROM events WHERE aggregate_id = $1 AND payload ->> 'llm_call' = 'elsewhere'",
    )
    .bind(first_org.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        first[0].sequence,
        elsewhere + 1,
        "decided again after the other node's reservation"
    );
    let pair_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'credit_account.reserved' AND payload ->> 'llm_call' = 'pair'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(pair_rows, 2, "each half once");
}
