//! Whether a stream's caller may still read: checked at intervals while the stream lasts, each
//! answer shared for a moment by the node's streams of the same credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use commands::identity::{Caller, IdentityService};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::http::{ApiError, Problem};

/// Past this many remembered checks, the stale ones are forgotten on the next check.
const PRUNE_ABOVE: usize = 1_024;

/// What identifies credentials for a check: the same key, or the same user in the same
/// organization through the same session or impersonation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Credentials {
    api_key_id: Option<Uuid>,
    user_id: Option<Uuid>,
    org_id: Option<Uuid>,
    session_id: Option<Uuid>,
    impersonation_id: Option<Uuid>,
}

impl Credentials {
    fn of(caller: &Caller) -> Self {
        Self {
            api_key_id: caller.api_key_id,
            user_id: caller.user_id,
            org_id: caller.org_id,
            session_id: caller.session_id,
            impersonation_id: caller.impersonation_id,
        }
    }
}

/// One check, answered once for every stream that asks while it is fresh.
struct Check {
    started: Instant,
    outcome: OnceCell<Outcome>,
}

/// The caller as it stands now, or the problem that ends its streams; `None` when the check
/// itself failed on our side (logged), which ends nothing: the next check asks again.
type Outcome = Option<Result<Caller, Problem>>;

/// The node's standing checks. One per process, shared by every stream.
pub struct StandingChecks {
    shared_for: Duration,
    recent: Mutex<HashMap<Credentials, Arc<Check>>>,
}

impl StandingChecks {
    /// Checks whose answers are shared for `shared_for`.
    pub fn new(shared_for: Duration) -> Self {
        Self {
            shared_for,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// `caller` as its credentials stand now (its role may have changed), or the problem
    /// that ends its streams (`api_key_revoked`, `membership_ended`, `organization_suspended`…).
    /// A failure of the check itself (the database) is logged and taken as "still stands"
    /// until the next check: an outage should not drop every stream at once.
    pub async fn check(&self, identity: &IdentityService, caller: &Caller) -> Result<Caller, Problem> {
        let check = self.fresh_check(Credentials::of(caller));
        let outcome = check
            .outcome
            .get_or_init(|| async {
                match identity.recheck(caller).await {
                    Ok(current) => Some(Ok(current)),
                    Err(error) => match ApiError::from(error).into_problem() {
                        problem if problem.status >= 500 => None,
                        problem => Some(Err(problem)),
                    },
                }
            })
            .await;
        match outcome {
            Some(Ok(current)) => Ok(current.clone()),
            Some(Err(problem)) => Err(problem.clone()),
            None => Ok(caller.clone()),
        }
    }

    /// The check of `credentials` started less than `shared_for` ago, or a new one.
    fn fresh_check(&self, credentials: Credentials) -> Arc<Check> {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() > PRUNE_ABOVE {
            recent.retain(|_, check| check.started.elapsed() < self.shared_for);
        }
        match recent.get(&credentials) {
            Some(check) if check.started.elapsed() < self.shared_for => Arc::clone(check),
            _ => {
                let check = Arc::new(Check {
                    started: Instant::now(),
                    outcome: OnceCell::new(),
                });
                recent.insert(credentials, Arc::clone(&check));
                check
            }
        }
    }
}

impl std::fmt::Debug for StandingChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandingChecks")
            .field("shared_for", &self.shared_for)
            .finish_non_exhaustive()
    }
}
