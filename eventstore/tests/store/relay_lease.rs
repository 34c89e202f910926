//! Checkpoints move only forward, and only for the current holder of the follower's lease; a
//! holder that was paused stops before doing anything once it wakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use eventstore::Cursor;
use eventstore::log::{Lease, LeaseTimings, load_checkpoint, save_checkpoint, save_checkpoint_as};
use sqlx::PgPool;
use uuid::Uuid;

/// Short durations so a test sees a lease expire within seconds.
const QUICK: LeaseTimings = LeaseTimings {
    ttl: Duration::from_secs(3),
    renew_every: Duration::from_millis(200),
};

fn at(transaction_id: u64, position: i64) -> Cursor {
    Cursor {
        transaction_id,
        position,
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_checkpoint_never_moves_backwards(pool: PgPool) {
    assert!(
        save_checkpoint(&pool, "f", Cursor::START, at(900, 90))
            .await
            .unwrap()
    );

    let moved_back = save_checkpoint(&pool, "f", at(900, 90), at(800, 80))
        .await
        .unwrap();

    assert!(!moved_back, "a move backwards is refused");
    assert_eq!(load_checkpoint(&pool, "f").await.unwrap(), at(900, 90));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_standby_takes_a_lease_only_after_it_expired(pool: PgPool) {
    let first = Lease::try_acquire(&pool, "f", Uuid::new_v4(), QUICK)
        .await
        .unwrap()
        .expect("a free lease is taken");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        first.is_valid(),
        "renewed in the background, the lease stays valid"
    );
    assert!(
        Lease::try_acquire(&pool, "f", Uuid::new_v4(), QUICK)
            .await
            .unwrap()
            .is_none(),
        "a renewed lease is not taken over"
    );

    drop(first);
    tokio::time::sleep(QUICK.ttl + Duration::from_millis(300)).await;
    let second = Lease::try_acquire(&pool, "f", Uuid::new_v4(), QUICK)
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert_eq!(second.claim().epoch, 2);
}

/// The whole runtime (one thread) is blocked, as SIGSTOP would freeze the process: the lease
/// is not renewed, another holder takes it, and the frozen holder, once it runs again, knows
/// before anything else runs that it may not act, and cannot move the checkpoint.
#[sqlx::test(migrations = "../migrations")]
async fn a_holder_frozen_past_its_lease_stops_and_cannot_move_the_checkpoint(pool: PgPool) {
    let frozen = Lease::try_acquire(&pool, "f", Uuid::new_v4(), QUICK)
        .await
        .unwrap()
        .unwrap();
    assert!(
        save_checkpoint_as(&pool, "f", Cursor::START, at(10, 1), frozen.claim())
            .await
            .unwrap()
    );

    // Another process: its own thread, runtime and connections.
    let options = pool.connect_options().as_ref().clone();
    let taker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let other_pool = PgPool::connect_with(options).await.unwrap();
            loop {
                let taken = Lease::try_acquire(&other_pool, "f", Uuid::new_v4(), QUICK)
                    .await
                    .unwrap();
                if let Some(lease) = taken {
                    let claim = lease.claim();
                    assert!(
                        save_checkpoint_as(&other_pool, "f", at(10, 1), at(20, 2), claim)
                            .await
                            .unwrap()
                    );
                    return claim;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    // Frozen: nothing of this runtime runs (no renewal) while the other holder takes over.
    std::thread::sleep(QUICK.ttl * 2);
    let new_claim = taker.join().unwrap();

    assert!(!frozen.is_valid(), "the woken holder sees it may not act");
    let moved = save_checkpoint_as(&pool, "f", at(20, 2), at(30, 3), frozen.claim())
        .await
        .unwrap();
    assert!(!moved, "the old holder's checkpoint move is refused");
    assert_eq!(new_claim.epoch, frozen.claim().epoch + 1);
    assert_eq!(load_checkpoint(&pool, "f").await.unwrap(), at(20, 2));
}
