//! Who owns the server's tasks: every task is spawned through [`Tasks`], so shutdown can stop
//! them and wait until they are gone, instead of leaving them running behind the server's
//! back (or polling a counter until they seem to be).
//!
//! Two kinds:
//! - **connections** (HTTP requests and WebSocket sessions) end on their own once told to
//!   (the accept loop stops, sockets are closed with 1001): shutdown waits for them.
//! - **background** tasks (the hub's sweeper, push delivery, media clean-up, the cluster's
//!   NATS tasks, the WAL checkpointer) run until cancelled: shutdown cancels them, then
//!   waits for them.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Tasks {
    connections: TaskTracker,
    background: TaskTracker,
    cancel: CancellationToken,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// A task serving one connection; it must end by itself when the server stops.
    pub fn connection<F>(&self, fut: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.connections.spawn(fut)
    }

    /// A task that runs until the server stops (it is dropped at its next `.await` then).
    pub fn background<F>(&self, fut: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.background.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = fut => {}
            }
        })
    }

    /// Cancelled when the background tasks are told to stop.
    pub fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The connection tracker (the accept loop spawns on it).
    pub fn connection_tracker(&self) -> TaskTracker {
        self.connections.clone()
    }

    /// Waits (at most `within`) for every connection task to end; returns how many were
    /// still running when the time was up.
    pub async fn connections_done(&self, within: Duration) -> usize {
        self.connections.close();
        let _ = tokio::time::timeout(within, self.connections.wait()).await;
        self.connections.len()
    }

    /// Cancels the background tasks and waits (at most `within`) for them to end.
    pub async fn stop_background(&self, within: Duration) -> usize {
        self.cancel.cancel();
        self.background.close();
        let _ = tokio::time::timeout(within, self.background.wait()).await;
        self.background.len()
    }
}
