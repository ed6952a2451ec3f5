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

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    health: Arc<WriterHealth>,
}

fn unavailable() -> Error {
    Error::new(ErrorCode::Unavailable, "server is shutting down")
}

fn writer_failed() -> Error {
    Error::new(
        ErrorCode::Unavailable,
        "the message was not committed (the writer failed); send it again",
    )
}

fn writer_stopped() -> Error {
    Error::new(
        ErrorCode::Unavailable,
        "the message writer stopped; this server is restarting",
    )
}

/// Panics within a minute after which the writer is not started again.
pub const MAX_RESTARTS: usize = 3;
/// A batch running longer than this makes `/readyz` report the writer stalled.
const STALLED_AFTER: Duration = Duration::from_secs(10);

/// How long one failed batch keeps `/readyz` unready (a later good batch ends it sooner).
const FAILING_FOR: Duration = Duration::from_secs(30);

const HEALTHY: u8 = 0;
const FAILING: u8 = 1;
const STOPPED: u8 = 2;

/// What `/readyz` and new sends learn about the writer.
#[derive(Default)]
pub struct WriterHealth {
    /// [`HEALTHY`], [`FAILING`] (the last batch failed for a reason that is the server's, not
    /// the senders') or [`STOPPED`].
    state: AtomicU8,
    /// When the running batch started (ms since the Unix epoch), 0 between batches.
    busy_since_ms: AtomicU64,
    /// When it last became [`FAILING`]: failing is reported for [`FAILING_FOR`] after that
    /// unless a batch succeeds first (with no sends, nothing would clear it otherwise).
    failed_at_ms: AtomicU64,
    /// What went wrong last.
    last_error: Mutex<Option<String>>,
    /// Signalled once when the writer stops for good.
    stopped: tokio::sync::Notify,
}

impl WriterHealth {
    fn set(&self, state: u8, error: Option<String>) {
        self.state.store(state, Ordering::SeqCst);
        if state == FAILING {
            self.failed_at_ms
                .store(crate::time::now_ms() as u64, Ordering::Relaxed);
        }
        if let Some(e) = error {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    }

    fn error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }

    fn start_batch(&self) {
        self.busy_since_ms
            .store(crate::time::now_ms().max(1) as u64, Ordering::Relaxed);
    }

    /// After a batch: healthy unless every answer was the server's own failure.
    fn end_batch(&self, results: &[Result<SendOutcome>]) {
        self.busy_since_ms.store(0, Ordering::Relaxed);
        // Internal errors are the server's (a full disk is `unavailable` and reported as
        // such; a sender's mistake is anything else).
        let server_side = |r: &Result<SendOutcome>| matches!(r, Err(Error::Internal(_)));
        if !results.is_empty() && results.iter().all(server_side) {
            let why = results
                .iter()
                .find_map(|r| r.as_ref().err())
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            self.set(FAILING, Some(why));
        } else if self.state.load(Ordering::SeqCst) == FAILING {
            self.set(HEALTHY, None);
        }
    }

    fn stop(&self, why: String) {
        self.busy_since_ms.store(0, Ordering::Relaxed);
        self.set(STOPPED, Some(why));
        self.stopped.notify_one();
    }

    fn is_stopped(&self) -> bool {
        self.state.load(Ordering::SeqCst) == STOPPED
    }

    /// `None` when the writer is fine; otherwise why it is not (for `/readyz`).
    pub fn problem(&self) -> Option<String> {
        match self.state.load(Ordering::SeqCst) {
            STOPPED => return Some(format!("message writer stopped: {}", self.error())),
            FAILING => {
                let ago = (crate::time::now_ms() as u64)
                    .saturating_sub(self.failed_at_ms.load(Ordering::Relaxed));
                if ago < FAILING_FOR.as_millis() as u64 {
                    return Some(format!("message writer failing: {}", self.error()));
                }
            }
            _ => {}
        }
        let since = self.busy_since_ms.load(Ordering::Relaxed);
        let busy = (crate::time::now_ms() as u64).saturating_sub(since);
        (since > 0 && busy > STALLED_AFTER.as_millis() as u64).then(|| {
            format!(
                "message writer stalled: one batch has run for {} s",
                busy / 1000
            )
        })
    }
}

/// Panics of the writer in the last minute: whether it may start again.
struct Restarts(Vec<Instant>);

impl Restarts {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.0
            .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        self.0.push(now);
        self.0.len() <= MAX_RESTARTS
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
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
        let health = Arc::new(WriterHealth::default());
        match store.blocking_committer() {
            Some(committer) => {
                let h = health.clone();
                let spawned = std::thread::Builder::new()
                    .name("chatnode-writer".into())
                    .spawn(move || {
                        commit_thread(rx, store, committer, metrics, max_batch, &h);
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start the message writer thread");
                    health.stop(format!("cannot start the writer thread: {e}"));
                }
            }
            None => {
                tasks.background(commit_task(rx, store, metrics, max_batch, health.clone()));
            }
        }
        Batcher {
            tx,
            closed: Default::default(),
            health,
        }
    }

    /// The writer's state, for `/readyz`.
    pub fn health(&self) -> &WriterHealth {
        &self.health
    }

