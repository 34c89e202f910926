use async_trait::async_trait;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

/// One read model: how each event changes its tables.
///
/// `apply` runs inside the runner's transaction, so it must only write through `connection`
/// and must not commit. Events it does not care about are simply ignored.
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
}
