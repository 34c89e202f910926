//! `agentry store restored`: after `pg_restore`, before any node starts, make the store
//! consistent and rebuild the read models from the restored log.
//!
//! The store-level half (renumbering the restored events, placing the relay at the end of the
//! restored log) is `eventstore::store::restore`; this half owns what the store cannot know: the
//! projectors, whose tables are emptied in the same transaction and rebuilt before the command
//! returns, so the first node starts with read models that agree with the log.

use std::sync::Arc;
use std::time::Duration;

use eventstore::log::load_checkpoint;
use eventstore::store::restore::{RestoreError, RestoreOutcome, normalise_restored_log};
use eventstore::{Cursor, EventStore};
use projections::{ProjectionRunner, Projector};
use sqlx::PgPool;

/// How long a rebuild may wait for the log's gate (a long transaction elsewhere in the cluster
/// holds it shut) before the command gives up; the nodes finish the rebuild when they start.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// The `application_name` of the command's own connections: not a node's (`agentry`), so it
/// does not count itself as one.
pub const RESTORE_APPLICATION_NAME: &str = "agentry-store-restored";

/// Why the command stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestoredStoreError {
    /// Refused or failed at the store (see [`RestoreError`]).
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// The database failed during the rebuild.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A projector did not reach the end of the log in time.
    #[error(
        "projector {0} has not caught up with the restored log within {1:?} (a long transaction may hold the log gate); the nodes finish the rebuild when they start"
    )]
    RebuildStalled(&'static str, Duration),
}

/// Renumbers a restored log, resets the followers, rebuilds `projectors`; returns the line to
/// print. Idempotent: a second run renumbers nothing and only checks the projectors are caught
/// up. Refuses (changing nothing) while nodes are connected or when events were appended after
/// the restore.
pub async fn make_restored_store_consistent(
    pool: &PgPool,
    projectors: &[Arc<dyn Projector>],
) -> Result<String, RestoredStoreError> {
    let names: Vec<&str> = projectors.iter().map(|projector| projector.name()).collect();
    let mut transaction = pool.begin().await?;
    let outcome = normalise_restored_log(&mut transaction, &names).await?;
    if matches!(outcome, RestoreOutcome::Normalised { .. }) {
        for projector in projectors {
            projector.clear(&mut transaction).await?;
        }
    }
    transaction.commit().await?;
    for projector in projectors {
        catch_up(pool, Arc::clone(projector)).await?;
    }
    let rebuilt = names.join(", ");
    Ok(match outcome {
        RestoreOutcome::Normalised {
            events,
            last_position,
        } => format!(
            "restored store is consistent: {events} restored event(s) renumbered, relay placed after position {last_position}, read models rebuilt ({rebuilt})"
        ),
        RestoreOutcome::AlreadyConsistent => {
            format!(
                "store already consistent: no restored event left to renumber; read models caught up ({rebuilt})"
            )
        }
    })
}

/// Runs `projector` until its checkpoint reaches the last event in the log.
async fn catch_up(pool: &PgPool, projector: Arc<dyn Projector>) -> Result<(), RestoredStoreError> {
    let name = projector.name();
    let target = last_cursor(pool).await?;
    // Its own store, only for the pool and the domain's upcasters: nothing is appended here.
    let store = EventStore::new(pool.clone(), domain::upcasting::upcasters());
    let runner = ProjectionRunner::new(&store, projector);
    let deadline = tokio::time::Instant::now() + REBUILD_TIMEOUT;
    while load_checkpoint(pool, name).await? < target {
        if tokio::time::Instant::now() > deadline {
            return Err(RestoredStoreError::RebuildStalled(name, REBUILD_TIMEOUT));
        }
        if !runner.step().await? {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// The cursor of the last event in the log (the start of the log when it is empty).
async fn last_cursor(pool: &PgPool) -> Result<Cursor, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        // `events.`: a bare `transaction_id` would order by the output column, the id's text.
        "SELECT transaction_id::text, position FROM events ORDER BY events.transaction_id DESC, events.position DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some((transaction_id, position)) => Cursor {
            transaction_id: transaction_id
                .parse()
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
            position,
        },
        None => Cursor::START,
    })
}
