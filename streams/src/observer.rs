//! Committed run events onto the live path, whoever committed them (the executor, an approval
//! over REST, the expiry sweep), so readers on every node get them without waiting for the log.

use domain::run::{Run, RunEvent};
use eventstore::{CommandContext, CommitObserver};
use uuid::Uuid;

use crate::{LiveBus, StreamFrame};

/// Publishes each committed run event live, as frames.
#[derive(Debug)]
pub struct LiveRunEvents {
    live: LiveBus,
}

impl LiveRunEvents {
    /// Publishing on `live`.
    pub fn new(live: LiveBus) -> Self {
        Self { live }
    }
}

impl CommitObserver<Run> for LiveRunEvents {
    fn committed(&self, aggregate_id: &str, context: &CommandContext, events: &[RunEvent]) {
        let (Ok(run_id), Some(org_id)) = (Uuid::parse_str(aggregate_id), context.org_id) else {
            return;
        };
        for event in events {
            // Their chunks went out live one by one as the model streamed them.
            if matches!(event, RunEvent::MessageDelta { .. }) {
                continue;
            }
            for frame in StreamFrame::of_event(run_id, event) {
                self.live.publish(org_id, run_id, frame);
            }
        }
    }
}
