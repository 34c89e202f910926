//! What a stream does while it lasts besides sending the run's events: heartbeats, checking
//! that its caller may still read, and stopping when the node shuts down.

use std::sync::Arc;

use commands::identity::{Caller, IdentityService};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;

use super::{Ending, StandingChecks};
use crate::routes::AppState;

/// A stream's chores, for one caller.
pub struct Upkeep {
    identity: Arc<IdentityService>,
    checks: Arc<StandingChecks>,
    stopping: CancellationToken,
    caller: Caller,
    heartbeat: Interval,
    standing: Interval,
}

/// What is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chore {
    /// Send a heartbeat.
    Heartbeat,
    /// Check the caller's standing ([`Upkeep::check_standing`]).
    CheckStanding,
    /// The node is shutting down: end the stream with [`Ending::ServerShutdown`].
    Stop,
}

impl Upkeep {
    /// The chores of a stream `caller` opened on this node, on the configured clock
    /// ([`super::StreamTimings`]).
    pub fn new(state: &AppState, caller: Caller) -> Self {
        let timings = state.config.streams;
        let every = |period| {
            let mut timer = interval_at(Instant::now() + period, period);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            timer
        };
        Self {
            identity: Arc::clone(&state.identity),
            checks: Arc::clone(&state.stream_checks),
            stopping: state.stopping.clone(),
            caller,
            heartbeat: every(timings.heartbeat),
            standing: every(timings.standing_check),
        }
    }

    /// The caller, as last checked.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Waits until a chore is due. Cancel-safe: a chore is only taken when it is returned, so
    /// this can wait beside the run's events and the client's messages.
    pub async fn due(&mut self) -> Chore {
        tokio::select! {
            biased;
            () = self.stopping.cancelled() => Chore::Stop,
            _ = self.standing.tick() => Chore::CheckStanding,
            _ = self.heartbeat.tick() => Chore::Heartbeat,
        }
    }

    /// Reads the caller's standing again (its role may have changed): the ending when its
    /// credentials no longer allow reading the run.
    pub async fn check_standing(&mut self) -> Result<(), Ending> {
        let current = self
            .checks
            .check(&self.identity, &self.caller)
            .await
            .map_err(Ending::Credentials)?;
        self.caller = current;
        Ok(())
    }
}
