//! The send path's domain side: [`new_message`] validates a send (the same rules for REST
//! and WebSocket), and the [`Batcher`] commits sends as groups.
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
//!
//! On SQLite the batcher is an OS thread that owns the message writer's connection (see
//! `store::sqlite_writer`): it blocks for the first send, takes every other send waiting
//! (the ones that queued while the previous batch was committing), commits them with
//! synchronous SQLite calls and answers them, with no hop back to the async runtime per
//! query. On PostgreSQL it is a task calling the store's async `send_messages`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chatnode_protocol::{self as p, ErrorCode, ServerFrame};
use tokio::sync::{mpsc, oneshot};

use crate::domain::{self, ConversationId, UserId};
use crate::error::{Error, Result};
use crate::hub::{Conn, Outbound};
use crate::metrics::Metrics;
use crate::store::{BlockingCommitter, NewMessage, SendOutcome, Store};
use crate::tasks::Tasks;

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

enum Input {
    Send(Job),
    /// Shutdown: commit and answer everything queued before this, refuse what comes after,
    /// then stop (and say so).
    Drain(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Input>,
    /// Set at shutdown: new sends are refused (`unavailable`).
    closed: Arc<std::sync::atomic::AtomicBool>,
}

fn unavailable() -> Error {
    Error::new(ErrorCode::Unavailable, "server is shutting down")
}

impl Batcher {
    /// Starts the batcher: on SQLite the writer thread (it ends when drained, or when every
    /// sender is gone), otherwise a background task of `tasks`.
    pub fn spawn(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        tasks: &Tasks,
    ) -> Batcher {
        // The queue bound is backpressure: when the disk cannot keep up, senders wait here
        // instead of growing memory.
        let (tx, rx) = mpsc::channel::<Input>(max_batch * 4);
        match store.blocking_committer() {
            Some(committer) => {
                let spawned = std::thread::Builder::new()
                    .name("chatnode-writer".into())
                    .spawn(move || commit_thread(rx, committer, metrics, max_batch));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start the message writer thread");
                }
            }
            None => {
                tasks.background(commit_task(rx, store, metrics, max_batch));
            }
        }
        Batcher {
            tx,
            closed: Default::default(),
        }
    }

    /// Shutdown: from now on sends are refused; everything queued before is committed and
    /// answered. Returns once the batcher has stopped.
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let (done, wait) = oneshot::channel();
        if self.tx.send(Input::Drain(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    async fn submit(&self, job: Job) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(unavailable());
        }
        self.tx
            .send(Input::Send(job))
            .await
            .map_err(|_| unavailable())
    }

    /// Queues a message from a WebSocket connection; its `ack` (or `error`) is queued on
    /// `conn` after the commit.
    pub async fn submit_from(&self, message: NewMessage, conn: Arc<Conn>) -> Result<()> {
        let reply = Reply::Socket(conn);
        self.submit(Job { message, reply }).await
    }

    /// Commits a message and returns the outcome (REST).
    pub async fn send(&self, message: NewMessage) -> Result<SendOutcome> {
        let (tx, rx) = oneshot::channel();
        let reply = Reply::Caller(tx);
        self.submit(Job { message, reply }).await?;
        rx.await.map_err(|_| unavailable())?
    }
}

/// The batcher as an OS thread around a synchronous committer (SQLite).
fn commit_thread(
    mut rx: mpsc::Receiver<Input>,
    mut commit: BlockingCommitter,
    metrics: Arc<Metrics>,
    max_batch: usize,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    let mut drained = None;
    while let Some(first) = rx.blocking_recv() {
        match first {
            Input::Send(j) => jobs.push(j),
            Input::Drain(done) => drained = Some(done),
        }
        while drained.is_none() && jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(Input::Send(j)) => jobs.push(j),
                Ok(Input::Drain(done)) => drained = Some(done),
                Err(_) => break,
            }
        }
        if !jobs.is_empty() {
            let messages: Vec<NewMessage> = jobs.iter().map(|j| j.message.clone()).collect();
            metrics.batches.fetch_add(1, Ordering::Relaxed);
            let results = commit(&messages);
            finish(&metrics, jobs.drain(..), results);
        }
        if let Some(done) = drained.take() {
            refuse_the_rest(&mut rx);
            let _ = done.send(());
            return;
        }
    }
}

