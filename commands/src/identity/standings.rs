//! Every authenticated request reads its caller's standing (membership, role, suspension,
//! session, impersonation) from the store, so a removal applies to the very next request on
//! every node. Requests that wait for it at the same moment share one query: a [`Batcher`]
//! starts a query for a request only after the request arrived, so sharing never serves an
//! answer older than the request.

use std::sync::Arc;

use eventstore::batch::{BatchWork, Batcher};
use projections::identity::queries::{Standing, StandingQuery, standings};
use sqlx::PgPool;

use super::IdentityError;

/// Standing queries in flight at once; more wait and go together. Two, not one: with one, a
/// query stuck on its connection (a stalled or frozen backend; the query has no timeout) would
/// hold every authenticated request of the process, while with two the other keeps serving.
/// One would carry more callers per query (1.06 transactions per conversation created against
/// 1.24, 5% more conversations per second: BENCHMARKS.md, "One standing read in flight").
const MAX_QUERIES_IN_FLIGHT: usize = 2;
/// At most this many callers in one query.
const MAX_CALLERS_PER_QUERY: usize = 128;

/// The standing reads of one identity service.
pub(super) type StandingReads = Batcher<StandingWork>;

/// The standing reads over a pool of their own beside `pool`, one connection per query in
/// flight, whose sessions plan the query once (`eventstore::database::generic_plan_pool`).
/// Planned on every execution, the busiest statement of every authenticated request spent
/// 0.12–0.26 ms planning for 0.02–0.035 ms running (as subqueries, as a join), 34–40% of all
/// statement time in Postgres while 16 clients created conversations. Its one generic plan is
/// sound at any size of the tables (`projections`' `STANDINGS`, and the test
/// `planned_on_empty_tables_the_standing_query_probes_each_table_by_its_key`).
pub(super) fn standing_reads(pool: &PgPool) -> Arc<StandingReads> {
    let connections = MAX_QUERIES_IN_FLIGHT as u32;
    let pool = eventstore::database::generic_plan_pool(pool, connections, "agentry-standings");
    Batcher::new(StandingWork { pool }, MAX_QUERIES_IN_FLIGHT)
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
    pool: PgPool,
}

impl BatchWork for StandingWork {
    type Item = StandingQuery;
    type Output = Result<Option<Standing>, IdentityError>;

    fn may_join(&self, batch: &[StandingQuery], _next: &StandingQuery) -> bool {
        batch.len() < MAX_CALLERS_PER_QUERY
    }

    async fn run(&self, batch: Vec<StandingQuery>) -> Vec<Self::Output> {
        match standings(&self.pool, &batch).await {
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
