use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use thiserror::Error;
use uuid::Uuid;

use super::BusEvent;
use crate::RecordedEvent;

/// Which committed events a subscriber receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFilter {
    /// Every organization's events and the platform-wide ones (operators, audit pipelines).
    All,
    /// One organization's events: what anything serving a tenant subscribes to.
    Organization(Uuid),
    /// Platform-wide events only (those with no organization, such as user registrations).
    Platform,
}

impl EventFilter {
    /// Whether `event` passes this filter.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        match self {
            Self::All => true,
            Self::Organization(org_id) => event.org_id == Some(*org_id),
            Self::Platform => event.org_id.is_none(),
        }
    }
}

/// Why a subscription could not hand over an event.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SubscriptionError {
    /// The subscriber fell this many events behind the in-process bus and they were dropped:
    /// read them from the store (by position) before going on.
    #[error("the subscriber fell behind; {0} events were dropped")]
    Missed(u64),
    /// A message on the subjects that is not the documented event JSON (another publisher).
    #[error("unreadable message on the bus: {0}")]
    Unreadable(String),
}

/// A live feed of committed events as the bus carries them ([`BusEvent`]), from the moment
/// [`EventBus::subscribe`](super::EventBus::subscribe) returned, in log order.
///
/// The same on both buses: digests left out, filtered by organization. Differences a consumer
/// must allow for: NATS may deliver an event twice (the relay re-publishes a batch it was not
/// sure of; deduplicate by `id`) and may cut a large event (`truncated`); the in-process bus
/// reports a subscriber that fell behind as [`SubscriptionError::Missed`]. Neither replays the
/// past: a consumer that needs history reads it from the store first.
pub struct EventSubscription {
    events: BoxStream<'static, Result<BusEvent, SubscriptionError>>,
}

impl EventSubscription {
    pub(crate) fn new(events: BoxStream<'static, Result<BusEvent, SubscriptionError>>) -> Self {
        Self { events }
    }
}

impl Stream for EventSubscription {
    type Item = Result<BusEvent, SubscriptionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription").finish_non_exhaustive()
    }
}
