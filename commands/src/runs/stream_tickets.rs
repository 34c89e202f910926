//! Issuing a run's stream ticket: the run checked here, the ticket kept by identity, which
//! redeems it ([`IdentityService::redeem_stream_ticket`]).
//!
//! [`IdentityService::redeem_stream_ticket`]: crate::identity::IdentityService::redeem_stream_ticket

use uuid::Uuid;

use super::{RunService, RunsError};
use crate::identity::{Caller, IssuedTicket, record_ticket};

impl RunService {
    /// A ticket to read run `run_id`'s stream once, acting as `caller`: any member of the
    /// run's organization who may read the run (auditors too) may have one. Another
    /// organization's run is not found.
    pub async fn issue_stream_ticket(
        &self,
        caller: &Caller,
        run_id: Uuid,
    ) -> Result<IssuedTicket, RunsError> {
        let org_id = caller.org()?;
        self.run_in_org(org_id, run_id).await?;
        Ok(record_ticket(&self.pool, caller, run_id).await?)
    }
}
