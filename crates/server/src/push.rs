//! Web Push (RFC 8030 delivery, RFC 8291 `aes128gcm` payloads, RFC 8292 VAPID).
//!
//! Committed messages and read markers reach the [`Notifier`] through a bounded channel that
//! the hub never waits on. For each message it waits a short delay, then pushes to each
//! recipient who has a subscription, has not muted the conversation, has not read the message
//! and has no connection *showing* that conversation (`view` frames) — being online elsewhere
//! in the app is not enough to skip a push. Every push carries a `Topic` per conversation, so
//! a newer push replaces an undelivered older one, and when the recipient reads the
//! conversation on another device a `clear` push follows with the same topic.
//!
//! Sending runs on its own bounded queue and worker pool with per-request timeouts, fair
//! between push services (`push/queue.rs`: round-robin per origin, a capped share of the
//! workers for each origin and for the slow ones together), and retries with backoff on 429,
//! 5xx and unanswered requests that honour `Retry-After` (RFC 8030 §8.4) while holding no
//! worker; subscriptions the push service reports gone (404, 410) are deleted. A slow or
//! dead push service costs its own notifications, never chat delivery nor other services'
//! notifications. Requests carry a VAPID token signed here for the push resource's origin.
//! "Showing" is known per node: in a cluster, a client viewing a conversation on another
//! node than the sender's does not stop the push (documented limit).

