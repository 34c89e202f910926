//! `agentry projections rebuild NAME`: a read model rebuilt from the start of the log beside the
//! live one, while the API keeps answering from the live one, then put in its place atomically.
//!
//! 1. The read model's tables are created empty, with their keys, in a schema of their own
//!    (`rebuild_<name>`; see [`tables`]).
//! 2. The projector folds the whole log into them on a connection whose `search_path` puts that
//!    schema first, so its unchanged SQL writes there. The live runner meanwhile keeps the live
//!    tables up to date, and the API reads them.
//! 3. Once the copy is near the log's head, the secondary indexes are built, then one switch
//!    transaction locks the live tables (waiting for the live runner's batch in flight, and
//!    holding readers for the moment of the switch) and the projector's checkpoint row, brings
//!    the copy up to at least that checkpoint, moves the live tables out and the copy in, and
//!    sets the checkpoint to where the copy stands (never backwards). Every event is thus in
//!    the new tables exactly once: up to the checkpoint by the rebuild, after it by the live
//!    runner, whose next checkpoint move (from the old position) is refused, so it reloads.
//! 4. The old tables are dropped.

mod tables;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore::log::{announce_progress, read_after_with};
use eventstore::{Cursor, EventStore, RecordedEvent};
use sqlx::{Connection, PgConnection, PgPool};

use crate::Projector;
use crate::runner::whole_transactions;

/// Events one read of the log hands the projector during a rebuild.
const REBUILD_BATCH: usize = 5_000;

/// Why a rebuild did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// No projector of that name can be rebuilt this way.
    #[error("`{0}` is not a read model that can be rebuilt beside the live one")]
    NotRebuildable(String),
    /// Postgres failed; the live read model is untouched.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Where a rebuild stands, for its progress display.
#[derive(Clone, Copy, Debug)]
pub struct RebuildProgress {
    /// Events folded so far.
    pub events: u64,
    /// Since the rebuild started.
    pub elapsed: Duration,
    /// Whether the copy is in place.
    pub switched: bool,
}

/// What a rebuild did.
#[derive(Clone, Copy, Debug)]
pub struct RebuildReport {
    /// Events folded into the new tables.
    pub events: u64,
    /// From the start to the switch.
    pub elapsed: Duration,
    /// How long the switch held the live tables locked.
    pub switch: Duration,
    /// Where the new read model's checkpoint was set.
    pub checkpoint: Cursor,
}

/// Rebuilds `projector`'s read model from `store`'s log beside the live one and switches to it;
/// `progress` is told after every read of the log.
pub async fn rebuild(
    store: &EventStore,
    projector: Arc<dyn Projector>,
    progress: impl Fn(RebuildProgress),
) -> Result<RebuildReport, RebuildError> {
    let name = projector.name();
    let live_tables = projector.tables();
    if live_tables.is_empty() {
        return Err(RebuildError::NotRebuildable(name.to_owned()));
    }
    let pool = store.pool();
    let started = Instant::now();
    let schema = tables::Schema::for_rebuild(name);
    tables::create_copies(pool, &schema, live_tables).await?;
    let mut copy = Copy {
        connection: tables::connect_into(pool, &schema).await?,
        store,
        projector: projector.as_ref(),
        cursor: Cursor::START,
        events: 0,
    };
    // Catch up without holding anything: a read shorter than a batch means the copy is close.
    while copy.step(&progress, started).await? == REBUILD_BATCH {}
    tables::create_secondary_indexes(pool, &schema, live_tables).await?;
    let switch_started = Instant::now();
    let checkpoint = switch(pool, &schema, &mut copy, &progress, started).await?;
    let switch = switch_started.elapsed();
    tables::drop_retired(pool, &schema).await?;
    progress(RebuildProgress {
        events: copy.events,
        elapsed: started.elapsed(),
        switched: true,
    });
    Ok(RebuildReport {
        events: copy.events,
        elapsed: started.elapsed(),
        switch,
        checkpoint,
    })
}

