//! The hub owns every live WebSocket connection of this node, and so presence.
//!
//! Each connection is a [`Conn`], shared by the hub (which queues frames for it) and the
//! gateway task that serves the socket (which writes them out). Fan-out goes through
//! [`Hub::deliver`]: it never awaits. Each connection's queue is bounded; a frame that does
//! not fit means the client is not keeping up, so instead of letting the queue (and the
//! server's memory) grow, that one connection is told to close with 4008 and the client
//! resumes later with `sync`. Everyone else is unaffected.
//!
//! An idle connection should cost almost nothing, so a `Conn` holds no buffer and no timer:
//! its queue is allocated by the first frame queued (and freed when it drains), and one
//! sweeper for the whole node (see [`Hub::sweep`]) decides when a socket is due a ping or has
//! been silent too long, instead of a timer per socket.
//!
//! Frames are serialized once by the caller and shared between recipients (`Bytes` is a
//! reference-counted buffer). Locks are std mutexes held only to look up handles or move
//! frames, never across an `.await`.
//!
//! In a cluster (see [`crate::cluster`]) the hub also keeps which users other nodes report
//! online, so `is_online` is cluster-wide, and [`Hub::publish`] hands committed events to the
//! cluster task (which publishes them on NATS and orders message delivery) instead of
//! delivering them itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use smallvec::SmallVec;
use tokio::sync::mpsc;

use chatnode_protocol::{ServerFrame, close_code};

use crate::events::{Durable, EventKind};
use crate::store::{EventSink, Presence};

/// One serialized frame on its way to a socket; `pos` is set for durable events.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub pos: Option<i64>,
    pub text: Bytes,
}

impl Outbound {
    pub fn ephemeral(text: impl Into<Bytes>) -> Outbound {
        Outbound {
            pos: None,
            text: text.into(),
        }
    }
}

/// One live WebSocket connection, as the hub and the gateway task serving it share it.
pub struct Conn {
    pub id: u64,
    pub user_id: Arc<str>,
    pub session_id: Arc<str>,
    /// Frames waiting to be written. Empty (and unallocated) while nothing is queued.
    queue: Mutex<VecDeque<Outbound>>,
    /// How many frames may wait before the connection counts as too slow.
    limit: u32,
    /// Wakes the gateway task: a frame was queued, a close or a ping was asked for. A flag
    /// and the task's waker (not a `Notify`: the task's wait is then a bare poll, a few bytes
    /// of state instead of a waiter node).
    waker: AtomicWaker,
    woken: AtomicBool,
    /// The close code asked for (0: none). The first request wins.
    close: AtomicU16,
    /// The sweeper wants a ping sent.
    ping: AtomicBool,
    /// When the client was last heard from, in ms since the hub started.
    heard_ms: AtomicU64,
    /// When the sweeper last asked for a ping.
    pinged_ms: AtomicU64,
}

impl Conn {
    /// Queues a frame. A full queue asks the connection to close with 4008 instead; the
    /// answer says whether that happened just now (for counting slow consumers once).
    pub fn push(&self, frame: Outbound) -> Pushed {
        {
            let mut q = lock(&self.queue);
            if q.len() >= self.limit as usize {
                drop(q);
                return Pushed::TooSlow {
                    first: self.close(close_code::TOO_SLOW),
                };
            }
            q.push_back(frame);
        }
        self.wake();
        Pushed::Queued
    }

    /// Moves up to `max` queued frames into `out`, in order. When the queue empties its
    /// memory is given back.
    pub fn take(&self, max: usize, out: &mut Vec<Outbound>) {
        let mut q = lock(&self.queue);
        let n = q.len().min(max);
        out.extend(q.drain(..n));
        if q.is_empty() && q.capacity() > 0 {
            *q = VecDeque::new();
        }
    }

    pub fn has_queued(&self) -> bool {
        !lock(&self.queue).is_empty()
    }

