//! Running several nodes as one service: fan-out over NATS, ordered and gap-free.
//!
//! This module owns everything a node needs to know about the others; the hub keeps only the
//! resulting presence table. It must not become a second source of truth: PostgreSQL is that.
//! A NATS message is a *wake-up* — "event N happened" — and a node that sees a hole in a
//! conversation's `seq`, or that reconnects to NATS, reads the missing messages from the
//! database. So a lost NATS message delays nothing it cannot recover, and never loses a
//! chat message.
//!
//! Subjects:
//! - `chatnode.conv.<conversation_id>`: durable conversation events and typing. A node
//!   subscribes while at least one of its connected users is a member (ref-counted).
//! - `chatnode.user.<user_id>`: durable events addressed to one user; subscribed while the
//!   user has a connection on this node.
//! - `chatnode.presence`: presence deltas and each node's heartbeat (all nodes).
//!
//! Every event is published once, by the node that committed it, with its recipients; that
//! node delivers to its own sockets directly and ignores its own messages coming back.
//!
//! Ordering: one task per node (the *processor*) delivers every durable event, local and
//! remote, so the per-conversation "last delivered `seq`" has a single writer. A `message`
//! with `seq <= last` is a duplicate and dropped; `seq == last + 1` is delivered; a larger
//! `seq` first pulls the missing ones from the database. Events other than `message` are
//! delivered as they come (clients resume those with `sync`).
//!
//! Presence: a node publishes a delta when a user's first/last connection on it opens/closes,
//! and a heartbeat with all its online users every [`HEARTBEAT_EVERY`]. A node not heard
//! from for [`NODE_TIMEOUT`] is taken for dead: its users go offline on every other node.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use chatnode_protocol::ServerFrame;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::domain::{ConversationId, SessionId, UserId};
use crate::events::{Durable, EventKind};
use crate::hub::{Hub, Outbound};
use crate::store::Store;
use crate::time::now_ms;

/// How often a node announces the users connected to it.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
/// A node silent this long is considered dead and its users offline (four missed
/// heartbeats; the check runs every second, so users show offline within about 13 s).
pub const NODE_TIMEOUT: Duration = Duration::from_secs(12);
/// Messages fetched per query when filling a gap.
const FILL_PAGE: i64 = 500;
/// Outgoing NATS messages waiting for the connection; beyond this they are dropped (the
/// receivers recover messages from the database, see the module comment).
const OUTBOX: usize = 65_536;
/// Incoming NATS messages waiting for the processor.
const INBOX: usize = 65_536;

const PRESENCE_SUBJECT: &str = "chatnode.presence";
/// Login sessions that ended (logout, password change, revocation, refresh-token reuse):
/// every node closes their sockets.
const SESSIONS_SUBJECT: &str = "chatnode.sessions";

fn conv_subject(id: &str) -> String {
    format!("chatnode.conv.{id}")
}

fn user_subject(id: &str) -> String {
    format!("chatnode.user.{id}")
}