mod queue;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use axum::http::{HeaderValue, Uri, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatnode_protocol::{self as p, PushPayload};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::{Auth, WebPushBuilder};

use crate::domain::{ConversationId, UserId};
use crate::events::{Durable, EventKind};
use crate::hub::Hub;
use crate::store::{PushTarget, Store};

/// Settings of the push sender.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Whether this node sends push requests (the `push` role); otherwise it hands them to
    /// a node that does (in a cluster) or sends none.
    pub sends: bool,
    /// How long after a message to decide whether to push it.
    pub delay: Duration,
    /// The VAPID `sub` claim (a `mailto:` or `https:` contact).
    pub contact: String,
    /// Concurrent requests to push services.
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// A [`Job`] on its way to a `push` node.
#[derive(serde::Serialize, serde::Deserialize)]
struct WireJob {
    user_id: String,
    endpoint: String,
    p256dh: String,
    auth: String,
    /// The payload before encryption (the sending node encrypts), base64url.
    payload: String,
    topic: String,
    urgency: String,
}

impl From<&Job> for WireJob {
    fn from(j: &Job) -> WireJob {
        WireJob {
            user_id: j.target.user_id.clone(),
            endpoint: j.target.endpoint.clone(),
            p256dh: j.target.p256dh.clone(),
            auth: j.target.auth.clone(),
            payload: URL_SAFE_NO_PAD.encode(&j.payload),
            topic: j.topic.clone(),
            urgency: j.urgency.to_owned(),
        }
    }
}

impl WireJob {
    fn into_job(self) -> Job {
        Job {
            target: PushTarget {
                user_id: self.user_id,
                endpoint: self.endpoint,
                p256dh: self.p256dh,
                auth: self.auth,
            },
            payload: URL_SAFE_NO_PAD.decode(self.payload).unwrap_or_default(),
            topic: self.topic,
            urgency: if self.urgency == "high" {
                "high"
            } else {
                "normal"
            },
            attempts: 0,
        }
    }
}

struct Job {
    target: PushTarget,
    payload: Vec<u8>,
    topic: String,
    urgency: &'static str,
    /// Requests made for it so far.
    attempts: u32,
}

/// Requests per notification, the first included.
const ATTEMPTS: u32 = 4;

/// The longest `Retry-After` the sender waits for. A push service asking for more is not
/// going to deliver this notification while it still matters: it is given up.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Notifications waiting to be sent or retried, all push services together.
const QUEUE_LIMIT: usize = 10_000;

/// What one request's answer means for its notification.
enum Verdict {
    /// Finished: sent, gone, refused or undeliverable (counted in the stats).
    Done,
    /// The push service answered 429 or 5xx: try again, not before its `Retry-After` if any.
    Retry(Option<Duration>),
    /// No answer (timeout, connection refused or reset): try again, and count the origin
    /// as slow for a while.
    Unanswered,
}

pub struct Notifier {
    /// The `push` role: this node sends push requests.
    sends: bool,
    /// The cluster, once joined: where jobs go when this node does not send.
    remote: OnceLock<Arc<crate::cluster::Cluster>>,
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    cfg: PushConfig,
    vapid: Vapid,
    /// Notifications waiting for a worker or for their retry time.
    queue: Mutex<queue::SendQueue<Job>>,
    /// Wakes the sender loop when a job is queued.
    queued: Notify,
    /// Conversations with a notification showing, per user, and the seq it was for; a read at
    /// or past it sends the `clear` push.
    outstanding: Mutex<HashMap<(String, String), i64>>,
    /// Sent requests by outcome, for tests and metrics.
    pub stats: PushStats,
    /// Whether any push subscription exists at all. While none does (most servers without
    /// a web client in use), messages cost the notifier nothing: no timer, no query.
    has_subscriptions: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
pub struct PushStats {
    pub sent: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub gone: std::sync::atomic::AtomicU64,
    /// Messages waiting for their push decision.
    pub waiting: std::sync::atomic::AtomicU64,
    /// Messages that got no push decision because [`WAITING_LIMIT`] were waiting, and
    /// pushes a single node without the `push` role did not send.
    pub dropped: std::sync::atomic::AtomicU64,
    /// Push requests handed to a `push` node of the cluster.
    pub forwarded: std::sync::atomic::AtomicU64,
}

/// Messages that may wait for their push decision; more are not pushed (and counted).
const WAITING_LIMIT: usize = 50_000;
/// Push decisions (a database read each) running at once.
const DECIDING: usize = 8;

/// Loads the VAPID key from `DATA_DIR/vapid_private_key`, creating it (0600) on first run.
fn load_or_create_key(path: &Path) -> anyhow::Result<ES256KeyPair> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let raw = URL_SAFE_NO_PAD
                .decode(text.trim())
                .context("invalid VAPID key file")?;
            ES256KeyPair::from_bytes(&raw).map_err(|e| anyhow::anyhow!("invalid VAPID key: {e}"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = ES256KeyPair::generate();
            crate::secrets::write_private(path, URL_SAFE_NO_PAD.encode(kp.to_bytes()).as_bytes())?;
            Ok(kp)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A `Topic` header value for a conversation: at most 32 URL-safe characters.
fn topic(conversation_id: &str) -> String {
    conversation_id.replace('-', "").chars().take(32).collect()
}

impl Notifier {
    pub fn start(
        data_dir: &Path,
        cfg: PushConfig,
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        tasks: &crate::tasks::Tasks,
    ) -> anyhow::Result<Arc<Notifier>> {
        let vapid = Vapid::new(
            load_or_create_key(&data_dir.join("vapid_private_key"))?,
            cfg.contact.clone(),
        );
        let (events_tx, events_rx) = mpsc::channel::<Durable>(10_000);
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .build()
            .context("cannot build the push HTTP client")?;
        let n = Arc::new(Notifier {
            sends: cfg.sends,
            remote: OnceLock::new(),
            store,
            hub: hub.clone(),
            vapid,
            queue: Mutex::new(queue::SendQueue::new(QUEUE_LIMIT, cfg.concurrency.max(1))),
            queued: Notify::new(),
            outstanding: Mutex::new(HashMap::new()),
            stats: PushStats::default(),
            // Assume some until the first check says otherwise.
            has_subscriptions: std::sync::atomic::AtomicBool::new(true),
            cfg,
        });
        tasks.background(n.clone().watch_subscriptions());
        hub.set_notifier(events_tx);
        tasks.background(n.clone().listen(events_rx));
        if n.sends {
            tasks.background(n.clone().send_loop(http));
        }
        Ok(n)
    }

    /// In a cluster: push requests decided here go to a node of the `push` role (this one
    /// when it has the role), and a `push` node also sends those the other nodes decided.
    pub async fn join(
        self: &Arc<Self>,
        cluster: Arc<crate::cluster::Cluster>,
        tasks: &crate::tasks::Tasks,
    ) -> anyhow::Result<()> {
        if self.sends {
            let mut jobs = cluster.push_jobs().await?;
            let me = self.clone();
            tasks.background(async move {
                use futures_util::StreamExt;
                while let Some(msg) = jobs.next().await {
                    match serde_json::from_slice::<WireJob>(&msg.payload) {
                        Ok(w) => me.enqueue_here(w.into_job()),
                        Err(e) => {
                            tracing::warn!(error = %e, "push: a malformed job from the cluster")
                        }
                    }
                }
            });
        }
        let mut subscribed = cluster.push_subscribed().await?;
        let me = self.clone();
        tasks.background(async move {
            use futures_util::StreamExt;
            while subscribed.next().await.is_some() {
                me.has_subscriptions
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let _ = self.remote.set(cluster);
        Ok(())
    }

    /// The notifier's Prometheus metrics.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let st = &self.stats;
        let queued = self.lock_queue().len() as u64;
        for (name, help, kind, v) in [
            (
                "chatnode_push_sent_total",
                "Push requests accepted by push services.",
                "counter",
                st.sent.load(Relaxed),
            ),
            (
                "chatnode_push_failed_total",
                "Push notifications given up on.",
                "counter",
                st.failed.load(Relaxed),
            ),
            (
                "chatnode_push_gone_total",
                "Subscriptions removed as gone (404, 410).",
                "counter",
                st.gone.load(Relaxed),
            ),
            (
                "chatnode_push_forwarded_total",
                "Push requests handed to a push node of the cluster.",
                "counter",
                st.forwarded.load(Relaxed),
            ),
            (
                "chatnode_push_waiting",
                "Messages waiting for their push decision.",
                "gauge",
                st.waiting.load(Relaxed),
            ),
            (
                "chatnode_push_dropped_total",
                "Messages not considered for a push because too many were waiting.",
                "counter",
                st.dropped.load(Relaxed),
            ),
            (
                "chatnode_push_queued",
                "Push requests waiting for a worker or a retry.",
                "gauge",
                queued,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }

    /// The `applicationServerKey` browsers subscribe with.
    pub fn public_key(&self) -> &str {
        &self.vapid.public_key
    }

    /// A subscription was just added on this node: stop skipping messages, here and (in a
    /// cluster) on every node.
    pub fn note_subscribed(&self) {
        self.has_subscriptions
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(cluster) = self.remote.get() {
            cluster.publish_push_subscribed();
        }
    }

    /// Re-checks every 30 s whether any subscription exists (other nodes may add some).
    async fn watch_subscriptions(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            if let Ok(any) = self.store.any_push_subscriptions().await {
                self.has_subscriptions
                    .store(any, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Takes committed events; each message waits its delay in one bounded FIFO (the delay
    /// is the same for all, so arrival order is due order) and is then decided, at most
    /// [`DECIDING`] at a time, all on this one task: no task or timer per message.
    async fn listen(self: Arc<Self>, mut rx: mpsc::Receiver<Durable>) {
        let mut waiting: std::collections::VecDeque<(Instant, String, i64)> = Default::default();
        let mut deciding: JoinSet<()> = JoinSet::new();
        loop {
            let next_due = waiting.front().map(|w| w.0);
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => self.on_event(e, &mut waiting).await,
                    None => return,
                },
                _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now).into()),
                    if next_due.is_some() && deciding.len() < DECIDING => {
                    if let Some((_, conv, seq)) = waiting.pop_front() {
                        let me = self.clone();
                        deciding.spawn(async move {
                            if let Err(err) = me.decide(&conv, seq).await {
                                tracing::warn!(error = %err, "push: cannot decide on a message");
                            }
                        });
                    }
                }
                Some(_) = deciding.join_next(), if !deciding.is_empty() => {}
            }
            self.stats.waiting.store(waiting.len() as u64, Relaxed);
        }
    }

    async fn on_event(
        &self,
        e: Durable,
        waiting: &mut std::collections::VecDeque<(Instant, String, i64)>,
    ) {
        {
            if !self
                .has_subscriptions
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                return;
            }
            if e.kind == EventKind::Notification {
                if let Some(user) = e.user_id.as_deref()
                    && let Err(err) = self.on_notification(user, &e.json).await
                {
                    tracing::warn!(error = %err, "push: cannot push a service notification");
                }
                return;
            }
            let Some(conv) = e.conversation_id.clone() else {
                return;
            };
            if let Some(seq) = e.seq {
                if waiting.len() >= WAITING_LIMIT {
                    // Far behind (the database is slow): this message gets no push, and
                    // the metric says so.
                    self.stats.dropped.fetch_add(1, Relaxed);
                } else {
                    waiting.push_back((Instant::now() + self.cfg.delay, conv, seq));
                }
            } else if e.kind == EventKind::Read
                && let Err(err) = self.on_read(&conv, &e.json).await
            {
                tracing::warn!(error = %err, "push: cannot handle a read marker");
            }
        }
    }

    async fn decide(&self, conv: &str, seq: i64) -> crate::error::Result<()> {
        // From a committed event the store wrote.
        let conversation = ConversationId::trusted(conv);
        let Some(ctx) = self.store.push_context(&conversation, seq).await? else {
            return Ok(());
        };
        if ctx.deleted {
            return Ok(());
        }
        let now = crate::time::now_ms();
        for r in ctx.recipients {
            // A mention passes a mute, unless the mute was set to silence mentions too.
            let mentioned = ctx.mentions.contains(&r.user_id);
            let muted = r.muted_until.is_some_and(|t| t > now) && (r.mute_mentions || !mentioned);
            if muted || r.last_read_seq >= seq || self.hub.is_viewing(&r.user_id, conv) {
                continue;
            }
            let body = if !r.previews {
                None
            } else if ctx.body.is_empty() {
                Some(match ctx.kind {
                    p::MessageKind::Image => "📷 Photo".to_owned(),
                    p::MessageKind::Video => "🎬 Video".to_owned(),
                    p::MessageKind::Audio => "🎤 Voice message".to_owned(),
                    p::MessageKind::File => "📎 File".to_owned(),
                    _ => String::new(),
                })
            } else {
                Some(ctx.body.chars().take(300).collect())
            };
            let payload = PushPayload::Message {
                conversation_id: conv.to_owned(),
                seq,
                group: ctx.group_name.clone(),
                sender: ctx.sender_name.clone(),
                body,
                kind: ctx.kind,
                url: format!("/c/{conv}"),
            };
            let bytes = serde_json::to_vec(&payload).unwrap_or_default();
            self.outstanding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((r.user_id.clone(), conv.to_owned()), seq);
            for target in r.targets {
                self.enqueue(Job {
                    target,
                    payload: bytes.clone(),
                    topic: topic(conv),
                    urgency: "high",
                    attempts: 0,
                });
            }
            let _ = &ctx.sender_id;
        }
        Ok(())
    }

    /// A service notification reaches a user's devices as a push when none of them is
    /// connected (one that is shows it itself, from the `notification` event).
    async fn on_notification(&self, user: &str, json: &[u8]) -> crate::error::Result<()> {
        #[derive(serde::Deserialize)]
        struct Note {
            id: String,
            title: String,
            body: String,
            url: Option<String>,
        }
        let Ok(n) = serde_json::from_slice::<Note>(json) else {
            return Ok(());
        };
        if self.hub.is_online(user) {
            return Ok(());
        }
        let topic: String = format!("n{}", n.id.replace('-', ""))
            .chars()
            .take(32)
            .collect();
        let payload = serde_json::to_vec(&PushPayload::Notification {
            id: n.id,
            title: n.title,
            body: n.body,
            url: n.url,
        })
        .unwrap_or_default();
        // From a committed `notification` event the store wrote.
        let user = UserId::trusted(user);
        for target in self.store.push_targets(&user).await? {
            self.enqueue(Job {
                target,
                payload: payload.clone(),
                topic: topic.clone(),
                urgency: "normal",
                attempts: 0,
            });
        }
        Ok(())
    }

    async fn on_read(&self, conv: &str, json: &[u8]) -> crate::error::Result<()> {
        #[derive(serde::Deserialize)]
        struct Read {
            user_id: String,
            seq: i64,
        }
        let Ok(read) = serde_json::from_slice::<Read>(json) else {
            return Ok(());
        };
        let key = (read.user_id.clone(), conv.to_owned());
        let was_shown = {
            let mut out = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
            match out.get(&key) {
                Some(s) if *s <= read.seq => out.remove(&key).is_some(),
                _ => false,
            }
        };
        if !was_shown {
            return Ok(());
        }
        let payload = serde_json::to_vec(&PushPayload::Clear {
            conversation_id: conv.to_owned(),
            seq: read.seq,
        })
        .unwrap_or_default();
        // From a committed `read` event the store wrote.
        let reader = UserId::trusted(read.user_id.as_str());
        for target in self.store.push_targets(&reader).await? {
            self.enqueue(Job {
                target,
                payload: payload.clone(),
                topic: topic(conv),
                urgency: "normal",
                attempts: 0,
            });
        }
        Ok(())
    }

    /// Sends `job` from here (a `push` node) or hands it to one that sends.
    fn enqueue(&self, job: Job) {
        if self.sends {
            return self.enqueue_here(job);
        }
        match self.remote.get() {
            Some(cluster) => {
                let wire = WireJob::from(&job);
                match serde_json::to_vec(&wire) {
                    Ok(bytes) => {
                        cluster.publish_push(bytes.into());
                        self.stats.forwarded.fetch_add(1, Relaxed);
                    }
                    Err(e) => tracing::error!(error = %e, "push: cannot encode a job"),
                }
            }
            // A single node without the push role sends no pushes (its operator said so).
            None => {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    fn enqueue_here(&self, job: Job) {
        let origin = job
            .target
            .endpoint
            .parse::<Uri>()
            .ok()
            .and_then(|uri| origin(&uri));
        let Some(origin) = origin else {
            self.stats.failed.fetch_add(1, Relaxed);
            tracing::warn!("push: a subscription's endpoint has no origin");
            return;
        };
        if self.lock_queue().push(origin, job).is_err() {
            self.stats.failed.fetch_add(1, Relaxed);
            tracing::warn!("push: send queue full, notification dropped");
            return;
        }
        self.queued.notify_one();
    }

    fn lock_queue(&self) -> MutexGuard<'_, queue::SendQueue<Job>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts requests while workers are free and the queue lets a job go, and waits for a
    /// new job, a request to finish or a retry to fall due. The workers are tasks of this
    /// loop's `JoinSet`: they end with it. A job waiting to be retried holds no worker.
    async fn send_loop(self: Arc<Self>, http: reqwest::Client) {
        let mut workers: JoinSet<(Job, Verdict)> = JoinSet::new();
        // The queue's claim of each running request, given back when it finishes (also if
        // its task panicked, so an origin's share cannot leak away).
        let mut running: HashMap<tokio::task::Id, queue::Ticket> = HashMap::new();
        loop {
            while workers.len() < self.cfg.concurrency.max(1) {
                let next = self.lock_queue().take(Instant::now());
                let Some((ticket, job)) = next else {
                    break;
                };
                let (me, http) = (self.clone(), http.clone());
                let task = workers.spawn(async move {
                    let verdict = me.attempt(&http, &job).await;
                    (job, verdict)
                });
                running.insert(task.id(), ticket);
            }
            // With every worker busy a due retry could not start anyway: only a finished
            // request makes progress (and a timer already past would spin this loop).
            let next_retry = if workers.len() < self.cfg.concurrency.max(1) {
                self.lock_queue().next_retry()
            } else {
                None
            };
            let retry_due = async {
                match next_retry {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.queued.notified() => {}
                () = retry_due => {}
                Some(finished) = workers.join_next_with_id() => match finished {
                    Ok((id, (job, verdict))) => {
                        if let Some(ticket) = running.remove(&id) {
                            self.after_attempt(ticket, job, verdict);
                        }
                    }
                    Err(e) => {
                        if let Some(ticket) = running.remove(&e.id()) {
                            self.lock_queue().done(ticket);
                        }
                        self.stats.failed.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, "push: a send task failed");
                    }
                },
            }
        }
    }

    /// Frees the finished request's share and, for a verdict worth another attempt,
    /// schedules it: no sooner than the backoff and the push service's `Retry-After`.
    fn after_attempt(&self, ticket: queue::Ticket, mut job: Job, verdict: Verdict) {
        let now = Instant::now();
        let mut queue = self.lock_queue();
        let retry_after = match verdict {
            Verdict::Done => {
                queue.done(ticket);
                return;
            }
            Verdict::Retry(retry_after) => retry_after,
            Verdict::Unanswered => {
                queue.mark_slow(&ticket.origin, now);
                None
            }
        };
        let origin = ticket.origin.clone();
        queue.done(ticket);
        job.attempts += 1;
        let Some(wait) = retry_delay(job.attempts, retry_after) else {
            self.stats.failed.fetch_add(1, Relaxed);
            tracing::warn!(
                attempts = job.attempts,
                retry_after_secs = retry_after.map(|d| d.as_secs()),
                origin,
                "push: giving up on a notification"
            );
            return;
        };
        if queue.retry_at(origin, job, now + wait).is_err() {
            self.stats.failed.fetch_add(1, Relaxed);
            tracing::warn!("push: send queue full, retry dropped");
        }
        // The loop recomputes its timer after every finished request: no wake-up needed.
    }

    /// One request for a job, and what its answer means.
    async fn attempt(&self, http: &reqwest::Client, job: &Job) -> Verdict {
        let request = match build_request(&self.vapid, &job.target, &job.payload) {
            Ok(request) => request,
            Err(e) => {
                self.stats.failed.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "push: invalid subscription");
                return Verdict::Done;
            }
        };
        let (parts, body) = request.into_parts();
        let mut rb = http.post(parts.uri.to_string()).body(body);
        for (name, value) in parts.headers.iter() {
            rb = rb.header(name, value);
        }
        rb = rb
            .header("Topic", &job.topic)
            .header("Urgency", job.urgency);
        let response = match rb.send().await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(error = %e, "push: request failed");
                return Verdict::Unanswered;
            }
        };
        match response.status().as_u16() {
            200..=299 => {
                self.stats.sent.fetch_add(1, Relaxed);
                Verdict::Done
            }
            404 | 410 => {
                self.stats.gone.fetch_add(1, Relaxed);
                if let Err(e) = self.store.drop_push_endpoint(&job.target.endpoint).await {
                    tracing::warn!(error = %e, "push: cannot drop a gone subscription");
                }
                Verdict::Done
            }
            429 | 500..=599 => Verdict::Retry(
                response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
            ),
            status => {
                tracing::warn!(status, "push: the push service refused a notification");
                self.stats.failed.fetch_add(1, Relaxed);
                Verdict::Done
            }
        }
    }
}

/// The wait before the next request after `made` requests: 0.5 s, 1 s, 2 s, or the push
/// service's `Retry-After` when that is longer; `None` to give up (no attempts left, or a
/// `Retry-After` past [`MAX_RETRY_AFTER`]).
fn retry_delay(made: u32, retry_after: Option<Duration>) -> Option<Duration> {
    if made >= ATTEMPTS {
        return None;
    }
    let backoff = Duration::from_millis(500) * 2u32.pow(made.saturating_sub(1));
    match retry_after {
        Some(wait) if wait > MAX_RETRY_AFTER => None,
        Some(wait) => Some(wait.max(backoff)),
        None => Some(backoff),
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3) as a wait from `now`: delta-seconds or an
/// HTTP-date (a date in the past means now); `None` when it is neither.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still an answer: a very long wait.
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How long a push service keeps an undelivered notification (the `TTL` header).
const PUSH_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a VAPID token is valid. RFC 8292 §2 allows at most 24 hours from the request;
/// half of that leaves room for a push service whose clock is ahead of ours.
const VAPID_VALIDITY_SECS: u64 = 12 * 3600;

/// This server's VAPID identity (RFC 8292): the key pair, its public half as browsers and
/// push services see it, and the contact sent as `sub`.
struct Vapid {
    key: ES256KeyPair,
    /// The uncompressed public key, base64url: `applicationServerKey` and the header's `k`.
    public_key: String,
    contact: String,
}

impl Vapid {
    fn new(key: ES256KeyPair, contact: String) -> Vapid {
        let public_key =
            URL_SAFE_NO_PAD.encode(key.public_key().public_key().to_bytes_uncompressed());
        Vapid {
            key,
            public_key,
            contact,
        }
    }

    /// The `Authorization: vapid t=…, k=…` header for a request to a push resource at
    /// `audience` (its origin). Signed here rather than by web-push-native, whose token names
    /// `scheme://host` without the port.
    fn authorization(&self, audience: &str) -> anyhow::Result<HeaderValue> {
        let claims = Claims::create(web_push_native::jwt_simple::prelude::Duration::from_secs(
            VAPID_VALIDITY_SECS,
        ))
        .with_audience(audience)
        .with_subject(&self.contact);
        let token = self
            .key
            .sign(claims)
            .map_err(|e| anyhow::anyhow!("cannot sign the VAPID token: {e}"))?;
        Ok(HeaderValue::from_str(&format!(
            "vapid t={token}, k={}",
            self.public_key
        ))?)
    }
}

/// The origin of a push resource as RFC 6454 serializes it: `scheme://host`, plus `:port`
/// when the port is not the scheme's default. It is the VAPID `aud` (RFC 8292 §2).
fn origin(endpoint: &Uri) -> Option<String> {
    let scheme = endpoint.scheme_str()?.to_ascii_lowercase();
    let host = endpoint
        .host()
        .filter(|h| !h.is_empty())?
        .to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    Some(match endpoint.port_u16() {
        Some(port) if Some(port) != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The push request for one subscription: the RFC 8291 encryption and its headers from
/// web-push-native, the VAPID `Authorization` from [`Vapid`].
fn build_request(
    vapid: &Vapid,
    target: &PushTarget,
    payload: &[u8],
) -> anyhow::Result<axum::http::Request<Vec<u8>>> {
    let endpoint: Uri = target.endpoint.parse()?;
    let audience = origin(&endpoint).context("the endpoint has no origin")?;
    let p256dh = URL_SAFE_NO_PAD.decode(target.p256dh.trim_end_matches('='))?;
    let auth = URL_SAFE_NO_PAD.decode(target.auth.trim_end_matches('='))?;
    anyhow::ensure!(auth.len() == 16, "auth secret must be 16 bytes");
    let public = web_push_native::p256::PublicKey::from_sec1_bytes(&p256dh)?;
    let mut request = WebPushBuilder::new(endpoint, public, auth_secret(&auth))
        .with_valid_duration(PUSH_TTL)
        .build(payload.to_vec())?;
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, vapid.authorization(&audience)?);
    Ok(request)
}

/// The 16-byte auth secret as the crypto wants it (length checked by the caller).
pub fn auth_secret(bytes: &[u8]) -> Auth {
    let mut a = Auth::default();
    a.copy_from_slice(&bytes[..16]);
    a
}

/// Validates a subscription from a browser: an http(s) endpoint (plain http only to loopback,
/// for tests) and keys of the right shape.
pub fn validate_subscription(endpoint: &str, p256dh: &str, auth: &str) -> Result<(), &'static str> {
    let uri: axum::http::Uri = endpoint.parse().map_err(|_| "endpoint is not a URL")?;
    let host = uri.host().unwrap_or("");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => {}
        Some("http") if host == "127.0.0.1" || host == "localhost" || host == "[::1]" => {}
        _ => return Err("endpoint must be an https URL"),
    }
    if endpoint.len() > 2048 {
        return Err("endpoint is too long");
    }
    let key = URL_SAFE_NO_PAD
        .decode(p256dh.trim_end_matches('='))
        .map_err(|_| "keys.p256dh is not base64url")?;
    web_push_native::p256::PublicKey::from_sec1_bytes(&key)
        .map_err(|_| "keys.p256dh is not a P-256 public key")?;
    let secret = URL_SAFE_NO_PAD
        .decode(auth.trim_end_matches('='))
        .map_err(|_| "keys.auth is not base64url")?;
    if secret.len() != 16 {
        return Err("keys.auth must be 16 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_short_and_url_safe() {
        let t = topic("01a1fcf3-14a4-722f-a1bc-071ec91c504f");
        assert_eq!(t.len(), 32);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(parse_retry_after("120", now), secs(120));
        assert_eq!(parse_retry_after(" 0 ", now), secs(0));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now),
            secs(120)
        );
        // The obsolete forms RFC 9110 tells recipients to accept.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
            secs(60)
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:50:37 1994", now), secs(60));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            secs(0),
            "past"
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::MAX)
        );
        for bad in ["", "-1", "1.5", "soon", "120s"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn retries_back_off_honour_retry_after_and_give_up() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(retry_delay(1, None), ms(500));
        assert_eq!(retry_delay(2, None), ms(1000));
        assert_eq!(retry_delay(3, None), ms(2000));
        assert_eq!(retry_delay(ATTEMPTS, None), None, "four requests at most");
        // Retry-After is a minimum: never sooner, and not sooner than the backoff either.
        assert_eq!(retry_delay(1, Some(Duration::from_secs(30))), ms(30_000));
        assert_eq!(retry_delay(3, Some(Duration::from_secs(1))), ms(2000));
        assert_eq!(retry_delay(1, Some(MAX_RETRY_AFTER)), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_delay(1, Some(MAX_RETRY_AFTER + Duration::from_secs(1))),
            None
        );
        assert_eq!(retry_delay(1, Some(Duration::MAX)), None);
    }

    #[test]
    fn subscriptions_are_validated() {
        let sk = web_push_native::p256::SecretKey::random(&mut rand_core_compat());
        let pk = URL_SAFE_NO_PAD.encode(sk.public_key().to_sec1_bytes());
        let auth = URL_SAFE_NO_PAD.encode([7u8; 16]);
        assert!(validate_subscription("https://push.example.com/x", &pk, &auth).is_ok());
        assert!(validate_subscription("http://127.0.0.1:9/x", &pk, &auth).is_ok());
        assert!(validate_subscription("http://push.example.com/x", &pk, &auth).is_err());
        assert!(validate_subscription("ftp://x/y", &pk, &auth).is_err());
        assert!(validate_subscription("https://push.example.com/x", "AAAA", &auth).is_err());
        assert!(validate_subscription("https://push.example.com/x", &pk, "AAAA").is_err());
    }

    fn rand_core_compat() -> impl web_push_native::p256::elliptic_curve::rand_core::CryptoRngCore {
        web_push_native::p256::elliptic_curve::rand_core::OsRng
    }

    #[test]
    fn payloads_round_trip_through_the_browser_side_decryption() {
        let sk = web_push_native::p256::SecretKey::random(&mut rand_core_compat());
        let target = PushTarget {
            user_id: "u".into(),
            endpoint: "https://push.example.com/abc".into(),
            p256dh: URL_SAFE_NO_PAD.encode(sk.public_key().to_sec1_bytes()),
            auth: URL_SAFE_NO_PAD.encode([9u8; 16]),
        };
        let vapid = Vapid::new(ES256KeyPair::generate(), "mailto:a@b.c".into());
        let req = build_request(&vapid, &target, b"{\"hello\":1}").unwrap();
        assert_eq!(req.headers()["content-encoding"], "aes128gcm");
        assert!(
            req.headers()["authorization"]
                .to_str()
                .unwrap()
                .starts_with("vapid t=")
        );
        let plain =
            web_push_native::decrypt(req.into_body(), &sk, &auth_secret(&[9u8; 16])).unwrap();
        assert_eq!(plain, b"{\"hello\":1}");
    }

    /// The claims of a request's VAPID token, verified against `key`.
    fn vapid_claims(
        req: &axum::http::Request<Vec<u8>>,
        vapid: &Vapid,
    ) -> web_push_native::jwt_simple::claims::JWTClaims<
        web_push_native::jwt_simple::claims::NoCustomClaims,
    > {
        let header = req.headers()["authorization"].to_str().unwrap();
        let (token, k) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, vapid.public_key);
        vapid.key.public_key().verify_token(token, None).unwrap()
    }

    #[test]
    fn the_vapid_audience_is_the_push_resource_origin_with_its_port() {
        let sk = web_push_native::p256::SecretKey::random(&mut rand_core_compat());
        let vapid = Vapid::new(ES256KeyPair::generate(), "mailto:a@b.c".into());
        for (endpoint, origin) in [
            ("http://127.0.0.1:32985/push/abc", "http://127.0.0.1:32985"),
            (
                "https://push.example.com:8443/x",
                "https://push.example.com:8443",
            ),
            // The scheme's default port is left out (RFC 6454 serialization).
            ("https://push.example.com/x", "https://push.example.com"),
            ("https://push.example.com:443/x", "https://push.example.com"),
            ("http://localhost:80/x", "http://localhost"),
            ("https://Push.Example.COM/x", "https://push.example.com"),
            ("http://[::1]:8080/x", "http://[::1]:8080"),
        ] {
            let target = PushTarget {
                user_id: "u".into(),
                endpoint: endpoint.into(),
                p256dh: URL_SAFE_NO_PAD.encode(sk.public_key().to_sec1_bytes()),
                auth: URL_SAFE_NO_PAD.encode([9u8; 16]),
            };
            let req = build_request(&vapid, &target, b"{}").unwrap();
            let claims = vapid_claims(&req, &vapid);
            let audiences = claims.audiences.unwrap().into_set();
            assert_eq!(audiences.len(), 1, "{endpoint}");
            assert!(audiences.contains(origin), "{endpoint}: {audiences:?}");
            assert_eq!(claims.subject.as_deref(), Some("mailto:a@b.c"));
            // RFC 8292 §2: `exp` no more than 24 hours after the request.
            let exp = claims.expires_at.unwrap().as_secs();
            let now = web_push_native::jwt_simple::prelude::Clock::now_since_epoch().as_secs();
            assert!(
                exp > now && exp <= now + 24 * 3600,
                "{endpoint}: exp {exp}, now {now}"
            );
        }
    }
}
