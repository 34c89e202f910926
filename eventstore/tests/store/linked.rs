//! Two commands on two aggregates linked: committed in one transaction, both or neither, the
//! second naming the first's events, also while another node races on both aggregates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use domain::credit_account::{CreditAccount, CreditAccountCommand, CreditAccountError};
use eventstore::store::{CoalescingBus, Linked, NewEvent};
use eventstore::{CommandBus, CommandContext, CommandError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{RESERVATION, context, open_account, reserve, store};

/// Links a reservation under `key` on `first` with one under the same key on `second`.
async fn link(
    bus: &CommandBus<CreditAccount>,
    accounts: &CoalescingBus<CreditAccount>,
    first: Uuid,
    second: Uuid,
    key: &str,
) -> Linked<CreditAccount, CreditAccount> {
    bus.execute_linked(
        &first.to_string(),
        reserve(key),
        &context(first),
        accounts,
        &second.to_string(),
        follow(key, second),
    )
    .await
}

/// One process on the store: a bus for the first aggregates, the coalesced accounts for the
/// second.
type Node = (CommandBus<CreditAccount>, CoalescingBus<CreditAccount>);

/// Three processes on `pool`, each trying hard before giving up on a race.
fn nodes(pool: &PgPool) -> Vec<Arc<Node>> {
    (0..3)
        .map(|_| {
            let bus = || CommandBus::new(store(pool), ()).with_attempts(50);
            Arc::new((bus(), CoalescingBus::new(bus())))
        })
        .collect()
}

/// The second command of a pair: the same key on the other account, caused by the first's
/// event.
fn follow(key: &str, org_id: Uuid) -> impl Fn(&[NewEvent]) -> Option<(CreditAccountCommand, CommandContext)> {
    move |events: &[NewEvent]| {
        let mut context = context(org_id);
        context.causation_id = events.last().map(|event| event.event_id);
        Some((reserve(key), context))
    }
}

/// `(llm_call, transaction id, event id, causation id)` of every reservation of `org_id`.
async fn reservations(pool: &PgPool, org_id: Uuid) -> Vec<(String, i64, Uuid, Option<String>)> {
    sqlx::query_as(
        "SELECT payload ->> 'llm_call', transaction_id::text::bigint, event_id, metadata ->> 'causation_id'
           FROM events
          WHERE aggregate_type = 'credit_account' AND aggregate_id = $1
            AND event_type = 'credit_account.reserved'
          ORDER BY sequence",
    )
    .bind(org_id.to_string())
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn sequences_have_no_gap(pool: &PgPool, org_id: Uuid) {
    let (count, max): (i64, i64) =
        sqlx::query_as("SELECT count(*), max(sequence) FROM events WHERE aggregate_id = $1")
            .bind(org_id.to_string())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(count, max, "no gap, no repeat in {org_id}'s sequence");
}

#[sqlx::test(migrations = "../migrations")]
async fn linked_commands_commit_together_and_the_second_names_the_first(pool: PgPool) {
    let bus = CommandBus::<CreditAccount>::new(store(&pool), ());
    let accounts = CoalescingBus::new(CommandBus::<CreditAccount>::new(store(&pool), ()));
    let (first_org, second_org) = (Uuid::now_v7(), Uuid::now_v7());
    open_account(&bus, first_org, 10 * RESERVATION).await;
    open_account(accounts.bus(), second_org, 10 * RESERVATION).await;

    let linked = link(&bus, &accounts, first_org, second_org, "pair").await;

    let first = linked.first.unwrap();
    let second = linked.second.expect("the second was decided").unwrap();
    assert_eq!(first.appended.len(), 1);
    assert_eq!(second.appended.len(), 1);
    assert_eq!(
        first.appended[0].transaction_id, second.appended[0].transaction_id,
        "one transaction"
    );
    let stored = reservations(&pool, second_org).await;
    assert_eq!(
        stored[0].3.as_deref(),
        Some(first.appended[0].event_id.to_string().as_str()),
        "the second names the first's event, as appended"
    );
    assert_eq!(second.version, 3, "opened with a grant, then the reservation");
    assert_eq!(
        accounts
            .bus()
            .remembered(&second_org.to_string())
            .await
            .unwrap()
            .1,
        3
    );
    assert_eq!(
        accounts
            .bus()
            .load(&second_org.to_string())
            .await
            .unwrap()
            .available(),
        i64::try_from(9 * RESERVATION).unwrap()
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refused_second_leaves_the_first_committed_alone(pool: PgPool) {
    let bus = CommandBus::<CreditAccount>::new(store(&pool), ());
    let accounts = CoalescingBus::new(CommandBus::<CreditAccount>::new(store(&pool), ()));
    let (first_org, second_org) = (Uuid::now_v7(), Uuid::now_v7());
    open_account(&bus, first_org, 10 * RESERVATION).await;
    open_account(accounts.bus(), second_org, RESERVATION - 1).await;

    let linked = link(&bus, &accounts, first_org, second_org, "pair").await;

    assert_eq!(linked.first.unwrap().appended.len(), 1);
    assert!(matches!(
        linked.second,
        Some(Err(CommandError::Rejected(
            CreditAccountError::InsufficientCredits { .. }
        )))
    ));
    assert_eq!(reservations(&pool, first_org).await.len(), 1);
    assert!(reservations(&pool, second_org).await.is_empty());
}

/// The first's events decide what follows: when they call for no second command, the first is
/// committed alone, and nothing is asked of the second aggregate.
#[sqlx::test(migrations = "../migrations")]
async fn a_first_whose_events_call_for_no_second_is_committed_alone(pool: PgPool) {
    let bus = CommandBus::<CreditAccount>::new(store(&pool), ());
    let accounts = CoalescingBus::new(CommandBus::<CreditAccount>::new(store(&pool), ()));
    let (first_org, second_org) = (Uuid::now_v7(), Uuid::now_v7());
    open_account(&bus, first_org, 10 * RESERVATION).await;
    open_account(accounts.bus(), second_org, 10 * RESERVATION).await;
    // The allowed path first: the same accounts link.
    link(&bus, &accounts, first_org, second_org, "pair")
        .await
        .first
        .unwrap();
    assert_eq!(reservations(&pool, second_org).await.len(), 1);

    let linked = bus
        .execute_linked(
            &first_org.to_string(),
            reserve("alone"),
            &context(first_org),
            &accounts,
            &second_org.to_string(),
            |_: &[NewEvent]| None,
        )
        .await;

    assert_eq!(linked.first.unwrap().appended.len(), 1);
    assert!(linked.second.is_none());
    assert_eq!(reservations(&pool, first_org).await.len(), 2);
    assert_eq!(
        reservations(&pool, second_org).await.len(),
        1,
        "nothing more on the second"
    );
    sequences_have_no_gap(&pool, first_org).await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_refused_first_tries_nothing_of_the_second(pool: PgPool) {
    let bus = CommandBus::<CreditAccount>::new(store(&pool), ());
    let accounts = CoalescingBus::new(CommandBus::<CreditAccount>::new(store(&pool), ()));
    let (first_org, second_org) = (Uuid::now_v7(), Uuid::now_v7());
    open_account(&bus, first_org, RESERVATION - 1).await;
    open_account(accounts.bus(), second_org, 10 * RESERVATION).await;

    let linked = link(&bus, &accounts, first_org, second_org, "pair").await;

    assert!(matches!(
        linked.first,
        Err(CommandError::Rejected(
            CreditAccountError::InsufficientCredits { .. }
        ))
    ));
    assert!(linked.second.is_none());
    assert!(reservations(&pool, second_org).await.is_empty());
}

/// Three nodes link reservations on the same two accounts (riding in the second's shared
/// appends), and reserve on the second account alone beside them, so linked appends keep
/// losing races on either aggregate: every pair is in both accounts or in neither, in one
/// transaction, and no account overspends.
#[sqlx::test(migrations = "../migrations")]
async fn racing_linked_commands_are_written_both_or_neither(pool: PgPool) {
    let nodes = nodes(&pool);
    let (first_org, second_org) = (Uuid::now_v7(), Uuid::now_v7());
    open_account(&nodes[0].0, first_org, 100 * RESERVATION).await;
    open_account(&nodes[0].0, second_org, 30 * RESERVATION).await;

    let mut racers = Vec::new();
    for n in 0..60 {
        let node = Arc::clone(&nodes[n % 3]);
        racers.push(tokio::spawn(async move {
            let key = format!("pair-{n}");
            if n % 3 == 2 {
                let alone = format!("alone-{n}");
                let outcome = node
                    .1
                    .execute(&second_org.to_string(), reserve(&alone), &context(second_org))
                    .await;
                return (key, outcome.is_ok(), None);
            }
            let linked = link(&node.0, &node.1, first_org, second_org, &key).await;
            let both = matches!(linked.second, Some(Ok(_)));
            match linked.first {
                Ok(first) => (key, both, Some(first.appended.len())),
                // Lost every race: nothing of the pair may be written.
                Err(CommandError::Conflict) => (key, false, None),
                Err(other) => panic!("{key}: {other:?}"),
            }
        }));
    }
    let (mut linked_both, mut first_written) = (HashSet::new(), HashSet::new());
    for racer in racers {
        let (key, both, first_appended) = racer.await.unwrap();
        if first_appended.is_some() {
            assert_eq!(first_appended, Some(1), "{key}: the first reserved once");
            first_written.insert(key.clone());
            if both {
                linked_both.insert(key);
            }
        }
    }

    let first = reservations(&pool, first_org).await;
    let second: HashMap<String, i64> = reservations(&pool, second_org)
        .await
        .into_iter()
        .map(|(key, transaction, ..)| (key, transaction))
        .collect();
    let first_keys: HashSet<String> = first.iter().map(|(key, ..)| key.clone()).collect();
    assert_eq!(
        first_keys, first_written,
        "each committed linked command reserved once on the first account"
    );
    assert_eq!(first.len(), first_keys.len());
    for (key, transaction, _, _) in &first {
        if linked_both.contains(key) {
            assert_eq!(
                second.get(key),
                Some(transaction),
                "{key}: both halves in one transaction"
            );
        } else {
            assert!(
                !second.contains_key(key),
                "{key}: refused on the second, so alone"
            );
        }
    }
    assert_eq!(
        second.len(),
        30,
        "the second account reserved exactly its credits"
    );
    let leaked: Vec<&String> = second
        .keys()
        .filter(|key| key.starts_with("pair-") && !first_keys.contains(*key))
        .collect();
    assert!(leaked.is_empty(), "second halves without their first: {leaked:?}");
    assert!(
        linked_both.len() >= 5,
        "some pairs were linked: {}",
        linked_both.len()
    );
    sequences_have_no_gap(&pool, first_org).await;
    sequences_have_no_gap(&pool, second_org).await;
}

/// The second account changed on another node since this one last saw it: the linked append
/// loses the race, nothing of it is written, and the pair is decided again and committed.
#[sqlx::test(migrations = "../migrations")]
async fn a_second_aggregate_moved_elsewhere_is_read_again_and_the_pair_committed(pool: PgPool) {
    let bus = CommandBus::<CreditAccount>::new(store(&pool), ());
    let accounts = CoalescingBus::new(CommandBus::<CreditAccount>::new(store(&pool), ()));
    let other_node = CommandBus::<CreditAccount>::new(store(&pool), ());
    let (first_org, second_org) = (Uuid::now_v7(), Uuid::now_v7());
    open_account(&bus, first_org, 10 * RESERVATION).await;
    open_account(accounts.bus(), second_org, 2 * RESERVATION).await;
    other_node
        .execute(
            &second_org.to_string(),
            reserve("elsewhere"),
            &context(second_org),
        )
        .await
        .unwrap();

    let linked = link(&bus, &accounts, first_org, second_org, "pair").await;

    let first = linked.first.unwrap();
    let second = linked.second.expect("decided").unwrap();
    assert_eq!(
        first.appended[0].transaction_id,
        second.appended[0].transaction_id
    );
    assert_eq!(second.version, 4, "decided on the other node's reservation too");
    let keys: Vec<String> = reservations(&pool, second_org)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(keys, ["elsewhere", "pair"]);
    assert_eq!(reservations(&pool, first_org).await.len(), 1, "the first once");
    assert_eq!(
        accounts
            .bus()
            .load(&second_org.to_string())
            .await
            .unwrap()
            .available(),
        0
    );
}

/// Many runs' worth of linked commands from three nodes, each from one of twenty first
/// aggregates that the other nodes keep changing (their riders lose races on their own
/// aggregate), riding together in the shared account's batches beside plain reservations:
/// every pair is in both aggregates, in one transaction, or in neither; riders that lost were
/// left out without failing the rest of their batch.
#[sqlx::test(migrations = "../migrations")]
async fn riders_that_lose_their_race_are_left_out_and_the_batch_goes_on(pool: PgPool) {
    let nodes = nodes(&pool);
    let firsts: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    let shared = Uuid::now_v7();
    for first in &firsts {
        open_account(&nodes[0].0, *first, 1_000 * RESERVATION).await;
    }
    open_account(&nodes[0].0, shared, 1_000 * RESERVATION).await;
    // Every node remembers every first aggregate, so another node's change makes it stale.
    for node in &nodes {
        for first in &firsts {
            node.0.load(&first.to_string()).await.unwrap();
        }
    }

    let mut racers = Vec::new();
    for n in 0..180 {
        let node = Arc::clone(&nodes[n % 3]);
        let first = firsts[n % firsts.len()];
        racers.push(tokio::spawn(async move {
            let key = format!("pair-{n}");
            match n % 4 {
                // A plain change of a first aggregate: other nodes' riders on it lose.
                0 => {
                    node.0
                        .execute(&first.to_string(), reserve(&format!("stir-{n}")), &context(first))
                        .await
                        .unwrap();
                    None
                }
                // A plain reservation in the shared account's batches.
                1 => {
                    node.1
                        .execute(
                            &shared.to_string(),
                            reserve(&format!("alone-{n}")),
                            &context(shared),
                        )
                        .await
                        .unwrap();
                    None
                }
                _ => {
                    let linked = link(&node.0, &node.1, first, shared, &key).await;
                    let first = linked.first.map(|committed| committed.appended.len());
                    let second = linked.second.map(|second| second.map(|c| c.appended.len()));
                    Some((key, first.ok(), second.and_then(Result::ok)))
                }
            }
        }));
    }
    let mut linked = Vec::new();
    for racer in racers {
        if let Some(outcome) = racer.await.unwrap() {
            linked.push(outcome);
        }
    }

    let mut in_firsts: HashMap<String, i64> = HashMap::new();
    for first in &firsts {
        for (key, transaction, ..) in reservations(&pool, *first).await {
            in_firsts.insert(key, transaction);
        }
        sequences_have_no_gap(&pool, *first).await;
    }
    let in_shared: HashMap<String, i64> = reservations(&pool, shared)
        .await
        .into_iter()
        .map(|(key, transaction, ..)| (key, transaction))
        .collect();
    sequences_have_no_gap(&pool, shared).await;
    assert_eq!(linked.len(), 90);
    for (key, first, second) in &linked {
        assert_eq!(*first, Some(1), "{key}: committed once despite the races");
        assert_eq!(*second, Some(1), "{key}: with its second");
        assert_eq!(in_firsts.get(key), in_shared.get(key), "{key}: one transaction");
    }
    let pairs_in_shared = in_shared.keys().filter(|key| key.starts_with("pair-")).count();
    assert_eq!(pairs_in_shared, 90, "no second half without its first");
    assert_eq!(
        in_shared.keys().filter(|key| key.starts_with("alone-")).count(),
        45,
        "every plain reservation went through, riders losing or not"
    );
}
