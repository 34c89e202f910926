//! Whether the callers of a node's open streams may still read: each distinct credentials
//! checked once per round, however many streams they hold open (10,000 streams of one key cost
//! one query), and the streams of credentials that lost their standing ended.

use std::collections::HashMap;
use std::sync::Arc;

use commands::identity::{Caller, IdentityService};
use futures::StreamExt;
use uuid::Uuid;

use super::watch::Signal;
use crate::http::ApiError;

/// Credentials checked at once in a round.
const CONCURRENT_CHECKS: usize = 8;

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

/// Reads the standing of the credentials of every stream in `signals` (its role may have
/// changed, which each decision reads again for itself) and ends the streams of those that no
/// longer allow reading (`api_key_revoked`, `membership_ended`, `organization_suspended`…).
/// A failure of the check itself (the database) is logged and ends nothing: an outage should
/// not drop every stream at once, and the next round asks again.
pub(super) async fn check_all(identity: &IdentityService, signals: Vec<Arc<Signal>>) {
    let mut by_credentials: HashMap<Credentials, Vec<Arc<Signal>>> = HashMap::new();
    for signal in signals {
        by_credentials
            .entry(Credentials::of(&signal.caller))
            .or_default()
            .push(signal);
    }
    futures::stream::iter(by_credentials.into_values())
        .for_each_concurrent(CONCURRENT_CHECKS, |streams| async move {
            let Some(first) = streams.first() else { return };
            let Err(error) = identity.recheck(&first.caller).await else {
                return;
            };
            let problem = ApiError::from(error).into_problem();
            if problem.status >= 500 {
                return;
            }
            for signal in &streams {
                signal.end(problem.clone());
            }
        })
        .await;
}
