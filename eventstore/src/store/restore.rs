//! Making a store restored from a logical dump consistent again (`agentry store restored`).
//!
//! `pg_dump`/`pg_restore` copy `events.transaction_id` as a plain value: after a restore into
//! another cluster the rows keep the *old* cluster's transaction ids, which mean nothing in the
//! new one. Ids above the new cluster's counter hide the rows behind the follower's gate until
//! the counter passes them, and then every follower delivers them again, after newer events;
//! ids below it sort the old log around the new one arbitrarily.
//!
//! The fix gives every restored row one transaction id, [`RESTORED_TRANSACTION_ID`] (1): below
//! every transaction id any cluster hands out (normal ids start at 3), so the restored log is
//! visible at once and sorts before everything written after the restore. Within it the
//! follower's `(transaction_id, position)` order becomes **position order**, which is insert
//! order. That is the order to keep: an aggregate's event `n + 1` is decided from event `n` and
//! inserted after it (the primary key makes a concurrent insert wait), so position order is
//! every aggregate's sequence order, and more generally it never puts an event before one it was
//! decided from. The old order could not be kept anyway: the new cluster has too few ids below
//! its counter to give each old transaction its own.
//!
//! Because that order differs from the old one across aggregates, old checkpoints cannot be
//! mapped onto it: the relay's (and any follower's not named as a projector) is placed at the
//! end of the restored log (nothing old is published again; everything appended later is), and
//! each projector's is deleted so that its read model is rebuilt from the restored events.
//!
//! Which rows are restored is told by Postgres itself: a row an append wrote has `xmin` (the
//! inserting transaction, a system column) equal to its `transaction_id`; a row `pg_restore`
//! wrote has the restore's `xmin`. Rows already normalised carry id 1.

use std::time::Duration;

use sqlx::PgConnection;

/// The transaction id every restored event gets: below every id Postgres hands out.
pub const RESTORED_TRANSACTION_ID: &str = "1";

/// The relay's checkpoint name (`eventstore::Relay::new`).
pub const RELAY_CHECKPOINT: &str = crate::relay::RELAY_NAME;

/// The `application_name` of every `agentry` node's main pool (`database::connect`; its small
/// pools are `agentry-…`): a session with it on the database means a node is running.
const NODE_APPLICATION_NAME: &str = "agentry";

/// How long a node's session may stay idle and still count as a running node's.
const NODE_QUIET: Duration = Duration::from_secs(5);

/// How many times (100 ms apart) node sessions are counted before the store counts as live:
/// longer than [`NODE_QUIET`], so a closed connection drops out first.
const NODE_LOOKS: u32 = 80;

/// What [`normalise_restored_log`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// Restored events were found and renumbered; checkpoints were reset.
    Normalised {
        /// How many events got [`RESTORED_TRANSACTION_ID`].
        events: i64,
        /// The last restored position: where the relay now stands.
        last_position: i64,
    },
    /// No restored event is left to renumber (a second run, or a store never restored): nothing
    /// was changed.
    AlreadyConsistent,
}

