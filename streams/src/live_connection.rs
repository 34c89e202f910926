//! The live path's own NATS connection, driven by a thread of its own.
//!
//! Why a thread: on a node busy streaming (1,000 sockets, a frame to each every 20 ms), a task
//! woken by I/O waits in the runtime's queue behind every socket task already ready. With the
//! client's connection task on the node's runtime, each frame crossing NATS waited there twice
//! more than a frame delivered in process (to be written to NATS, and to be read back): about
//! 3–4 ms at p99 (BENCHMARKS.md, "Run streams: the allocator's arenas"). On a thread whose
//! runtime has nothing else to do, the operating system runs it as soon as a frame arrives
//! (0.5–1 ms). The subscription's task stays on the node's runtime: woken from here it is one
//! task taken from the runtime's shared queue, and it wakes the readers' tasks on its worker;
//! waking every reader from this thread instead put each of them in that shared queue, which a
//! busy worker takes from one task at a time, and was slower. Its own connection, too: a frame
//! never queues behind the relay's or the run queue's traffic on the bus's connection.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::oneshot;

/// How long one attempt to reach NATS may take (the client keeps retrying in the background).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the live path's connection could not be made.
#[derive(Debug, Error)]
pub enum LiveConnectError {
    /// The thread or its runtime could not be started.
    #[error("cannot start the live path's thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The NATS options were refused (an unreadable URL).
    #[error(transparent)]
    Nats(#[from] async_nats::ConnectError),
}

/// A NATS connection for live frames only, on a thread of its own. Cheap to clone; the thread
/// stops (closing the connection) when the last clone, and every publisher and stream made
/// from it, is dropped.
#[derive(Clone, Debug)]
pub struct LiveConnection {
    pub(crate) client: async_nats::Client,
    /// Dropped with the last clone: ends the thread.
    _running: Arc<oneshot::Sender<()>>,
}

impl LiveConnection {
    /// Connects to `url` from a new thread. Like the bus's connection it keeps retrying in the
    /// background, so a node starts while NATS is down (its live frames are dropped meanwhile,
    /// and readers find them in the store).
    pub async fn connect(url: &str) -> Result<Self, LiveConnectError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (running, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("agentry-live-nats".to_owned())
            .spawn(move || {
                // Ends when the sender is dropped; dropping the runtime then drops its tasks
                // (the connection and the subscription).
                let _ = runtime.block_on(stopped);
            })?;
        let options = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(CONNECT_TIMEOUT)
            .name("agentry-live");
        let url = url.to_owned();
        // Made on the thread's runtime, so the client's connection task runs there.
        let client = handle
            .spawn(async move { options.connect(url).await })
            .await
            .map_err(std::io::Error::other)??;
        Ok(Self {
            client,
            _running: Arc::new(running),
        })
    }
}
