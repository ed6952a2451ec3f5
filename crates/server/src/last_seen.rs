//! "Last seen" times, written in the background one at a time, coalesced per user.
//!
//! A socket that closes (and a connection that notes it is active, at most once an hour per
//! user, and the users a lost cluster node leaves behind) used to start its own `UPDATE users SET last_seen_at`. When 19,000 sockets close at
//! once, 19,000 such writes queue for the database pool, each holding ~7 KB while it waits: a
//! heap profile of a clustered node showed a 177 MiB peak, 132 MiB of it in those waiting
//! writes (docs/bench-scale.md, "Heap profile of a clustered node"). Now a close records the
//! time in a map (a few dozen bytes per user, one entry per user however many sockets closed)
//! and one task writes the map out, a write at a time. Presence does not wait for the write:
//! the `presence` event carries the same time. Shutdown flushes what is left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::domain::UserId;
use crate::store::Store;
use crate::tasks::Tasks;

pub struct LastSeen {
    store: Arc<dyn Store>,
    /// User ID → the latest time (ms) to record.
    pending: Mutex<HashMap<String, i64>>,
    wake: Notify,
    /// Held while a batch is being written, so `flush` waits for it.
    writing: tokio::sync::Mutex<()>,
}

impl LastSeen {
    /// Starts the writer task on `tasks`.
    pub fn spawn(store: Arc<dyn Store>, tasks: &Tasks) -> Arc<LastSeen> {
        let me = Arc::new(LastSeen {
            store,
            pending: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        });
        let task = me.clone();
        tasks.background(async move {
            loop {
                task.wake.notified().await;
                // Gather a burst (a storm of closes) before writing.
                tokio::time::sleep(Duration::from_millis(50)).await;
                task.flush().await;
            }
        });
        me
    }

    /// Records that `user` was last seen at `ms` (written soon, in the background).
    pub fn note(&self, user: &UserId, ms: i64) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let at = pending.entry(user.to_string()).or_insert(ms);
            *at = (*at).max(ms);
        }
        self.wake.notify_one();
    }

    /// Writes everything recorded so far; returns how many users were written.
    pub async fn flush(&self) -> usize {
        let _writing = self.writing.lock().await;
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let n = batch.len();
        for (user, ms) in batch {
            if let Err(e) = self.store.set_last_seen(&UserId::trusted(user), ms).await {
                tracing::debug!(error = %e, "could not record last_seen_at");
            }
        }
        n
    }
}
