//! Group commit for messages.
//!
//! Every send (WebSocket or REST) goes through one [`Batcher`] task. While one batch commits
//! (one transaction, one fsync), new sends queue up; the next batch takes all that are
//! waiting, up to `max_batch`. Under load many messages share one fsync; with no load a
//! message commits alone without waiting for a timer. The sender gets its answer only after
//! the commit, which is what makes the WebSocket `ack` mean "durable".
//!
//! A WebSocket send hands over its connection: after the commit the batcher queues the `ack`
//! (or `error`) on that connection itself, behind the events of the same commit, so no task
//! waits per message. A REST send waits on a oneshot.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chatnode_protocol::{ErrorCode, ServerFrame};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::hub::{Conn, Outbound};
use crate::metrics::Metrics;
use crate::store::{NewMessage, SendOutcome, Store};

/// Where a send's answer goes.
enum Reply {
    /// A REST request waiting for the outcome.
    Caller(oneshot::Sender<Result<SendOutcome>>),
    /// A WebSocket connection: the answer is queued on it as a frame.
    Socket(Arc<Conn>),
}

struct Job {
    message: NewMessage,
    reply: Reply,
}

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

fn unavailable() -> Error {
    Error::new(ErrorCode::Unavailable, "server is shutting down")
}

impl Batcher {
    pub fn spawn(store: Arc<dyn Store>, metrics: Arc<Metrics>, max_batch: usize) -> Batcher {
        // The queue bound is backpressure: when the disk cannot keep up, senders wait here
        // instead of growing memory.
        let (tx, mut rx) = mpsc::channel::<Job>(max_batch * 4);
        tokio::spawn(async move {
            let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
            while rx.recv_many(&mut jobs, max_batch).await > 0 {
                let mut replies = Vec::with_capacity(jobs.len());
                let messages: Vec<NewMessage> = jobs
                    .drain(..)
                    .map(|j| {
                        replies.push((j.message.client_id.clone(), j.reply));
                        j.message
                    })
                    .collect();
                metrics.batches.fetch_add(1, Ordering::Relaxed);
                let results = store.send_messages(messages).await;
                for ((client_id, reply), result) in replies.into_iter().zip(results) {
                    if matches!(&result, Ok(o) if o.created) {
                        metrics.messages.fetch_add(1, Ordering::Relaxed);
                    }
                    answer(reply, client_id, result);
                }
            }
        });
        Batcher { tx }
    }

    /// Queues a message from a WebSocket connection; its `ack` (or `error`) is queued on
    /// `conn` after the commit.
    pub async fn submit_from(&self, message: NewMessage, conn: Arc<Conn>) -> Result<()> {
        let reply = Reply::Socket(conn);
        self.tx
            .send(Job { message, reply })
            .await
            .map_err(|_| unavailable())
    }

    /// Commits a message and returns the outcome (REST).
    pub async fn send(&self, message: NewMessage) -> Result<SendOutcome> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply::Caller(tx);
        self.tx
            .send(Job { message, reply })
            .await
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }
}

fn answer(reply: Reply, client_id: String, result: Result<SendOutcome>) {
    match reply {
        // The sender may have gone away; the message is committed regardless.
        Reply::Caller(tx) => {
            let _ = tx.send(result);
        }
        Reply::Socket(conn) => {
            let frame = match result {
                Ok(outcome) => ServerFrame::Ack {
                    client_id,
                    message: outcome.message,
                },
                Err(e) => crate::ws::error_frame(Some(client_id), &e),
            };
            // A full queue closes the connection as too slow (the client resumes with sync).
            conn.push(Outbound::ephemeral(crate::ws::encode(&frame)));
        }
    }
}
