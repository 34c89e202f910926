//! A run's stream: every event of a run, in id order (1, 2, 3, …), live as it happens and
//! resumable after any id, on any node.
//!
//! Two paths, merged by id at the seam:
//! - **Live** ([`LiveBus`]): the executor sends each chunk of a model's answer the moment it
//!   arrives, with the id it will be recorded under, and every committed run event is sent right
//!   after its commit ([`LiveRunEvents`]). In process with one node, core NATS between nodes;
//!   never through the store's log gate, which any writing transaction in the cluster holds.
//! - **Durable**: the run's events in the store, where chunks land in batches (the executor's
//!   batch window). A reader that opens or resumes reads what it missed there first.
//!
//! Each node subscribes once to the live path and keeps one [`feed`](RunStreams) per run it has
//! readers of: it orders what arrives, fills holes from the store (the live path may lose a
//! frame; the store never does), and fans each frame out to every local reader. A reader that
//! falls more than a bounded number of frames behind is cut off with the last id it was sent
//! ([`StreamItem::CutOff`]), so a slow client never slows the run or the others and the server
//! never buffers without bound.

mod feed;
mod frame;
mod hub;
mod live;
mod live_connection;
mod observer;
mod reader;
mod router;

pub use feed::FeedLimits;
pub use frame::StreamFrame;
pub use hub::{OpenError, RunStreams};
pub use live::{LiveBus, NatsLive, live_subject};
pub use live_connection::{LiveConnectError, LiveConnection};
pub use observer::LiveRunEvents;
pub use reader::{RunStream, StreamItem};
pub use router::Router;
