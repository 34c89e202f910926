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

    /// Folds one committed event into the read model.
    async fn apply(&self, connection: &mut PgConnection, event: &RecordedEvent) -> Result<(), sqlx::Error>;
}
