//! Running several nodes as one service: every node sees every durable event, in stream
//! order, and delivers what its own sockets should get.
//!
//! This module owns everything a node needs to know about the others; the hub keeps only the
//! resulting presence table. It must not become a second source of truth: PostgreSQL is that.
//! Stream positions are dense (1, 2, 3, … with no holes: PostgreSQL stamps them after commit,
//! see `store/postgres.rs`), so a node always knows which position comes next. A NATS
//! message is a *delivery* of "event N"; when N does not arrive (a lost or late message, a
//! NATS outage, a node that died between commit and publish), the node reads it from the
//! database. So a lost NATS message delays an event a little and loses nothing.
//!
//! Subjects (one subscription each per node, whatever its users):
//! - `chatnode.events`: every durable event, published once by the node that committed it.
//! - `chatnode.ephemeral`: typing frames.
//! - `chatnode.presence`: presence deltas and each node's heartbeat.
//! - `chatnode.sessions`: login sessions that ended (their sockets close everywhere).
//!
//! Ordering: one task per node (the *processor*) delivers every durable event, local and
//! remote, strictly by stream position: early ones wait in a reorder buffer until the
//! position before them was delivered; a position missing for [`GAP_WAIT`] is read from the
//! database, and so is anything past the last one received once a second (the tail of an
//! outage). Each connection therefore gets its events in stream order, and its highest
//! `stream_pos` is a true resume point: `sync` from it misses nothing and repeats nothing
//! (the gateway skips live frames a replay already covered).
//!
//! Presence: a node publishes a delta when a user's first/last connection on it opens/closes,
//! and a heartbeat with all its online users every [`HEARTBEAT_EVERY`]. A node not heard
//! from for [`NODE_TIMEOUT`] is taken for dead: its users go offline on every other node.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chatnode_protocol::ServerFrame;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::domain::{SessionId, UserId};
use crate::events::{Durable, EventKind};
use crate::hub::{Hub, Outbound};
use crate::store::Store;
use crate::time::now_ms;

/// How often a node announces the users connected to it.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
/// A node silent this long is considered dead and its users offline (four missed
/// heartbeats; the check runs every second, so users show offline within about 13 s).
pub const NODE_TIMEOUT: Duration = Duration::from_secs(12);
/// How long a missing stream position may be in flight before it is read from the database.
pub const GAP_WAIT: Duration = Duration::from_millis(100);
/// Events read per query when filling from the database.
const FILL_PAGE: i64 = 500;
/// Events held in the reorder buffer at most; past it, remote events are dropped and read
/// from the database when their turn comes.
const BUFFER_MAX: usize = 100_000;
/// Outgoing NATS messages waiting for the connection; beyond this they are dropped (the
/// receivers read those events from the database, see the module comment).
const OUTBOX: usize = 65_536;
/// Incoming NATS messages waiting for the processor.
const INBOX: usize = 65_536;

const EVENTS_SUBJECT: &str = "chatnode.events";
const EPHEMERAL_SUBJECT: &str = "chatnode.ephemeral";
const PRESENCE_SUBJECT: &str = "chatnode.presence";
/// Login sessions that ended (logout, password change, revocation, refresh-token reuse,
/// suspension): every node closes their sockets.
const SESSIONS_SUBJECT: &str = "chatnode.sessions";
/// Web Push requests decided on a node, for one node of the `push` role to send (a queue
/// group: each job reaches exactly one of them).
const PUSH_SUBJECT: &str = "chatnode.push";
const PUSH_QUEUE: &str = "chatnode-push";
/// A push subscription was added somewhere: nodes that skipped push decisions (while none
/// existed) start making them.
const PUSH_SUBSCRIBED_SUBJECT: &str = "chatnode.push_subscribed";

/// What travels on NATS.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Wire {
    Durable {
        node: String,
        /// The stream position.
        pos: i64,
        /// The event's `type` (see `EventKind::as_str`).
        kind: String,
        conversation_id: Option<String>,
        user_id: Option<String>,
        seq: Option<i64>,
        recipients: Vec<String>,
        json: String,
    },
    /// A frame that is not stored (typing).
    Ephemeral {
        node: String,
        recipients: Vec<String>,
        json: String,
    },
    Presence {
        node: String,
        user_id: String,
        online: bool,
        last_seen_ms: Option<i64>,
        recipients: Vec<String>,
    },
    Heartbeat {
        node: String,
        users: Vec<String>,
        /// The node's WebSocket connections (for `GET /admin/stats`).
        #[serde(default)]
        connections: u64,
    },
    /// These login sessions ended: close their sockets with `code`.
    SessionsEnded {
        node: String,
        sessions: Vec<String>,
        code: u16,
    },
}