/// Why the store was left alone. Each renders as one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Nodes are connected: they would keep following (and publishing) with the old cursors.
    #[error(
        "refusing to touch a live store: {0} connection(s) of running agentry nodes are open to this database; stop every node, then run `agentry store restored` again"
    )]
    NodesRunning(i64),
    /// Events were appended after the restore and before this command: followers have already
    /// seen them in an order mixed with the hidden restored events, which no reset can undo.
    #[error(
        "refusing: {native} event(s) were appended by this cluster after the restore (next to {restored} restored ones); restore the dump into an empty database again and run `agentry store restored` before starting any node"
    )]
    AppendedAfterRestore {
        /// Events written in this cluster.
        native: i64,
        /// Events still carrying another cluster's ids.
        restored: i64,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Renumbers the restored events and resets the followers, on `connection` inside the caller's
/// transaction (the caller clears the projectors' tables in the same transaction and commits).
///
/// `projectors` are the checkpoints to delete (their read models are rebuilt); every other
/// checkpoint, and [`RELAY_CHECKPOINT`] even without a row, is placed at the end of the restored
/// log. Safe to run twice: the second run finds nothing to renumber and changes nothing.
pub async fn normalise_restored_log(
    connection: &mut PgConnection,
    projectors: &[&str],
) -> Result<RestoreOutcome, RestoreError> {
    let nodes = running_nodes(connection).await?;
    if nodes > 0 {
        return Err(RestoreError::NodesRunning(nodes));
    }
    // Appends (a node starting meanwhile) wait until this transaction ends; readers do not.
    sqlx::query("SET LOCAL lock_timeout = '10s'")
        .execute(&mut *connection)
        .await?;
    sqlx::query("LOCK TABLE events, follower_checkpoints IN EXCLUSIVE MODE")
        .execute(&mut *connection)
        .await?;
    let (restored, native, last_position): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE transaction_id <> $1::xid8 AND xmin <> transaction_id::xid),
                count(*) FILTER (WHERE transaction_id <> $1::xid8 AND xmin = transaction_id::xid),
                coalesce(max(position), 0)
           FROM events",
    )
    .bind(RESTORED_TRANSACTION_ID)
    .fetch_one(&mut *connection)
    .await?;
    if restored == 0 {
        return Ok(RestoreOutcome::AlreadyConsistent);
    }
    if native > 0 {
        return Err(RestoreError::AppendedAfterRestore { native, restored });
    }
    let events = sqlx::query("UPDATE events SET transaction_id = $1::xid8 WHERE transaction_id <> $1::xid8")
        .bind(RESTORED_TRANSACTION_ID)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    reset_checkpoints(connection, projectors, last_position).await?;
    Ok(RestoreOutcome::Normalised {
        events: i64::try_from(events).unwrap_or(i64::MAX),
        last_position,
    })
}

/// Sessions of running `agentry` nodes on this database, other than this one.
///
/// A running node's sessions are busy: its relay and projectors query the log many times a
/// second. A session counts while it is in a query or transaction, or ran one within
/// [`NODE_QUIET`]; one that stays quiet longer is a closed pool's connection still on its way
/// out (this command's own migration pool, say), so the count is taken again until it is zero
/// or [`NODE_LOOKS`] looks were made.
async fn running_nodes(connection: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let mut looks = 0;
    loop {
        // Within a transaction the activity view is read once and cached; read it afresh.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut *connection)
            .await?;
        let sessions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
                AND (state <> 'idle' OR state_change > clock_timestamp() - make_interval(secs => $2))",
        )
        .bind(NODE_APPLICATION_NAME)
        .bind(NODE_QUIET.as_secs_f64())
        .fetch_one(&mut *connection)
        .await?;
        looks += 1;
        if sessions == 0 || looks == NODE_LOOKS {
            return Ok(sessions);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Projectors start over; every other follower stands at the end of the restored log.
async fn reset_checkpoints(
    connection: &mut PgConnection,
    projectors: &[&str],
    last_position: i64,
) -> Result<(), sqlx::Error> {
    let projectors: Vec<String> = projectors.iter().map(|name| (*name).to_owned()).collect();
    sqlx::query("DELETE FROM follower_checkpoints WHERE name = ANY($1)")
        .bind(&projectors)
        .execute(&mut *connection)
        .await?;
    sqlx::query("INSERT INTO follower_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
        .bind(RELAY_CHECKPOINT)
        .execute(&mut *connection)
        .await?;
    sqlx::query(
        "UPDATE follower_checkpoints SET transaction_id = $1::xid8, position = $2, updated_at = now()",
    )
    .bind(RESTORED_TRANSACTION_ID)
    .bind(last_position)
    .execute(&mut *connection)
    .await?;
    // Leases and recorded faults name processes and cursors of the old cluster: the first node
    // to start takes each lease afresh, and a fault is recorded again if it recurs.
    sqlx::query("DELETE FROM follower_leases")
        .execute(&mut *connection)
        .await?;
    sqlx::query("DELETE FROM follower_faults")
        .execute(&mut *connection)
        .await?;
    Ok(())
}