/// The batcher as a task around the store's async `send_messages` (PostgreSQL).
async fn commit_task(
    mut rx: mpsc::Receiver<Input>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    max_batch: usize,
) {
    let mut inputs: Vec<Input> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut inputs, max_batch).await > 0 {
        let mut jobs = Vec::with_capacity(inputs.len());
        let mut drained = None;
        for input in inputs.drain(..) {
            match input {
                // Anything after the drain request is refused below.
                Input::Send(j) if drained.is_none() => jobs.push(j),
                Input::Send(j) => answer(j.reply, j.message.client_id, Err(unavailable())),
                Input::Drain(done) => drained = Some(done),
            }
        }
        if !jobs.is_empty() {
            let messages: Vec<NewMessage> = jobs.iter().map(|j| j.message.clone()).collect();
            metrics.batches.fetch_add(1, Ordering::Relaxed);
            let results = store.send_messages(messages).await;
            finish(&metrics, jobs.into_iter(), results);
        }
        if let Some(done) = drained.take() {
            refuse_the_rest(&mut rx);
            let _ = done.send(());
            return;
        }
    }
}

/// After a drain: nothing more is taken; whatever raced in is answered `unavailable`.
fn refuse_the_rest(rx: &mut mpsc::Receiver<Input>) {
    rx.close();
    while let Ok(input) = rx.try_recv() {
        match input {
            Input::Send(j) => answer(j.reply, j.message.client_id, Err(unavailable())),
            Input::Drain(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Answers every job of a committed batch.
fn finish(metrics: &Metrics, jobs: impl Iterator<Item = Job>, results: Vec<Result<SendOutcome>>) {
    for (job, result) in jobs.zip(results) {
        if matches!(&result, Ok(o) if o.created) {
            metrics.messages.fetch_add(1, Ordering::Relaxed);
        }
        answer(job.reply, job.message.client_id, result);
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
                Err(e) => crate::error::error_frame(Some(client_id), &e),
            };
            // A full queue closes the connection as too slow (the client resumes with sync).
            conn.push(Outbound::ephemeral(crate::hub::encode(&frame)));
        }
    }
}

/// Validates a send (shared by REST and WebSocket) into a [`NewMessage`].
pub fn new_message(
    sender: &UserId,
    conversation_id: &str,
    client_id: &str,
    body: &str,
    kind: Option<p::MessageKind>,
    attachment_ids: Option<&[String]>,
    reply_to_seq: Option<i64>,
) -> Result<NewMessage> {
    let conversation_id = ConversationId::parse(conversation_id, "conversation")?;
    let client_id = domain::client_id(client_id)?;
    let kind = kind.unwrap_or(p::MessageKind::Text);
    let attachment_ids = attachment_ids.unwrap_or_default().to_vec();
    match kind {
        p::MessageKind::System => {
            return Err(Error::invalid(
                "kind",
                "clients cannot send system messages",
            ));
        }
        p::MessageKind::Text if !attachment_ids.is_empty() => {
            return Err(Error::invalid(
                "attachment_ids",
                "text messages carry no attachments",
            ));
        }
        p::MessageKind::Image
        | p::MessageKind::File
        | p::MessageKind::Video
        | p::MessageKind::Audio
            if attachment_ids.is_empty() =>
        {
            return Err(Error::invalid(
                "attachment_ids",
                "this kind of message needs attachments",
            ));
        }
        _ => {}
    }
    if attachment_ids.len() > 10 {
        return Err(Error::invalid("attachment_ids", "at most 10 attachments"));
    }
    let body = domain::message_body(body, kind != p::MessageKind::Text)?;
    if matches!(reply_to_seq, Some(s) if s < 1) {
        return Err(Error::invalid(
            "reply_to_seq",
            "reply_to_seq must be at least 1",
        ));
    }
    Ok(NewMessage {
        sender_id: sender.clone(),
        conversation_id,
        client_id,
        kind,
        body,
        attachment_ids,
        reply_to_seq,
        via_webhook: None,
    })
}
