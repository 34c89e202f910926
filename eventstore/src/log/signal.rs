use std::time::Duration;

use tokio::sync::watch;

/// Wakes this process's log followers the moment an append commits, so the relay does not
/// have to poll fast to keep its lag low. Appends from other processes are still found by
/// polling.
#[derive(Clone, Debug)]
pub struct AppendSignal {
    sender: watch::Sender<u64>,
}

impl Default for AppendSignal {
    fn default() -> Self {
        Self {
            sender: watch::channel(0).0,
        }
    }
}

impl AppendSignal {
    /// Records that something was appended.
    pub fn notify(&self) {
        self.sender
            .send_modify(|appends| *appends = appends.wrapping_add(1));
    }

    /// A handle for one follower.
    pub fn subscribe(&self) -> AppendWaiter {
        AppendWaiter {
            receiver: self.sender.subscribe(),
        }
    }
}

/// One follower's view of the [`AppendSignal`].
#[derive(Debug)]
pub struct AppendWaiter {
    receiver: watch::Receiver<u64>,
}

impl AppendWaiter {
    /// Returns when something was appended since the last call, or after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.receiver.changed()).await;
    }
}