/// What travels on NATS.
#[derive(Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Wire {
    Durable {
        node: String,
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

/// Subscriptions and per-conversation delivery state, behind one std mutex held briefly.
#[derive(Default)]
struct Subs {
    /// Conversations some local user belongs to.
    convs: HashMap<String, ConvTrack>,
    /// Local users' own subjects.
    users: HashMap<String, JoinHandle<()>>,
    /// Which conversations each local user holds a reference on.
    user_convs: HashMap<String, HashSet<String>>,
}

struct ConvTrack {
    refs: usize,
    /// The highest message `seq` delivered on this node (only the processor raises it).
    last: i64,
    task: JoinHandle<()>,
}

enum Input {
    Local(Vec<Durable>),
    Remote(Bytes),
    Reconnected,
    /// Deliver what the database holds after the last delivered `seq` of these
    /// conversations (they may have moved while this node was subscribing).
    Fill(Vec<String>),
}

pub struct Cluster {
    node_id: String,
    client: async_nats::Client,
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    outbox: mpsc::Sender<(String, Bytes)>,
    inbox: mpsc::Sender<Bytes>,
    /// The processor's control input (catch-ups).
    control: mpsc::UnboundedSender<Input>,
    subs: Mutex<Subs>,
    /// The other nodes heard from: their connections at their last heartbeat, and when.
    peers: Mutex<HashMap<String, (u64, std::time::Instant)>>,
    connected: Arc<AtomicBool>,
    /// The server's tasks (each subscription forwards on one).
    tasks: crate::tasks::Tasks,
    pub dropped_out: AtomicU64,
    pub duplicates: AtomicU64,
    pub gap_fills: AtomicU64,
}

impl Cluster {
    /// Connects to NATS (failing fast if it does not answer) and starts the node's tasks.
    pub async fn start(
        url: &str,
        hub: Arc<Hub>,
        store: Arc<dyn Store>,
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
            store,
            outbox,
            inbox,
            control: ctl_tx,
            subs: Mutex::new(Subs::default()),
            peers: Mutex::new(HashMap::new()),
            connected,
            tasks: tasks.clone(),
            dropped_out: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            gap_fills: AtomicU64::new(0),
        });
        let presence = cluster
            .client
            .subscribe(PRESENCE_SUBJECT)
            .await
            .context("cannot subscribe to NATS")?;
        tasks.background(forward(presence, cluster.inbox.clone()));
        let sessions = cluster
            .client
            .subscribe(SESSIONS_SUBJECT)
            .await
            .context("cannot subscribe to NATS")?;
        tasks.background(forward(sessions, cluster.inbox.clone()));
        tasks.background(publisher(cluster.client.clone(), out_rx));
        let (local_tx, local_rx) = mpsc::unbounded_channel();
        hub.set_forward(local_tx);
        tasks.background(cluster.clone().processor(local_rx, in_rx, ctl_rx));
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

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, std::time::Instant)>> {
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

    fn subs(&self) -> std::sync::MutexGuard<'_, Subs> {
        // Every change to `Subs` is a single insert/remove/update: a poisoned lock is usable.
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, subject: String, wire: &Wire) {
        let payload = match serde_json::to_vec(wire) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a cluster message");
                return;
            }
        };
        // Never wait here (callers hold the write gate or serve a socket): if NATS is away
        // long enough to fill the outbox, drop; receivers catch up from the database.
        if self.outbox.try_send((subject, payload)).is_err() {
            self.dropped_out.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Subscribes to `subject`, forwarding into the inbox; resolves once NATS has the
    /// subscription, so what is published after it reaches us.
    async fn subscribe(&self, subject: String) -> Option<JoinHandle<()>> {
        let sub = match self.client.subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, %subject, "cannot subscribe");
                return None;
            }
        };
        Some(self.tasks.background(forward(sub, self.inbox.clone())))
    }

    /// A user's first connection on this node opened: subscribe to their subject and to
    /// their conversations. Returns once the subscriptions are in place (bounded wait).
    pub async fn user_connected(&self, user_id: &str) {
        // From the hub: a connection that authenticated with a verified token.
        let user = UserId::trusted(user_id);
        let heads = match self.store.conversation_heads(&user).await {
            Ok(h) => heads_by_name(h),
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot load the user's conversations");
                Vec::new()
            }
        };
        let user_task = self.subscribe(user_subject(user_id)).await;
        let mut new_convs = Vec::new();
        {
            let mut subs = self.subs();
            if let Some(t) = user_task
                && let Some(old) = subs.users.insert(user_id.to_owned(), t)
            {
                old.abort();
            }
            for (conv, last) in heads {
                if !subs
                    .user_convs
                    .entry(user_id.to_owned())
                    .or_default()
                    .insert(conv.clone())
                {
                    continue;
                }
                match subs.convs.get_mut(&conv) {
                    Some(t) => t.refs += 1,
                    None => new_convs.push((conv, last)),
                }
            }
        }
        let started: Vec<(String, i64)> = new_convs.clone();
        for (conv, last) in new_convs {
            self.track_conv(conv, last).await;
        }
        // Make sure the server has seen our SUBs before the client is told it is ready.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.flush()).await;
        // A message committed between reading the heads and the subscription taking effect
        // was published to nobody here: read the heads again and let the processor fetch
        // whatever moved (one query; usually nothing did).
        if started.is_empty() {
            return;
        }
        if let Ok(now) = self.store.conversation_heads(&user).await {
            let before: HashMap<String, i64> = started.into_iter().collect();
            let moved: Vec<String> = heads_by_name(now)
                .into_iter()
                .filter(|(c, head)| before.get(c).is_some_and(|last| head > last))
                .map(|(c, _)| c)
                .collect();
            if !moved.is_empty() {
                let _ = self.control.send(Input::Fill(moved));
            }
        }
    }

    /// Starts tracking a conversation with one reference, `last` being its `last_seq` read
    /// *before* subscribing: anything committed in between shows up as a gap and is filled.
    async fn track_conv(&self, conv: String, last: i64) {
        let Some(task) = self.subscribe(conv_subject(&conv)).await else {
            return;
        };
        let mut subs = self.subs();
        match subs.convs.get_mut(&conv) {
            // Someone else started tracking it while we subscribed.
            Some(t) => {
                t.refs += 1;
                task.abort();
            }
            None => {
                subs.convs.insert(
                    conv,
                    ConvTrack {
                        refs: 1,
                        last,
                        task,
                    },
                );
            }
        }
    }

    /// A local user joined a conversation (we learnt it from a user-addressed event). `last`
    /// is the highest `seq` that needs no delivery here: the last one before they joined,
    /// or a later one this node already delivered. If the conversation was not followed
    /// here, the messages committed before the subscription (the one that adds them, at
    /// least) were published to nobody on this node: they are read from the database now.
    /// Runs on the processor only.
    async fn add_user_conv(&self, user_id: &str, conv: &str, last: i64) {
        {
            let mut subs = self.subs();
            if !subs.users.contains_key(user_id)
                || !subs
                    .user_convs
                    .entry(user_id.to_owned())
                    .or_default()
                    .insert(conv.to_owned())
            {
                return;
            }
            if let Some(t) = subs.convs.get_mut(conv) {
                t.refs += 1;
                return;
            }
        }
        self.track_conv(conv.to_owned(), last).await;
        self.fill(conv, None).await;
    }

    /// Drops a user's reference on a conversation; the last one unsubscribes.
    fn release_user_conv(subs: &mut Subs, user_id: &str, conv: &str) {
        let held = subs
            .user_convs
            .get_mut(user_id)
            .is_some_and(|s| s.remove(conv));
        if !held {
            return;
        }
        if let Some(t) = subs.convs.get_mut(conv) {
            t.refs -= 1;
            if t.refs == 0
                && let Some(t) = subs.convs.remove(conv)
            {
                // Dropping the subscriber unsubscribes.
                t.task.abort();
            }
        }
    }

    /// A user's last connection on this node closed: drop their subscriptions.
    pub fn user_disconnected(&self, user_id: &str) {
        let mut subs = self.subs();
        if let Some(t) = subs.users.remove(user_id) {
            t.abort();
        }
        let convs: Vec<String> = subs
            .user_convs
            .get(user_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for c in convs {
            Self::release_user_conv(&mut subs, user_id, &c);
        }
        subs.user_convs.remove(user_id);
    }

    /// Sends a typing frame to the other nodes (the caller delivered it locally).
    pub fn publish_ephemeral(&self, conversation_id: &str, recipients: Vec<String>, json: String) {
        let wire = Wire::Ephemeral {
            node: self.node_id.clone(),
            recipients,
            json,
        };
        self.send(conv_subject(conversation_id), &wire);
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
        self.send(PRESENCE_SUBJECT.to_owned(), &wire);
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
        self.send(SESSIONS_SUBJECT.to_owned(), &wire);
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
                    self.send(PRESENCE_SUBJECT.to_owned(), &wire);
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
            if let Err(e) = self.store.set_last_seen(&user, now).await {
                tracing::warn!(error = %e, "could not record last_seen_at");
            }
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
        mut local: mpsc::UnboundedReceiver<Vec<Durable>>,
        mut remote: mpsc::Receiver<Bytes>,
        mut ctl: mpsc::UnboundedReceiver<Input>,
    ) {
        loop {
            let input = tokio::select! {
                // Local commits first: they are this node's own users waiting for an echo.
                biased;
                Some(c) = ctl.recv() => c,
                Some(ev) = local.recv() => Input::Local(ev),
                Some(b) = remote.recv() => Input::Remote(b),
                else => return,
            };
            match input {
                Input::Local(events) => {
                    // The highest `seq` of each conversation delivered from this batch, for
                    // conversations this node followed for nobody (see `durable`).
                    let mut delivered: HashMap<String, i64> = HashMap::new();
                    for d in events {
                        let subject = match (&d.conversation_id, &d.user_id) {
                            (Some(c), _) => conv_subject(c),
                            (None, Some(u)) => user_subject(u),
                            (None, None) => {
                                self.hub.deliver_durable(vec![d]);
                                continue;
                            }
                        };
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
                        self.send(subject, &wire);
                        self.durable(d, &mut delivered).await;
                    }
                }
                Input::Remote(bytes) => self.remote(&bytes).await,
                Input::Reconnected => self.catch_up().await,
                Input::Fill(convs) => {
                    for c in convs {
                        self.fill(&c, None).await;
                    }
                }
            }
        }
    }

    async fn remote(&self, bytes: &[u8]) {
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
                let d = Durable {
                    pos,
                    kind,
                    conversation_id,
                    user_id,
                    seq,
                    recipients: recipients.into(),
                    json: json.into(),
                };
                self.durable(d, &mut HashMap::new()).await
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

    /// Delivers one durable event, putting `message` events in `seq` order per conversation.
    /// `delivered` collects, for a batch committed on this node, the messages of
    /// conversations nobody here followed yet, which were delivered as they came: a member
    /// who joins later in the same batch starts after them.
    async fn durable(&self, d: Durable, delivered: &mut HashMap<String, i64>) {
        let (Some(seq), Some(conv)) = (d.seq, d.conversation_id.clone()) else {
            self.membership_hook(&d, delivered).await;
            self.hub.deliver_durable(vec![d]);
            return;
        };
        let last = self.subs().convs.get(&conv).map(|t| t.last);
        match last {
            // No local member follows it: nothing to order against.
            None => {
                let top = delivered.entry(conv).or_insert(seq);
                *top = (*top).max(seq);
                self.hub.deliver_durable(vec![d]);
            }
            Some(last) if seq <= last => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Some(last) => {
                if seq > last + 1 {
                    self.gap_fills.fetch_add(1, Ordering::Relaxed);
                    if !self.fill(&conv, Some(seq)).await {
                        // Not delivered and `last` not raised: the next message, or the
                        // catch-up after a reconnect, fetches this one too. Order first.
                        return;
                    }
                }
                self.hub.deliver_durable(vec![d]);
                self.raise_last(&conv, seq);
            }
        }
    }

    fn raise_last(&self, conv: &str, seq: i64) {
        if let Some(t) = self.subs().convs.get_mut(conv) {
            t.last = t.last.max(seq);
        }
    }

    /// Delivers, from the database, the messages of `conv` after the last delivered one and
    /// before `before`. Returns false if the database could not be read.
    async fn fill(&self, conv: &str, before: Option<i64>) -> bool {
        loop {
            let Some(last) = self.subs().convs.get(conv).map(|t| t.last) else {
                return true;
            };
            // A conversation this node subscribed to from the database's own heads.
            let page = match self
                .store
                .message_events(&ConversationId::trusted(conv), last, before, FILL_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, conversation = conv, "cannot fill a gap");
                    return false;
                }
            };
            let n = page.len() as i64;
            let top = page.last().and_then(|d| d.seq);
            self.hub.deliver_durable(page);
            match top {
                Some(top) => self.raise_last(conv, top),
                None => return true,
            }
            if n < FILL_PAGE {
                return true;
            }
        }
    }

    /// After a NATS outage: every tracked conversation catches up from the database.
    async fn catch_up(&self) {
        let convs: Vec<String> = self.subs().convs.keys().cloned().collect();
        tracing::info!(
            conversations = convs.len(),
            "NATS back: catching up from the database"
        );
        for c in convs {
            self.fill(&c, None).await;
        }
        self.recheck_sessions().await;
        // Announce ourselves at once, so other nodes do not time us out meanwhile.
        let wire = Wire::Heartbeat {
            node: self.node_id.clone(),
            users: self.hub.local_users(),
            connections: self.hub.connection_count() as u64,
        };
        self.send(PRESENCE_SUBJECT.to_owned(), &wire);
    }

    /// A user-addressed `conversation.updated` or `member.removed` for a local user tells us
    /// they joined or left a conversation: follow it.
    async fn membership_hook(&self, d: &Durable, delivered: &HashMap<String, i64>) {
        let Some(user) = d.user_id.as_deref() else {
            return;
        };
        if !self.hub.is_local(user) {
            return;
        }
        if !matches!(
            d.kind,
            EventKind::ConversationUpdated | EventKind::MemberRemoved
        ) {
            return;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&d.json) else {
            return;
        };
        match v["type"].as_str() {
            Some("conversation.updated") => {
                if let Some(conv) = v["conversation"]["id"].as_str() {
                    // A new member's read marker is the conversation's last `seq` before
                    // they joined: everything after it is theirs. Not the view's last
                    // message, which is already the one announcing them.
                    let before_join = v["conversation"]["last_read_seq"].as_i64().unwrap_or(0);
                    let last = delivered
                        .get(conv)
                        .map_or(before_join, |d| before_join.max(*d));
                    self.add_user_conv(user, conv, last).await;
                }
            }
            Some("member.removed") if v["user_id"].as_str() == Some(user) => {
                if let Some(conv) = v["conversation_id"].as_str() {
                    Self::release_user_conv(&mut self.subs(), user, conv);
                }
            }
            _ => {}
        }
    }
}

/// Forwards one subscription's messages to the processor; ends (and so unsubscribes, since
/// the subscriber is dropped) when aborted.
async fn forward(mut sub: async_nats::Subscriber, inbox: mpsc::Sender<Bytes>) {
    while let Some(msg) = sub.next().await {
        // Waiting here pushes back on NATS; if we fall far behind, NATS drops messages for
        // this slow consumer and the gaps are filled from the database.
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

/// Conversation heads keyed as this module keeps conversations (by their ID's text).
fn heads_by_name(heads: Vec<(ConversationId, i64)>) -> Vec<(String, i64)> {
    heads
        .into_iter()
        .map(|(conv, last)| (conv.to_string(), last))
        .collect()
}
