use async_trait::async_trait;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

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

    /// The tables of the read model, all in the `public` schema, that
    /// `agentry projections rebuild` builds anew beside the live ones and then puts in their
    /// place. Empty for a read model that cannot be rebuilt that way (the audit log, whose
    /// entries are a record, not a derivation).
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }
}