/// The new tables being filled.
struct Copy<'a> {
    connection: PgConnection,
    store: &'a EventStore,
    projector: &'a dyn Projector,
    cursor: Cursor,
    events: u64,
}

impl Copy<'_> {
    /// Folds the next read of the log into the copy, in a transaction of its own; answers how
    /// many events the read held.
    async fn step(
        &mut self,
        progress: &impl Fn(RebuildProgress),
        started: Instant,
    ) -> Result<usize, sqlx::Error> {
        let mut batch: Vec<RecordedEvent> = read_after_with(
            self.store.pool(),
            self.store.upcasters(),
            self.cursor,
            i64::try_from(REBUILD_BATCH).unwrap_or(i64::MAX),
        )
        .await?;
        let read = batch.len();
        batch.truncate(whole_transactions(&batch, REBUILD_BATCH));
        let Some(last) = batch.last() else { return Ok(0) };
        let to = last.cursor();
        let mut transaction = self.connection.begin().await?;
        self.projector.apply_batch(&mut transaction, &batch).await?;
        transaction.commit().await?;
        self.cursor = to;
        self.events += batch.len() as u64;
        progress(RebuildProgress {
            events: self.events,
            elapsed: started.elapsed(),
            switched: false,
        });
        Ok(read)
    }
}

/// The switch transaction (module docs, step 3); answers the checkpoint it set.
async fn switch(
    pool: &PgPool,
    schema: &tables::Schema,
    copy: &mut Copy<'_>,
    progress: &impl Fn(RebuildProgress),
    started: Instant,
) -> Result<Cursor, sqlx::Error> {
    let name = copy.projector.name();
    let live_tables = copy.projector.tables();
    ensure_checkpoint(pool, name).await?;
    let mut transaction = pool.begin().await?;
    tables::lock_live(&mut transaction, live_tables).await?;
    let live = lock_checkpoint(&mut transaction, name).await?;
    // The live runner is held (its next write or checkpoint move waits for this transaction):
    // bring the copy up to where the live tables are, or further.
    loop {
        let read = copy.step(progress, started).await?;
        if read < REBUILD_BATCH && copy.cursor >= live {
            break;
        }
        if read == 0 {
            // Caught up with the log yet behind the checkpoint: cannot happen (the live runner
            // only passes committed events); refuse rather than move the checkpoint back.
            return Err(sqlx::Error::Protocol(format!(
                "rebuild of {name} reached the log's head before the live checkpoint"
            )));
        }
    }
    sqlx::query(
        "UPDATE follower_checkpoints SET transaction_id = $2::text::xid8, position = $3, updated_at = now()
          WHERE name = $1",
    )
    .bind(name)
    .bind(copy.cursor.transaction_id.to_string())
    .bind(copy.cursor.position)
    .execute(&mut *transaction)
    .await?;
    tables::swap(&mut transaction, schema, live_tables).await?;
    announce_progress(&mut *transaction, name, copy.cursor).await?;
    transaction.commit().await?;
    Ok(copy.cursor)
}

/// Makes the projector's checkpoint row at the start of the log when the live runner never
/// ran, before the switch (so that the switch's first write is as late as can be: from it to
/// its commit, its transaction holds the log gate).
async fn ensure_checkpoint(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO follower_checkpoints (name, transaction_id, position, updated_at)
         VALUES ($1, $2::text::xid8, $3, now()) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(Cursor::START.transaction_id.to_string())
    .bind(Cursor::START.position)
    .execute(pool)
    .await?;
    Ok(())
}

/// The projector's checkpoint, locked until the switch commits.
async fn lock_checkpoint(connection: &mut PgConnection, name: &str) -> Result<Cursor, sqlx::Error> {
    let (transaction_id, position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, position FROM follower_checkpoints WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(&mut *connection)
    .await?;
    let transaction_id = transaction_id
        .parse()
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    Ok(Cursor {
        transaction_id,
        position,
    })
}
