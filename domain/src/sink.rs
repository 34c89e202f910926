//! Writing a decision's events to the cqrs-es sink.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;

/// Writes `events` in order; each is applied to `aggregate` as it is written.
///
/// Decisions are plain synchronous functions returning events; this is the one place where
/// `handle` meets the asynchronous sink.
pub(crate) async fn write_all<A: Aggregate>(sink: &EventSink<A>, aggregate: &mut A, events: Vec<A::Event>) {
    for event in events {
        sink.write(event, aggregate).await;
    }
}
