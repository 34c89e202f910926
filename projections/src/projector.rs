use std::time::Duration;

use async_trait::async_trait;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

/// The default [`Projector::pace`]: what a request waiting for a view may wait at most for the
/// next batch to start.
pub const PACE: Duration = Duration::from_millis(5);

/// One read model: how each event changes its tables.
///
/// `apply` and `apply_batch` run inside the runner's transaction, so they must only write
/// through `connection` and must not commit. Events a projector does not care about are simply
/// ignored.
#[async_trait]
pub trait Projector: Send + Sync + 'static {
    /// Stable name: the checkpoint key, the metric label and the `projections rebuild` argument.
    fn name(&self) -> &'static str;

    /// Empties every table of the read model, inside the caller's transaction, so that the read
    /// model can be rebuilt from the start of the log (`agentry store restored` does, with the
    /// checkpoint deleted in the same transaction). Rows that are not derived from the log
    /// (telemetry such as an API key's `last_used_at`) go too: a rebuild starts them over.
    async fn clear(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error>;

    /// Folds one committed event into the read model.
    async fn apply(&self, connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error>;

    /// Whether [`apply`](Self::apply) may write anything for `event`. A read of the log holding
    /// no event the projector folds moves its checkpoint alone, in one statement and no
    /// transaction of its own (most projectors ignore most of a run's events: a streaming run
    /// appends its text every 200 ms). `false` only for events the projector ignores entirely;
    /// the default folds everything.
    fn folds(&self, event: &RecordedEvent) -> bool {
        let _ = event;
        true
    }

    /// Whether the runner should hand this projector whole reads of the log at once
    /// ([`apply_batch`](Self::apply_batch)) rather than one event at a time. A batched
    /// projector folds a read in memory and writes each changed row once, so a read of a
    /// thousand events costs a few statements: what a rebuild of a million events needs.
    fn batched(&self) -> bool {
        false
    }

    /// Folds `events` (consecutive in log order) into the read model. The default applies
    /// them one by one.
    async fn apply_batch(
        &self,
        connection: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), sqlx::Error> {
        for event in events {
            self.apply(connection, event).await?;
        }
        Ok(())
    }

    /// How often at most a runner that keeps up starts a batch of this projector (one that is
    /// behind, whose last read was full, goes on at once). Each batch costs a log read and a
    /// commit whatever it holds, so a projector that steps as fast as appends arrive costs the
    /// database more than the appends it follows; held to a pace, its batches grow with the
    /// load instead. The price is lag: a read model trails the log by up to its pace. Views
    /// that requests wait for keep [`PACE`]; others may choose longer.
    fn pace(&self) -> Duration {
        PACE
    }

    /// The tables of the read model, all in the `public` schema, that
    /// `agentry projections rebuild` builds anew beside the live ones and then puts in their
    /// place. Empty for a read model that cannot be rebuilt that way (the audit log, whose
    /// entries are a record, not a derivation).
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }
}

/// A read model that folds whole reads of the log at once, in tables of its own (the
/// conversation, run history and usage views): the [`Projector`] that runs it, and rebuilds it,
/// follows from its name, its tables and its fold.
#[async_trait]
pub trait BatchProjector: Send + Sync + 'static {
    /// As [`Projector::name`].
    fn name(&self) -> &'static str;

    /// Every table of the read model (emptied by [`Projector::clear`], rebuilt beside the live
    /// ones by `projections rebuild`).
    fn tables(&self) -> &'static [&'static str];

    /// Folds `events` (consecutive in log order) into the tables: reads the rows they touch,
    /// folds in memory, writes each changed row once.
    async fn fold(&self, connection: &mut PgConnection, events: &[RecordedEvent]) -> Result<(), sqlx::Error>;

    /// As [`Projector::folds`].
    fn folds(&self, event: &RecordedEvent) -> bool {
        let _ = event;
        true
    }
}

#[async_trait]
impl<T: BatchProjector> Projector for T {
    fn name(&self) -> &'static str {
        BatchProjector::name(self)
    }

    async fn clear(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(&format!("TRUNCATE {}", BatchProjector::tables(self).join(", ")))
            .execute(connection)
            .await?;
        Ok(())
    }

    async fn apply(&self, connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error> {
        self.fold(connection, std::slice::from_ref(event)).await
    }

    fn folds(&self, event: &RecordedEvent) -> bool {
        BatchProjector::folds(self, event)
    }

    fn batched(&self) -> bool {
        true
    }

    async fn apply_batch(
        &self,
        connection: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), sqlx::Error> {
        self.fold(connection, events).await
    }

    fn tables(&self) -> &'static [&'static str] {
        BatchProjector::tables(self)
    }
}
