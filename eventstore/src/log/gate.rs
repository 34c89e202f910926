use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How long the oldest writing transaction in the cluster has been open: while it is, no
/// follower can pass it (see the module docs), so this is the first number to look at when
/// the relay or a projector stalls.
pub async fn gate_age_seconds(pool: &PgPool) -> Result<f64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(xact_start))::float8, 0)
           FROM pg_stat_activity WHERE backend_xid IS NOT NULL",
    )
    .fetch_one(pool)
    .await
}

/// Publishes [`gate_age_seconds`] as `agentry_log_gate_age_seconds` every few seconds.
pub async fn watch_gate(pool: PgPool, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match gate_age_seconds(&pool).await {
            Ok(age) => metrics::gauge!("agentry_log_gate_age_seconds").set(age),
            Err(error) => tracing::debug!(%error, "could not read the log gate's age"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            () = shutdown.cancelled() => {}
        }
    }
}
