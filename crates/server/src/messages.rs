//! Group commit for messages.
//!
//! Every send (WebSocket or REST) goes through one [`Batcher`] task. While one batch commits
//! (one transaction, one fsync), new sends queue up; the next batch takes all that are
//! waiting, up to `max_batch`. Under load many messages share one fsync; with no load a
//! message commits alone without waiting for a timer. The caller gets its result only after
//! the commit, which is what makes the WebSocket `ack` mean "durable".

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::{NewMessage, SendOutcome, Store};

type Job = (NewMessage, oneshot::Sender<Result<SendOutcome>>);

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    pub fn spawn(store: Arc<dyn Store>, metrics: Arc<Metrics>, max_batch: usize) -> Batcher {
        // The queue bound is backpressure: when the disk cannot keep up, senders wait here
        // instead of growing memory.
        let (tx, mut rx) = mpsc::channel::<Job>(max_batch * 4);
        tokio::spawn(async move {
            let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
            while rx.recv_many(&mut jobs, max_batch).await > 0 {
                let (messages, replies): (Vec<NewMessage>, Vec<_>) = jobs.drain(..).unzip();
                metrics.batches.fetch_add(1, Ordering::Relaxed);
                let results = store.send_messages(messages).await;
                for (reply, result) in replies.into_iter().zip(results) {
                    if matches!(&result, Ok(o) if o.created) {
                        metrics.messages.fetch_add(1, Ordering::Relaxed);
                    }
                    // The sender may have gone away; the message is committed regardless.
                    let _ = reply.send(result);
                }
            }
        });
        Batcher { tx }
    }

    /// Queues a message; the returned receiver resolves after its batch committed.
    pub async fn submit(&self, m: NewMessage) -> Result<oneshot::Receiver<Result<SendOutcome>>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((m, reply)).await.map_err(|_| {
            Error::new(
                chatnode_protocol::ErrorCode::Unavailable,
                "server is shutting down",
            )
        })?;
        Ok(rx)
    }

    pub async fn send(&self, m: NewMessage) -> Result<SendOutcome> {
        let rx = self.submit(m).await?;
        rx.await.map_err(|_| {
            Error::new(
                chatnode_protocol::ErrorCode::Unavailable,
                "server is shutting down",
            )
        })?
    }
}
