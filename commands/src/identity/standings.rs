//! Every authenticated request reads its caller's standing (membership, role, suspension,
//! session, impersonation) from the store, so a removal applies to the very next request on
//! every node; but a write that confirms the standing in its own append (a conversation's
//! start) may decide with the standing last read, which that append then checks. Requests that wait for it at the same moment share one query: a [`Batcher`]
//! starts a query for a request only after the request arrived, so sharing never serves an
//! answer older than the request.

use std::sync::Arc;
use std::time::Duration;

use eventstore::batch::{BatchWork, Batcher};
use eventstore::held_connection::HeldConnection;
use projections::identity::queries::{Standing, StandingQuery, standings};
use sqlx::PgPool;

use super::IdentityError;

/// Standing queries in flight at once; more wait and go together. One carries more callers per
/// query than two (1.06 transactions per conversation created against 1.24, 5% more
/// conversations per second: BENCHMARKS.md, "One standing read in flight"). A query stuck on
/// its connection (a stalled or frozen backend, a connection lost without a reset) holds every
/// authenticated request of the process, but for at most two [`ATTEMPT_TIMEOUT`]s (the held
/// connection's, then a new one's; `eventstore::held_connection`).
const MAX_QUERIES_IN_FLIGHT: usize = 1;
/// How long one attempt may take (connecting when needed, and the query). The query itself
/// takes well under a millisecond, and a few under load; past this the connection is taken for
/// stuck and dropped, and the query made once more on a new connection if it was the held one;
/// past that the callers are answered 503 `database_busy`. Without it, a backend
/// frozen by SIGSTOP or a paused VM held the callers until it resumed, and a connection whose
/// peer vanished until TCP gave up on it, minutes later.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many callers in one query.
const MAX_CALLERS_PER_QUERY: usize = 128;

/// The standing reads of one identity service.
pub(super) type StandingReads = Batcher<StandingWork>;

/// The standing reads over a connection of their own to `pool`'s server, held open between
/// queries (`eventstore::held_connection`: no round trip to test it before and after each
/// query, as a pool makes), whose session plans the query once. Planned on every execution,
/// the busiest statement of every authenticated request spent 0.12–0.26 ms planning for
/// 0.02–0.035 ms running (as subqueries, as a join), 34–40% of all statement time in Postgres
/// while 16 clients created conversations. Its one generic plan is sound at any size of the
/// tables (`projections`' `STANDINGS`, and the test
/// `planned_on_empty_tables_the_standing_query_probes_each_table_by_its_key`).
pub(super) fn standing_reads(pool: &PgPool) -> Arc<StandingReads> {
    let connection = HeldConnection::generic_plan(pool, "agentry-standings", ATTEMPT_TIMEOUT);
    Batcher::new(StandingWork { connection }, MAX_QUERIES_IN_FLIGHT)
}

/// Reads `query`'s standing, alone or with others waiting at the same moment.
pub(super) async fn read_standing(
    reads: &Arc<StandingReads>,
    query: StandingQuery,
) -> Result<Option<Standing>, IdentityError> {
    match reads.submit(query).await {
        Ok(answer) => answer,
        Err(lost) => Err(IdentityError::Internal(lost.to_string())),
    }
}

pub(super) struct StandingWork {
    connection: HeldConnection,
}

impl BatchWork for StandingWork {
    type Item = StandingQuery;
    type Output = Result<Option<Standing>, IdentityError>;

    fn may_join(&self, batch: &[StandingQuery], _next: &StandingQuery) -> bool {
        batch.len() < MAX_CALLERS_PER_QUERY
    }

    async fn run(&self, batch: Vec<StandingQuery>) -> Vec<Self::Output> {
        let outcome = self
            .connection
            .read(batch.as_slice(), |connection, batch| {
                Box::pin(standings(connection, batch))
            })
            .await;
        match outcome {
            Ok(answers) => answers.into_iter().map(Ok).collect(),
            // The database error is not `Clone`: every caller gets what it means to them.
            Err(error) => {
                let busy = matches!(error, sqlx::Error::PoolTimedOut);
                let message = error.to_string();
                batch
                    .iter()
                    .map(|_| {
                        Err(if busy {
                            IdentityError::DatabaseBusy
                        } else {
                            IdentityError::Internal(message.clone())
                        })
                    })
                    .collect()
            }
        }
    }
}
