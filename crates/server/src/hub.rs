//! The hub owns every live WebSocket connection of this node, and so presence.
//!
//! Fan-out goes through [`Hub::deliver`]: it never awaits. Each connection has a bounded queue;
//! a frame that does not fit means the client is not keeping up, so instead of letting the
//! queue (and the server's memory) grow, that one connection is told to close with 4008 and
//! the client resumes later with `sync`. Everyone else is unaffected.
//!
//! Frames are serialized once by the caller and shared between recipients (`Utf8Bytes` is a
//! reference-counted buffer). The map lock is a std mutex held only to clone handles or push
//! into queues, never across an `.await`.
//!
//! In a cluster (see [`crate::cluster`]) the hub also keeps which users other nodes report
//! online, so `is_online` is cluster-wide, and [`Hub::publish`] hands committed events to the
//! cluster task (which publishes them on NATS and orders message delivery) instead of
//! delivering them itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

use chatnode_protocol::close_code;

/// Whether a stored event's JSON is a `read` receipt (`type` follows `stream_pos`).
pub fn is_read_event(json: &str) -> bool {
    json.split_once(',')
        .is_some_and(|(_, rest)| rest.starts_with("\"type\":\"read\""))
}

/// One serialized frame on its way to a socket; `pos` is set for durable events.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub pos: Option<i64>,
    pub text: Utf8Bytes,
}

/// A committed durable event, as the store hands it over for delivery.
#[derive(Clone, Debug)]
pub struct Durable {
    pub pos: i64,
    /// Set for events addressed to a conversation's members.
    pub conversation_id: Option<String>,
    /// Set for events addressed to one user.
    pub user_id: Option<String>,
    /// The message's `seq`, for `message` events.
    pub seq: Option<i64>,
    /// Who should get it (the conversation's members at commit, or the one user).
    pub recipients: Vec<String>,
    /// The frame's JSON, `stream_pos` included.
    pub json: String,
}

/// Asks a connection task to close its socket with a code.
#[derive(Default)]
pub struct ConnControl {
    code: AtomicU16,
    notify: Notify,
}

impl ConnControl {
    /// The first requested code wins; later requests are ignored.
    /// Returns whether this request was the first.
    pub fn close(&self, code: u16) -> bool {
        let first = self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.notify.notify_one();
        }
        first
    }

    pub async fn closed(&self) -> u16 {
        loop {
            let c = self.code.load(Ordering::Acquire);
            if c != 0 {
                return c;
            }
            self.notify.notified().await;
        }
    }
}

#[derive(Clone)]
struct ConnHandle {
    id: u64,
    session_id: String,
    tx: mpsc::Sender<Outbound>,
    ctl: Arc<ConnControl>,
}

/// What a connection task gets back when it registers.
pub struct Registration {
    pub id: u64,
    pub rx: mpsc::Receiver<Outbound>,
    /// The connection's own queue, for replies produced off its task (acks).
    pub tx: mpsc::Sender<Outbound>,
    pub ctl: Arc<ConnControl>,
    /// True when this is the user's first connection on this node (they just came online).
    pub first: bool,
}

/// What this node knows about another node of the cluster.
struct RemoteNode {
    last_heard: Instant,
    users: HashSet<String>,
}