    /// Asks the connection to close with `code`. The first request wins; returns whether
    /// this one was the first.
    pub fn close(&self, code: u16) -> bool {
        let first = self
            .close
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.wake();
        }
        first
    }

    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// The close code asked for, if any.
    pub fn close_requested(&self) -> Option<u16> {
        match self.close.load(Ordering::Acquire) {
            0 => None,
            c => Some(c),
        }
    }

    /// Whether a ping is due (and clears the request).
    pub fn take_ping(&self) -> bool {
        self.ping.swap(false, Ordering::AcqRel)
    }

    /// Ready once something was queued, or a close or a ping asked for, since the last time
    /// it was ready (a wake-up while the task was busy is kept). For one task only.
    pub fn poll_woken(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.woken.swap(false, Ordering::AcqRel) {
            return std::task::Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A wake between the first check and the registration would be lost otherwise.
        if self.woken.swap(false, Ordering::AcqRel) {
            return std::task::Poll::Ready(());
        }
        std::task::Poll::Pending
    }

    /// Waits for [`Conn::poll_woken`].
    pub async fn woken(&self) {
        std::future::poll_fn(|cx| self.poll_woken(cx)).await
    }

    /// The client sent something (any frame).
    pub fn heard(&self, hub: &Hub) {
        self.heard_ms.store(hub.now_ms(), Ordering::Relaxed);
    }
}

/// What [`Conn::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue was full: the connection is closing (4008). `first`: this push decided it.
    TooSlow {
        first: bool,
    },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every operation under these locks completes in place (a push, a drain, an insert), so
    // a panic elsewhere cannot leave them inconsistent: a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A user's connections on this node: most users have one, kept inline (no allocation).
type UserConns = SmallVec<[Arc<Conn>; 1]>;

/// What this node knows about another node of the cluster.
struct RemoteNode {
    last_heard: Instant,
    users: HashSet<String>,
}

pub struct Hub {
    /// Live connections by user.
    conns: Mutex<HashMap<Arc<str>, UserConns>>,
    next_id: AtomicU64,
    /// The hub's clock origin (connections store times as ms since then).
    epoch: Instant,
    pub(crate) slow_closed: AtomicU64,
    /// Set in a cluster: committed events go to the cluster task instead of straight out.
    forward: OnceLock<mpsc::UnboundedSender<Vec<Durable>>>,
    /// Other nodes' online users, by node id (from their presence deltas and heartbeats).
    remote: Mutex<HashMap<String, RemoteNode>>,
    /// What each local connection shows (`view` frames): user → connection → conversation.
    viewing: Mutex<HashMap<String, HashMap<u64, String>>>,
    /// Set when push notifications are on: committed messages and read markers go there too.
    notifier: OnceLock<mpsc::Sender<Durable>>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            conns: Mutex::default(),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            slow_closed: AtomicU64::new(0),
            forward: OnceLock::new(),
            remote: Mutex::default(),
            viewing: Mutex::default(),
            notifier: OnceLock::new(),
        }
    }
}