    /// Resolves when the writer has stopped for good (the process should exit non-zero).
    pub async fn stopped(&self) {
        self.health.stopped.notified().await
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
        if self.health.is_stopped() {
            return Err(writer_stopped());
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
    store: Arc<dyn Store>,
    mut commit: BlockingCommitter,
    metrics: Arc<Metrics>,
    max_batch: usize,
    health: &WriterHealth,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    let mut drained = None;
    let mut restarts = Restarts(Vec::new());
    loop {
        // Background work (the search index) runs when no send waits, or between batches
        // when it has fallen far behind.
        let first = match commit.background_due() {
            Some(urgent) => {
                // Far behind: a pass between batches even under load (before taking the
                // next input, so a writer that stops here leaves nothing taken unanswered).
                if urgent && !background(&mut commit, &store, &mut restarts, health) {
                    refuse_the_rest(&mut rx, writer_stopped);
                    return;
                }
                match rx.try_recv() {
                    Ok(input) => input,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if !urgent {
                            // Idle means nothing for a millisecond, not a gap between two
                            // sends of a busy stream (a pass cannot be interrupted).
                            std::thread::sleep(Duration::from_millis(1));
                            if rx.is_empty()
                                && !background(&mut commit, &store, &mut restarts, health)
                            {
                                refuse_the_rest(&mut rx, writer_stopped);
                                return;
                            }
                        }
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            None => match rx.blocking_recv() {
                Some(input) => input,
                None => return,
            },
        };
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
            health.start_batch();
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                crate::failpoints::writer(messages.len())
                    .unwrap_or_else(|| commit.commit(&messages))
            }));
            match run {
                Ok(results) => {
                    health.end_batch(&results);
                    finish(&metrics, jobs.drain(..), results);
                }
                Err(panic) => {
                    let why = panic_message(&*panic);
                    tracing::error!(panic = %why, "the message writer panicked; its batch was answered unavailable");
                    finish(&metrics, jobs.drain(..), Vec::new());
                    if !restart(&mut commit, &store, &mut restarts, health, &why) {
                        refuse_the_rest(&mut rx, writer_stopped);
                        return;
                    }
                }
            }
        }
        if let Some(done) = drained.take() {
            refuse_the_rest(&mut rx, unavailable);
            let _ = done.send(());
            return;
        }
    }
}

/// Runs a piece of the writer's background work; a panic in it restarts the writer like one
/// in a batch. Answers false when the writer has stopped for good.
fn background(
    commit: &mut BlockingCommitter,
    store: &Arc<dyn Store>,
    restarts: &mut Restarts,
    health: &WriterHealth,
) -> bool {
    let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| commit.background())) else {
        return true;
    };
    let why = panic_message(&*panic);
    tracing::error!(panic = %why, "the message writer panicked in its background work");
    restart(commit, store, restarts, health, &why)
}

/// After a panic in the writer: a fresh connection, unless it keeps failing (or cannot be
/// had). Answers false when the writer has stopped for good.
fn restart(
    commit: &mut BlockingCommitter,
    store: &Arc<dyn Store>,
    restarts: &mut Restarts,
    health: &WriterHealth,
    why: &str,
) -> bool {
    let fresh = if restarts.allow() {
        store.blocking_committer()
    } else {
        None
    };
    match fresh {
        Some(c) => {
            *commit = c;
            health.set(FAILING, Some(format!("restarted after a panic: {why}")));
            tracing::warn!("the message writer was restarted");
            true
        }
        None => {
            health.stop(format!("it panicked repeatedly (last: {why})"));
            tracing::error!("the message writer stopped; shutting down");
            false
        }
    }
}

/// The batcher as a task around the store's async `send_messages` (PostgreSQL).
async fn commit_task(
    mut rx: mpsc::Receiver<Input>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    health: Arc<WriterHealth>,
) {
    use futures_util::FutureExt;
    let mut inputs: Vec<Input> = Vec::with_capacity(max_batch);
    let mut restarts = Restarts(Vec::new());
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
            health.start_batch();
            let run = async {
                match crate::failpoints::writer(messages.len()) {
                    Some(r) => r,
                    None => store.send_messages(messages).await,
                }
            };
            match AssertUnwindSafe(run).catch_unwind().await {
                Ok(results) => {
                    health.end_batch(&results);
                    finish(&metrics, jobs.into_iter(), results);
                }
                Err(panic) => {
                    let why = panic_message(&*panic);
                    tracing::error!(panic = %why, "the message writer panicked; its batch was answered unavailable");
                    finish(&metrics, jobs.into_iter(), Vec::new());
                    if restarts.allow() {
                        health.set(FAILING, Some(format!("restarted after a panic: {why}")));
                    } else {
                        health.stop(format!("it panicked repeatedly (last: {why})"));
                        tracing::error!("the message writer stopped; shutting down");
                        refuse_the_rest(&mut rx, writer_stopped);
                        return;
                    }
                }
            }
        }
        if let Some(done) = drained.take() {
            refuse_the_rest(&mut rx, unavailable);
            let _ = done.send(());
            return;
        }
    }
}

/// After a drain (or when the writer stops): nothing more is taken; whatever raced in is
/// answered with `why`.
fn refuse_the_rest(rx: &mut mpsc::Receiver<Input>, why: fn() -> Error) {
    rx.close();
    while let Ok(input) = rx.try_recv() {
        match input {
            Input::Send(j) => answer(j.reply, j.message.client_id, Err(why())),
            Input::Drain(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Answers every job of a batch: with its result, or, where the writer returned fewer
/// results than jobs (or none, after a panic), with [`writer_failed`].
fn finish(metrics: &Metrics, jobs: impl Iterator<Item = Job>, results: Vec<Result<SendOutcome>>) {
    let mut results = results.into_iter();
    let mut missing = 0usize;
    for job in jobs {
        let result = results.next().unwrap_or_else(|| {
            missing += 1;
            Err(writer_failed())
        });
        if matches!(&result, Ok(o) if o.created) {
            metrics.messages.fetch_add(1, Ordering::Relaxed);
        }
        answer(job.reply, job.message.client_id, result);
    }
    if missing > 0 {
        metrics
            .writer_failures
            .fetch_add(missing as u64, Ordering::Relaxed);
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