#[derive(Default)]
pub struct Hub {
    conns: Mutex<HashMap<String, Vec<ConnHandle>>>,
    next_id: AtomicU64,
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

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    pub fn register(&self, user_id: &str, session_id: &str, queue: usize) -> Registration {
        let (tx, rx) = mpsc::channel(queue);
        let ctl = Arc::new(ConnControl::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let handle = ConnHandle {
            id,
            session_id: session_id.to_owned(),
            tx: tx.clone(),
            ctl: ctl.clone(),
        };
        let mut conns = self.lock();
        let list = conns.entry(user_id.to_owned()).or_default();
        let first = list.is_empty();
        list.push(handle);
        Registration {
            id,
            rx,
            tx,
            ctl,
            first,
        }
    }

    /// Removes a connection; returns true when it was the user's last one (they went offline).
    pub fn unregister(&self, user_id: &str, id: u64) -> bool {
        self.set_viewing(user_id, id, None);
        let mut conns = self.lock();
        let Some(list) = conns.get_mut(user_id) else {
            return false;
        };
        let before = list.len();
        list.retain(|h| h.id != id);
        let removed = list.len() < before;
        if list.is_empty() {
            conns.remove(user_id);
            return removed;
        }
        false
    }

    /// Online anywhere in the cluster (on this node, or reported by a live other node).
    pub fn is_online(&self, user_id: &str) -> bool {
        self.is_local(user_id) || self.is_remote(user_id)
    }

    /// Has at least one connection on this node.
    /// The user's open connections on this node.
    pub fn local_connections(&self, user_id: &str) -> usize {
        self.lock().get(user_id).map_or(0, Vec::len)
    }

    pub fn is_local(&self, user_id: &str) -> bool {
        self.lock().get(user_id).is_some_and(|l| !l.is_empty())
    }

    /// Reported online by another live node.
    pub fn is_remote(&self, user_id: &str) -> bool {
        self.remote_lock()
            .values()
            .any(|n| n.users.contains(user_id))
    }

    /// The users connected to this node (for the cluster heartbeat).
    pub fn local_users(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Routes committed events through the cluster task from now on.
    pub fn set_forward(&self, tx: mpsc::UnboundedSender<Vec<Durable>>) {
        let _ = self.forward.set(tx);
    }

    /// Records that `node` reports `user` online or offline; the node counts as heard from.
    pub fn set_remote_user(&self, node: &str, user: &str, online: bool) {
        let mut remote = self.remote_lock();
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
        let mut remote = self.remote_lock();
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
        let mut remote = self.remote_lock();
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
        self.lock().values().map(Vec::len).sum()
    }

    pub fn online_users(&self) -> usize {
        self.lock().len()
    }

    /// Queues `frame` for every connection of every user in `users`. Never waits: a full queue
    /// closes that connection with 4008 (too slow).
    pub fn deliver<S: AsRef<str>>(&self, users: &[S], frame: &Outbound) {
        let conns = self.lock();
        for u in users {
            let Some(list) = conns.get(u.as_ref()) else {
                continue;
            };
            for h in list {
                match h.tx.try_send(frame.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        if h.ctl.close(close_code::TOO_SLOW) {
                            self.slow_closed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    }

    /// Delivers committed durable events, in the order given (commit order). In a cluster
    /// they go to the cluster task, which publishes them and delivers them in `seq` order.
    /// Records which conversation a connection shows (`None`: none, or in the background).
    pub fn set_viewing(&self, user_id: &str, conn_id: u64, conversation_id: Option<String>) {
        let mut v = self.viewing.lock().unwrap_or_else(|p| p.into_inner());
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
        let v = self.viewing.lock().unwrap_or_else(|p| p.into_inner());
        v.get(user_id)
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
            for e in events
                .iter()
                .filter(|e| e.seq.is_some() || is_read_event(&e.json))
            {
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
                text: Utf8Bytes::from(e.json),
            };
            self.deliver(&e.recipients, &frame);
        }
    }

    /// The distinct (session, user) pairs of this node's sockets.
    pub fn local_sessions(&self) -> Vec<(String, String)> {
        let mut out: HashMap<String, String> = HashMap::new();
        for (user, list) in self.lock().iter() {
            for h in list {
                out.entry(h.session_id.clone())
                    .or_insert_with(|| user.clone());
            }
        }
        out.into_iter().collect()
    }

    /// Closes every socket opened with this login session (logout, refresh-token reuse).
    pub fn close_session(&self, session_id: &str, code: u16) {
        for list in self.lock().values() {
            for h in list.iter().filter(|h| h.session_id == session_id) {
                let _ = h.ctl.close(code);
            }
        }
    }

    /// Closes every socket (server shutdown).
    pub fn close_all(&self, code: u16) {
        for list in self.lock().values() {
            for h in list {
                let _ = h.ctl.close(code);
            }
        }
    }

    fn remote_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RemoteNode>> {
        // Each operation on this map completes in place; a poisoned lock is safe to reuse.
        self.remote.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ConnHandle>>> {
        // A panic while holding this lock cannot leave the map inconsistent (each operation
        // is a single insert/retain), so a poisoned lock is safe to keep using.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Outbound {
        Outbound {
            pos: None,
            text: Utf8Bytes::from(s.to_owned()),
        }
    }

    #[tokio::test]
    async fn full_queue_closes_only_the_slow_connection() {
        let hub = Hub::new();
        let mut fast = hub.register("a", "s1", 2);
        let slow = hub.register("b", "s2", 2);
        assert!(fast.first && slow.first);
        for i in 0..3 {
            hub.deliver(&["a", "b"], &frame(&i.to_string()));
            // The fast reader keeps up.
            assert_eq!(fast.rx.recv().await.unwrap().text.as_str(), i.to_string());
        }
        assert_eq!(slow.ctl.closed().await, close_code::TOO_SLOW);
        assert_eq!(fast.ctl.code.load(Ordering::Acquire), 0);
    }

    #[test]
    fn presence_follows_first_and_last_connection() {
        let hub = Hub::new();
        let r1 = hub.register("a", "s", 4);
        let r2 = hub.register("a", "s", 4);
        assert!(r1.first && !r2.first);
        assert!(hub.is_online("a"));
        assert!(!hub.unregister("a", r1.id));
        assert!(hub.unregister("a", r2.id));
        assert!(!hub.is_online("a"));
    }
}