enum Input {
    Local(Vec<Durable>),
    Remote(Bytes),
    Reconnected,
    /// Read from the database whatever is past the last position received (once a second).
    Tick,
    /// Has a missing position waited long enough to be read from the database?
    GapCheck,
}

/// The processor's state: the next stream position to deliver, and the early arrivals.
struct Order {
    next: i64,
    early: BTreeMap<i64, Durable>,
    /// Since when `next` has been missing while later positions wait.
    missing_since: Option<Instant>,
}

pub struct Cluster {
    node_id: String,
    client: async_nats::Client,
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    last_seen: Arc<crate::last_seen::LastSeen>,
    outbox: mpsc::Sender<(String, Bytes)>,
    /// The other nodes heard from: their connections at their last heartbeat, and when.
    peers: Mutex<HashMap<String, (u64, Instant)>>,
    connected: Arc<AtomicBool>,
    pub dropped_out: AtomicU64,
    pub duplicates: AtomicU64,
    pub gap_fills: AtomicU64,
}

impl Cluster {
    /// Connects to NATS (failing fast if it does not answer), subscribes to the four
    /// subjects and starts the node's tasks. Delivery starts after the stream's head now.
    pub async fn start(
        url: &str,
        hub: Arc<Hub>,
        store: Arc<dyn Store>,
        last_seen: Arc<crate::last_seen::LastSeen>,
        tasks: &crate::tasks::Tasks,
    ) -> anyhow::Result<Arc<Cluster>> {
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        let connected = Arc::new(AtomicBool::new(false));
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel::<Input>();
        let events = {
            let connected = connected.clone();
            let ctl_tx = ctl_tx.clone();
            let was_lost = Arc::new(AtomicBool::new(false));
            move |event: async_nats::Event| {
                let connected = connected.clone();
                let ctl_tx = ctl_tx.clone();
                let was_lost = was_lost.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            connected.store(true, Ordering::Release);
                            tracing::info!("NATS connected");
                            // After an outage, messages may have been lost: catch up from the
                            // database (the first connect has nothing to catch up).
                            if was_lost.swap(false, Ordering::AcqRel) {
                                let _ = ctl_tx.send(Input::Reconnected);
                            }
                        }
                        async_nats::Event::Disconnected => {
                            connected.store(false, Ordering::Release);
                            was_lost.store(true, Ordering::Release);
                            tracing::warn!("NATS disconnected; reconnecting");
                        }
                        other => tracing::info!(event = %other, "NATS event"),
                    }
                }
            }
        };
        let client = async_nats::ConnectOptions::new()
            .name(format!("chatnode-{node_id}"))
            .connection_timeout(Duration::from_secs(5))
            // Reconnect forever, quickly: while NATS is away, nothing crosses nodes.
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((100 * attempt as u64).clamp(100, 2000))
            })
            .event_callback(events)
            .connect(url)
            .await
            .context("cannot connect to NATS")?;
        connected.store(true, Ordering::Release);
        let (outbox, out_rx) = mpsc::channel(OUTBOX);
        let (inbox, in_rx) = mpsc::channel(INBOX);
        let cluster = Arc::new(Cluster {
            node_id,
            client,
            hub: hub.clone(),
            store: store.clone(),
            last_seen,
            outbox,
            peers: Mutex::new(HashMap::new()),
            connected,
            dropped_out: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            gap_fills: AtomicU64::new(0),
        });
        for subject in [
            EVENTS_SUBJECT,
            EPHEMERAL_SUBJECT,
            PRESENCE_SUBJECT,
            SESSIONS_SUBJECT,
        ] {
            let sub = cluster
                .client
                .subscribe(subject)
                .await
                .context("cannot subscribe to NATS")?;
            tasks.background(forward(sub, inbox.clone()));
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), cluster.client.flush()).await;
        // What was committed before now is `sync`'s; live delivery starts after it.
        let head = store
            .stream_head()
            .await
            .context("cannot read the stream's head")?;
        tasks.background(publisher(cluster.client.clone(), out_rx));
        let (local_tx, local_rx) = mpsc::unbounded_channel();
        hub.set_forward(local_tx);
        tasks.background(cluster.clone().processor(head + 1, local_rx, in_rx, ctl_rx));
        {
            let ctl = ctl_tx.clone();
            tasks.background(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    if ctl.send(Input::Tick).is_err() {
                        return;
                    }
                }
            });
        }
        tasks.background(cluster.clone().heartbeat());
        tracing::info!(node = %cluster.node_id, "joined the cluster");
        Ok(cluster)
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Whether the NATS connection is up (readiness).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        // Single inserts and reads: a poisoned lock is usable.
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The other live nodes (heard from within [`NODE_TIMEOUT`]) and their connections at
    /// their last heartbeat (sent every [`HEARTBEAT_EVERY`]), by node ID.
    pub fn peer_connections(&self) -> Vec<(String, u64)> {
        let mut peers = self.peers();
        peers.retain(|_, (_, at)| at.elapsed() < NODE_TIMEOUT);
        let mut out: Vec<(String, u64)> = peers.iter().map(|(n, (c, _))| (n.clone(), *c)).collect();
        out.sort();
        out
    }

    fn send(&self, subject: &str, wire: &Wire) {
        let payload = match serde_json::to_vec(wire) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a cluster message");
                return;
            }
        };
        if self.outbox.try_send((subject.to_owned(), payload)).is_err() {
            self.dropped_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends a typing frame to the other nodes (the caller delivered it locally).
    pub fn publish_ephemeral(&self, recipients: Vec<String>, json: String) {
        let wire = Wire::Ephemeral {
            node: self.node_id.clone(),
            recipients,
            json,
        };
        self.send(EPHEMERAL_SUBJECT, &wire);
    }

    /// Hands a Web Push job to one node of the `push` role. Best effort, like a push
    /// itself: while NATS is away (or no node has the role) it is lost, and counted.
    pub fn publish_push(&self, job: Bytes) {
        if self
            .outbox
            .try_send((PUSH_SUBJECT.to_owned(), job))
            .is_err()
        {
            self.dropped_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tells every node that a push subscription exists now.
    pub fn publish_push_subscribed(&self) {
        if self
            .outbox
            .try_send((PUSH_SUBSCRIBED_SUBJECT.to_owned(), Bytes::new()))
            .is_err()
        {
            self.dropped_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Announcements of new push subscriptions (see [`Cluster::publish_push_subscribed`]).
    pub async fn push_subscribed(&self) -> anyhow::Result<async_nats::Subscriber> {
        self.client
            .subscribe(PUSH_SUBSCRIBED_SUBJECT)
            .await
            .context("cannot subscribe to push announcements")
    }

    /// The Web Push jobs this node sends (a `push` node), shared with the other push nodes.
    pub async fn push_jobs(&self) -> anyhow::Result<async_nats::Subscriber> {
        self.client
            .queue_subscribe(PUSH_SUBJECT, PUSH_QUEUE.to_owned())
            .await
            .context("cannot subscribe to the push queue")
    }

    /// Tells the other nodes that `user_id`'s first connection here opened or last closed.
    pub fn publish_presence(
        &self,
        user_id: &str,
        online: bool,
        last_seen_ms: Option<i64>,
        recipients: Vec<String>,
    ) {
        let wire = Wire::Presence {
            node: self.node_id.clone(),
            user_id: user_id.to_owned(),
            online,
            last_seen_ms,
            recipients,
        };
        self.send(PRESENCE_SUBJECT, &wire);
    }

    /// Tells the other nodes that these login sessions ended (the caller closed their
    /// sockets on this node).
    pub fn publish_sessions_ended(&self, sessions: Vec<String>, code: u16) {
        if sessions.is_empty() {
            return;
        }
        let wire = Wire::SessionsEnded {
            node: self.node_id.clone(),
            sessions,
            code,
        };
        self.send(SESSIONS_SUBJECT, &wire);
    }

    /// After a NATS outage, a `SessionsEnded` may have been lost: close the local sockets
    /// of sessions the database no longer holds active.
    async fn recheck_sessions(&self) {
        for (session, user) in self.hub.local_sessions() {
            // The hub's own connections: their IDs came from verified tokens.
            let active = self
                .store
                .session_active(
                    &SessionId::trusted(session.as_str()),
                    &UserId::trusted(user),
                )
                .await;
            match active {
                Ok(false) => self
                    .hub
                    .close_session(&session, chatnode_protocol::close_code::UNAUTHENTICATED),
                Ok(true) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot re-check a session after a NATS outage");
                    return;
                }
            }
        }
    }

    async fn heartbeat(self: Arc<Self>) {
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    let wire = Wire::Heartbeat {
                        node: self.node_id.clone(),
                        users: self.hub.local_users(),
                        connections: self.hub.connection_count() as u64,
                    };
                    self.send(PRESENCE_SUBJECT, &wire);
                }
                _ = check.tick() => {
                    let gone = self.hub.expire_remote(NODE_TIMEOUT);
                    if !gone.is_empty() {
                        self.went_offline(gone).await;
                    }
                }
            }
        }
    }

    /// Users who were online only on a node we lost: tell their local friends they left,
    /// and record when (the dead node could not).
    async fn went_offline(&self, users: Vec<String>) {
        let now = now_ms();
        for u in users {
            if self.hub.is_online(&u) {
                continue;
            }
            // Reported by another node of the cluster, which got it from a verified token.
            let user = UserId::trusted(u.as_str());
            self.last_seen.note(&user, now);
            match self.store.friend_ids(&user).await {
                Ok(friends) => self.deliver_presence(&u, false, Some(now), &friends),
                Err(e) => tracing::warn!(error = %e, "presence: cannot load friends"),
            }
        }
    }

    fn deliver_presence<S: AsRef<str>>(
        &self,
        user_id: &str,
        online: bool,
        last_seen: Option<i64>,
        to: &[S],
    ) {
        let frame = ServerFrame::Presence {
            user_id: user_id.to_owned(),
            online,
            last_seen_at: last_seen.map(crate::time::rfc3339),
        };
        match serde_json::to_string(&frame) {
            Ok(json) => self.hub.deliver(to, &Outbound::ephemeral(json)),
            Err(e) => tracing::error!(error = %e, "cannot encode presence"),
        }
    }

    /// The one task that delivers durable events on this node (see the module comment).
    async fn processor(
        self: Arc<Self>,
        next: i64,
        mut local: mpsc::UnboundedReceiver<Vec<Durable>>,
        mut remote: mpsc::Receiver<Bytes>,
        mut ctl: mpsc::UnboundedReceiver<Input>,
    ) {
        let mut order = Order {
            next,
            early: BTreeMap::new(),
            missing_since: None,
        };
        let mut gap_check = tokio::time::interval(GAP_WAIT / 2);
        loop {
            let input = tokio::select! {
                biased;
                Some(c) = ctl.recv() => c,
                // Local commits first: they are this node's own users waiting for an echo.
                Some(ev) = local.recv() => Input::Local(ev),
                Some(b) = remote.recv() => Input::Remote(b),
                _ = gap_check.tick() => Input::GapCheck,
                else => return,
            };
            match input {
                Input::Local(events) => {
                    for d in events {
                        let wire = Wire::Durable {
                            node: self.node_id.clone(),
                            pos: d.pos,
                            kind: d.kind.as_str().to_owned(),
                            conversation_id: d.conversation_id.clone(),
                            user_id: d.user_id.clone(),
                            seq: d.seq,
                            recipients: d.recipients.to_vec(),
                            json: String::from_utf8_lossy(&d.json).into_owned(),
                        };
                        self.send(EVENTS_SUBJECT, &wire);
                        self.arrived(&mut order, d);
                    }
                }
                Input::Remote(bytes) => self.remote(&mut order, &bytes).await,
                Input::Reconnected => {
                    tracing::info!("NATS back: catching up from the database");
                    self.fill(&mut order, None).await;
                    self.recheck_sessions().await;
                    // Announce ourselves at once, so other nodes do not time us out.
                    let wire = Wire::Heartbeat {
                        node: self.node_id.clone(),
                        users: self.hub.local_users(),
                        connections: self.hub.connection_count() as u64,
                    };
                    self.send(PRESENCE_SUBJECT, &wire);
                }
                Input::Tick => self.fill(&mut order, None).await,
                Input::GapCheck => {
                    if order.missing_since.is_some_and(|t| t.elapsed() >= GAP_WAIT) {
                        let until = order.early.keys().next().copied();
                        self.fill(&mut order, until).await;
                    }
                }
            }
            self.deliver_ready(&mut order);
        }
    }

    /// Takes in an event: delivered in turn, kept if early, dropped if already delivered.
    fn arrived(&self, order: &mut Order, d: Durable) {
        if d.pos < order.next {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if order.early.len() >= BUFFER_MAX && d.pos > order.next {
            // Read from the database when its turn comes.
            return;
        }
        order.early.insert(d.pos, d);
    }

    /// Delivers every event whose turn has come; notes since when the next one is missing.
    fn deliver_ready(&self, order: &mut Order) {
        while let Some(d) = order.early.remove(&order.next) {
            order.next += 1;
            self.hub.deliver_durable(vec![d]);
        }
        if order.early.is_empty() {
            order.missing_since = None;
        } else if order.missing_since.is_none() {
            order.missing_since = Some(Instant::now());
        }
    }

    /// Reads from the database the events from `order.next` on, up to `until` (exclusive;
    /// everything there is when `None`), and delivers them in order.
    async fn fill(&self, order: &mut Order, until: Option<i64>) {
        loop {
            if until.is_some_and(|u| order.next >= u) {
                return;
            }
            let page = match self.store.events_after(order.next - 1, FILL_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read events to fill a gap");
                    return;
                }
            };
            let n = page.len() as i64;
            if n > 0 {
                self.gap_fills.fetch_add(1, Ordering::Relaxed);
            }
            for d in page {
                if d.pos == order.next {
                    order.early.remove(&d.pos);
                    order.next += 1;
                    self.hub.deliver_durable(vec![d]);
                } else if d.pos > order.next {
                    // Positions are dense: one missing here is not stamped (visible) yet.
                    order.early.insert(d.pos, d);
                    break;
                }
            }
            self.deliver_ready(order);
            if n < FILL_PAGE {
                return;
            }
        }
    }

    async fn remote(&self, order: &mut Order, bytes: &[u8]) {
        let wire = match serde_json::from_slice::<Wire>(bytes) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable cluster message");
                return;
            }
        };
        match wire {
            Wire::Durable { node, .. }
            | Wire::Ephemeral { node, .. }
            | Wire::Presence { node, .. }
            | Wire::Heartbeat { node, .. }
            | Wire::SessionsEnded { node, .. }
                if node == self.node_id => {}
            Wire::SessionsEnded { sessions, code, .. } => {
                for s in &sessions {
                    self.hub.close_session(s, code);
                }
            }
            Wire::Durable {
                pos,
                kind,
                conversation_id,
                user_id,
                seq,
                recipients,
                json,
                ..
            } => {
                let Some(kind) = EventKind::parse(&kind) else {
                    tracing::warn!(%kind, "ignoring a cluster event of an unknown kind");
                    return;
                };
                self.arrived(
                    order,
                    Durable {
                        pos,
                        kind,
                        conversation_id,
                        user_id,
                        seq,
                        recipients: recipients.into(),
                        json: json.into(),
                    },
                );
            }
            Wire::Ephemeral {
                recipients, json, ..
            } => self.hub.deliver(&recipients, &Outbound::ephemeral(json)),
            Wire::Presence {
                node,
                user_id,
                online,
                last_seen_ms,
                recipients,
            } => {
                let before = self.hub.is_online(&user_id);
                self.hub.set_remote_user(&node, &user_id, online);
                if before != self.hub.is_online(&user_id) {
                    self.deliver_presence(&user_id, online, last_seen_ms, &recipients);
                }
            }
            Wire::Heartbeat {
                node,
                users,
                connections,
            } => {
                self.peers()
                    .insert(node.clone(), (connections, std::time::Instant::now()));
                // Users this node had not told us about (a lost delta) come online; users it
                // no longer lists went offline. Usually both lists are empty.
                let before: HashMap<String, bool> = users
                    .iter()
                    .map(|u| (u.clone(), self.hub.is_online(u)))
                    .collect();
                let (added, dropped) = self
                    .hub
                    .set_remote_users(&node, users.into_iter().collect());
                for u in added {
                    if before.get(&u) == Some(&false)
                        && let Ok(friends) =
                            self.store.friend_ids(&UserId::trusted(u.as_str())).await
                    {
                        self.deliver_presence(&u, true, None, &friends);
                    }
                }
                if !dropped.is_empty() {
                    self.went_offline(dropped).await;
                }
            }
        }
    }
}

/// Forwards one subscription's messages to the processor.
async fn forward(mut sub: async_nats::Subscriber, inbox: mpsc::Sender<Bytes>) {
    while let Some(msg) = sub.next().await {
        // Waiting here pushes back on NATS; if we fall far behind, NATS drops messages for
        // this slow consumer and the processor reads those events from the database.
        if inbox.send(msg.payload).await.is_err() {
            return;
        }
    }
}

/// Publishes in order; the only place that awaits the NATS connection.
async fn publisher(client: async_nats::Client, mut rx: mpsc::Receiver<(String, Bytes)>) {
    while let Some((subject, payload)) = rx.recv().await {
        if let Err(e) = client.publish(subject, payload).await {
            tracing::warn!(error = %e, "NATS publish failed");
        }
    }
}