/// What [`Hub::sweep`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub pinged: usize,
    pub closed_idle: usize,
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Adds a connection of `user_id` (at most `queue` frames may wait for it). Returns it and
    /// whether it is the user's first on this node (they just came online here).
    pub fn register(&self, user_id: &str, session_id: &str, queue: usize) -> (Arc<Conn>, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut conns = lock(&self.conns);
        // One allocation of the user's id, shared by their connections and the map key.
        let key: Arc<str> = match conns.get_key_value(user_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(user_id),
        };
        let conn = Arc::new(Conn {
            id,
            user_id: key.clone(),
            session_id: Arc::from(session_id),
            queue: Mutex::new(VecDeque::new()),
            limit: queue.min(u32::MAX as usize) as u32,
            waker: AtomicWaker::new(),
            woken: AtomicBool::new(false),
            close: AtomicU16::new(0),
            ping: AtomicBool::new(false),
            heard_ms: AtomicU64::new(self.now_ms()),
            pinged_ms: AtomicU64::new(0),
        });
        let list = conns.entry(key).or_default();
        let first = list.is_empty();
        list.push(conn.clone());
        (conn, first)
    }

    /// Removes a connection; returns true when it was the user's last one (they went offline).
    pub fn unregister(&self, conn: &Conn) -> bool {
        self.set_viewing(&conn.user_id, conn.id, None);
        let mut conns = lock(&self.conns);
        let Some(list) = conns.get_mut(&*conn.user_id) else {
            return false;
        };
        let before = list.len();
        list.retain(|c| c.id != conn.id);
        let removed = list.len() < before;
        if list.is_empty() {
            conns.remove(&*conn.user_id);
            return removed;
        }
        false
    }

    /// Online anywhere in the cluster (on this node, or reported by a live other node).
    pub fn is_online(&self, user_id: &str) -> bool {
        self.is_local(user_id) || self.is_remote(user_id)
    }

    /// The user's open connections on this node.
    pub fn local_connections(&self, user_id: &str) -> usize {
        lock(&self.conns).get(user_id).map_or(0, |l| l.len())
    }

    /// Has at least one connection on this node.
    pub fn is_local(&self, user_id: &str) -> bool {
        lock(&self.conns)
            .get(user_id)
            .is_some_and(|l| !l.is_empty())
    }

    /// Reported online by another live node.
    pub fn is_remote(&self, user_id: &str) -> bool {
        lock(&self.remote)
            .values()
            .any(|n| n.users.contains(user_id))
    }

    /// The users connected to this node (for the cluster heartbeat).
    pub fn local_users(&self) -> Vec<String> {
        lock(&self.conns).keys().map(|k| k.to_string()).collect()
    }

    /// The distinct (session, user) pairs of this node's sockets.
    pub fn local_sessions(&self) -> Vec<(String, String)> {
        let mut out: HashMap<String, String> = HashMap::new();
        for (user, list) in lock(&self.conns).iter() {
            for c in list {
                out.entry(c.session_id.to_string())
                    .or_insert_with(|| user.to_string());
            }
        }
        out.into_iter().collect()
    }

    /// Routes committed events through the cluster task from now on.
    pub fn set_forward(&self, tx: mpsc::UnboundedSender<Vec<Durable>>) {
        let _ = self.forward.set(tx);
    }

    /// Records that `node` reports `user` online or offline; the node counts as heard from.
    pub fn set_remote_user(&self, node: &str, user: &str, online: bool) {
        let mut remote = lock(&self.remote);
        let n = remote.entry(node.to_owned()).or_insert_with(|| RemoteNode {
            last_heard: Instant::now(),
            users: HashSet::new(),
        });
        n.last_heard = Instant::now();
        if online {
            n.users.insert(user.to_owned());
        } else {
            n.users.remove(user);
        }
    }

    /// Replaces what `node` reports online (its heartbeat); returns the users it added and
    /// the users it dropped compared with what we knew.
    pub fn set_remote_users(
        &self,
        node: &str,
        users: HashSet<String>,
    ) -> (Vec<String>, Vec<String>) {
        let mut remote = lock(&self.remote);
        let n = remote.entry(node.to_owned()).or_insert_with(|| RemoteNode {
            last_heard: Instant::now(),
            users: HashSet::new(),
        });
        n.last_heard = Instant::now();
        let added = users.difference(&n.users).cloned().collect();
        let dropped = n.users.difference(&users).cloned().collect();
        n.users = users;
        (added, dropped)
    }

    /// Forgets nodes not heard from for `timeout`; returns the users they had online.
    pub fn expire_remote(&self, timeout: Duration) -> Vec<String> {
        let mut remote = lock(&self.remote);
        let dead: Vec<String> = remote
            .iter()
            .filter(|(_, n)| n.last_heard.elapsed() > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        let mut users = Vec::new();
        for id in dead {
            if let Some(n) = remote.remove(&id) {
                tracing::warn!(node = %id, users = n.users.len(), "cluster node timed out");
                users.extend(n.users);
            }
        }
        users
    }

    pub fn connection_count(&self) -> usize {
        lock(&self.conns).values().map(|l| l.len()).sum()
    }

    pub fn online_users(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Queues `frame` for every connection of every user in `users`. Never waits: a full
    /// queue closes that connection with 4008 (too slow).
    pub fn deliver<S: AsRef<str>>(&self, users: &[S], frame: &Outbound) {
        let conns = lock(&self.conns);
        for u in users {
            let Some(list) = conns.get(u.as_ref()) else {
                continue;
            };
            for c in list {
                if c.push(frame.clone()) == (Pushed::TooSlow { first: true }) {
                    self.slow_closed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Records which conversation a connection shows (`None`: none, or in the background).
    pub fn set_viewing(&self, user_id: &str, conn_id: u64, conversation_id: Option<String>) {
        let mut v = lock(&self.viewing);
        match conversation_id {
            Some(c) => {
                v.entry(user_id.to_owned()).or_default().insert(conn_id, c);
            }
            None => {
                if let Some(m) = v.get_mut(user_id) {
                    m.remove(&conn_id);
                    if m.is_empty() {
                        v.remove(user_id);
                    }
                }
            }
        }
    }

    /// Whether any of the user's connections on this node shows the conversation.
    pub fn is_viewing(&self, user_id: &str, conversation_id: &str) -> bool {
        lock(&self.viewing)
            .get(user_id)
            .is_some_and(|m| m.values().any(|c| c == conversation_id))
    }

    pub fn set_notifier(&self, tx: mpsc::Sender<Durable>) {
        let _ = self.notifier.set(tx);
    }

    /// Delivers committed durable events (in commit order) and, for messages and read
    /// markers, tells the notifier. The notifier's queue is bounded and never waited on:
    /// if push falls behind, notifications are dropped, never chat delivery.
    pub fn publish(&self, events: Vec<Durable>) {
        if let Some(n) = self.notifier.get() {
            for e in events.iter().filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Message | EventKind::Read | EventKind::Notification
                )
            }) {
                let _ = n.try_send(e.clone());
            }
        }
        let events = match self.forward.get() {
            // The task owns delivery now; if it is gone (shutting down) deliver here.
            Some(tx) => match tx.send(events) {
                Ok(()) => return,
                Err(mpsc::error::SendError(events)) => events,
            },
            None => events,
        };
        self.deliver_durable(events);
    }

    /// Delivers durable events to this node's connections, in the order given.
    pub fn deliver_durable(&self, events: Vec<Durable>) {
        for e in events {
            let frame = Outbound {
                pos: Some(e.pos),
                text: e.json,
            };
            self.deliver(&e.recipients, &frame);
        }
    }

    /// Closes every socket opened with this login session (logout, refresh-token reuse).
    pub fn close_session(&self, session_id: &str, code: u16) {
        for list in lock(&self.conns).values() {
            for c in list.iter().filter(|c| &*c.session_id == session_id) {
                c.close(code);
            }
        }
    }

    /// Closes every socket (server shutdown).
    pub fn close_all(&self, code: u16) {
        for list in lock(&self.conns).values() {
            for c in list {
                c.close(code);
            }
        }
    }

    /// Looks at every connection once: one silent for `idle` is closed (1000), one silent for
    /// `ping_every` is asked to send a ping (at most one per `ping_every`: the ping's pong
    /// counts as hearing from the client). One pass over the node's connections replaces a
    /// timer per socket; call it every `ping_every / 4` or so.
    pub fn sweep(&self, ping_every: Duration, idle: Duration) -> Swept {
        let now = self.now_ms();
        let (ping_ms, idle_ms) = (ping_every.as_millis() as u64, idle.as_millis() as u64);
        let mut out = Swept::default();
        for list in lock(&self.conns).values() {
            for c in list {
                let silent = now.saturating_sub(c.heard_ms.load(Ordering::Relaxed));
                if silent > idle_ms {
                    if c.close(1000) {
                        out.closed_idle += 1;
                    }
                } else if silent > ping_ms
                    && now.saturating_sub(c.pinged_ms.load(Ordering::Relaxed)) > ping_ms
                {
                    c.pinged_ms.store(now, Ordering::Relaxed);
                    c.ping.store(true, Ordering::Release);
                    c.wake();
                    out.pinged += 1;
                }
            }
        }
        out
    }
}

/// The store hands committed events to the hub (see [`Hub::publish`]).
impl EventSink for Hub {
    fn publish(&self, events: Vec<Durable>) {
        Hub::publish(self, events)
    }
}

/// The store shows a user online (to those allowed to see it) as the hub knows them.
impl Presence for Hub {
    fn is_online(&self, user_id: &str) -> bool {
        Hub::is_online(self, user_id)
    }
}

/// A frame as the JSON text every socket gets (serialized once, shared by all recipients).
pub fn encode(frame: &ServerFrame) -> Bytes {
    Bytes::from(serde_json::to_vec(frame).unwrap_or_else(|_| {
        br#"{"type":"error","code":"internal","message":"encoding failed"}"#.to_vec()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Outbound {
        Outbound::ephemeral(s.to_owned())
    }

    #[tokio::test]
    async fn full_queue_closes_only_the_slow_connection() {
        let hub = Hub::new();
        let (fast, f1) = hub.register("a", "s1", 2);
        let (slow, f2) = hub.register("b", "s2", 2);
        assert!(f1 && f2);
        let mut got = Vec::new();
        for i in 0..3 {
            hub.deliver(&["a", "b"], &frame(&i.to_string()));
            // The fast reader keeps up.
            fast.take(10, &mut got);
        }
        let got: Vec<_> = got.iter().map(|o| o.text.clone()).collect();
        assert_eq!(got, ["0", "1", "2"]);
        assert_eq!(slow.close_requested(), Some(close_code::TOO_SLOW));
        assert_eq!(fast.close_requested(), None);
        assert_eq!(hub.slow_closed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_drained_queue_gives_its_memory_back() {
        let hub = Hub::new();
        let (c, _) = hub.register("a", "s", 64);
        for i in 0..40 {
            assert_eq!(c.push(frame(&i.to_string())), Pushed::Queued);
        }
        let mut out = Vec::new();
        c.take(100, &mut out);
        assert_eq!(out.len(), 40);
        assert_eq!(lock(&c.queue).capacity(), 0);
    }

    #[test]
    fn presence_follows_first_and_last_connection() {
        let hub = Hub::new();
        let (c1, first1) = hub.register("a", "s", 4);
        let (c2, first2) = hub.register("a", "s", 4);
        assert!(first1 && !first2);
        assert!(
            Arc::ptr_eq(&c1.user_id, &c2.user_id),
            "one copy of the user id"
        );
        assert!(hub.is_online("a"));
        assert!(!hub.unregister(&c1));
        assert!(hub.unregister(&c2));
        assert!(!hub.is_online("a"));
    }

    #[tokio::test]
    async fn the_sweeper_pings_the_silent_and_closes_the_gone() {
        let hub = Hub::new();
        let (c, _) = hub.register("a", "s", 4);
        assert_eq!(
            hub.sweep(Duration::from_secs(30), Duration::from_secs(90)),
            Swept::default()
        );
        std::thread::sleep(Duration::from_millis(30));
        let s = hub.sweep(Duration::from_millis(10), Duration::from_secs(90));
        assert_eq!(s.pinged, 1);
        // The wake-up was kept for the task.
        tokio::time::timeout(Duration::from_secs(1), c.woken())
            .await
            .unwrap();
        assert!(c.take_ping());
        // One ping per silence: not again until it is answered or times out.
        assert_eq!(
            hub.sweep(Duration::from_millis(10), Duration::from_secs(90))
                .pinged,
            0
        );
        c.heard(&hub);
        assert_eq!(
            hub.sweep(Duration::from_millis(10), Duration::from_millis(20))
                .closed_idle,
            0
        );
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            hub.sweep(Duration::from_millis(10), Duration::from_millis(20))
                .closed_idle,
            1
        );
        assert_eq!(c.close_requested(), Some(1000));
    }
}
