//! [`ResilientWs`]: a WebSocket session that survives disconnects (behaviour documented on
//! the type), and the [`Backoff`] it waits with.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatnode_protocol::{ClientFrame, Message, SendMessageRequest, ServerFrame};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::ws::{AUTH_TIMEOUT, DEFAULT_WAIT, Incoming, WsConnection, raw_stream_pos, send_frame};

/// Exponential backoff with jitter, bounded by `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first delay.
    pub base: Duration,
    /// The largest delay ever returned.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The ceiling of the delay before retry number `attempt` (0-based):
    /// `min(max, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A random delay in `[ceiling/2, ceiling]` for retry number `attempt`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.jittered(attempt, random_unit())
    }

    /// The delay for a given random `unit` in `[0, 1]` (values outside are clamped):
    /// `ceiling/2 + unit * ceiling/2`.
    pub fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let unit = if unit.is_nan() {
            0.0
        } else {
            unit.clamp(0.0, 1.0)
        };
        (half + (ceiling - half).mul_f64(unit)).min(ceiling)
    }
}

/// A uniform random number in `[0, 1)`, from the 48 random high bits of a v4 UUID (no extra
/// dependency needed for jitter).
fn random_unit() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 80) as u64;
    bits as f64 / (1u64 << 48) as f64
}

/// Settings of a [`ResilientWs`].
#[derive(Debug, Clone)]
pub struct ResilientConfig {
    pub backoff: Backoff,
    /// Capacity of the frame channel; when the consumer falls behind, the session stops
    /// reading the socket (and the server may close it with 4008, after which it resumes).
    pub channel_capacity: usize,
    /// How long to wait for `ready` after `auth`.
    pub auth_timeout: Duration,
    /// How long to wait for `synced`; past that the connection is dropped and retried.
    pub sync_timeout: Duration,
}

impl Default for ResilientConfig {
    fn default() -> Self {
        ResilientConfig {
            backoff: Backoff::default(),
            channel_capacity: 1024,
            auth_timeout: AUTH_TIMEOUT,
            sync_timeout: DEFAULT_WAIT,
        }
    }
}

enum Command {
    Frame(ClientFrame),
    Reconnect,
}

#[derive(Default)]
struct Shared {
    /// The position a reconnect syncs from.
    resume_pos: AtomicI64,
    /// Authenticated connections so far.
    connects: AtomicU64,
    connected: AtomicBool,
    /// Why the last connection ended, or why the session stopped.
    last_error: Mutex<Option<String>>,
    /// Signalled by [`ResilientWs::close`]; heard while connected, connecting or waiting.
    stop: Notify,
}

impl Shared {
    fn set_error(&self, e: impl ToString) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
    fn error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A reconnecting, deduplicating WebSocket session.
///
/// A background task owns a [`WsConnection`] and, whenever it is lost (server restart, 1001,
/// 4008 too slow, network error, ...):
///
/// 1. waits a [`Backoff`] delay — exponential from `base` (100 ms) up to `max` (5 s), with
///    "equal jitter" (a random delay between half the ceiling and the ceiling) so that many
///    clients do not reconnect in lockstep; the first connection is attempted at once, and the
///    attempt counter resets once a connection has completed its `sync`;
/// 2. reconnects and authenticates with the [`Client`]'s current access token; if the server
///    refuses it (an `unauthenticated` error frame or close 4001), it calls
///    [`Client::refresh`] once and retries at once. A refused refresh (4xx), a missing
///    refresh token, or a second refusal right after a successful refresh ends the session;
/// 3. sends `sync` from the last position it delivered (see below) and holds back durable
///    events until `synced`, then delivers them in `stream_pos` order.
///
/// What the receiver gets: every frame except `ready`, in arrival order, with durable events
/// (those with a `stream_pos`) **deduplicated**: a durable event is delivered only if its
/// `stream_pos` is greater than that of the last durable event delivered (or the `synced`
/// position, or the starting position), so replays after a reconnect never repeat one.
/// Ephemeral frames (`typing`, `presence`, `ack`, `error`, `pong`) pass straight through,
/// even during a sync. Each completed sync is followed by its `synced` frame, which marks "caught
/// up". Durable events of a type this client does not know advance the position silently.
///
/// Sending: [`ResilientWs::send_frame`] queues a frame for the current connection (or the next
/// one, while disconnected). A frame written just before a connection dies can be lost; the
/// contract makes resending a `send` with the same `client_id` safe, and
/// [`ResilientWs::send_message`] does so after every reconnect until it gets the answer.
///
/// The refresh goes through the shared token store of the [`Client`]: do not refresh through
/// other clones of it at the same time (a refresh token is single-use, and reusing a spent one
/// revokes the login session).
///
/// Dropping it stops the background task at once; [`close`](Self::close) closes the socket
/// politely first.
pub struct ResilientWs {
    rx: mpsc::Receiver<ServerFrame>,
    cmd: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    pending: VecDeque<ServerFrame>,
}

impl Client {
    /// Starts a [`ResilientWs`] with the default settings. With `since`, the first sync
    /// replays what followed that position; without, it starts at the `ready` position.
    /// Must be called inside a Tokio runtime.
    pub fn resilient_ws(&self, since: Option<i64>) -> ResilientWs {
        ResilientWs::start(self.clone(), since, ResilientConfig::default())
    }
}

impl ResilientWs {
    /// Starts the session's background task (inside the current Tokio runtime). The first
    /// connection is made in the background; failures are retried, not returned.
    pub fn start(client: Client, since: Option<i64>, config: ResilientConfig) -> ResilientWs {
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let shared = Arc::new(Shared::default());
        shared
            .resume_pos
            .store(since.unwrap_or(0), Ordering::SeqCst);
        let task = tokio::spawn(run(client, since, config, tx, cmd_rx, shared.clone()));
        ResilientWs {
            rx,
            cmd: cmd_tx,
            shared,
            task,
            pending: VecDeque::new(),
        }
    }

    /// The next frame, waiting as long as it takes; `None` once the session has ended.
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        match self.pending.pop_front() {
            Some(f) => Some(f),
            None => self.rx.recv().await,
        }
    }

    /// The next frame within `timeout` (`None` on timeout); [`ClientError::Closed`] once the
    /// session has ended (its reason is the last error).
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Option<ServerFrame>> {
        if let Some(f) = self.pending.pop_front() {
            return Ok(Some(f));
        }
        self.recv_until(Instant::now() + timeout).await
    }

    /// The first frame (buffered or new, within `timeout`) for which `pred` is true; frames
    /// passed over stay buffered, in order. `None` on timeout.
    pub async fn next_matching<F>(
        &mut self,
        timeout: Duration,
        mut pred: F,
    ) -> Result<Option<ServerFrame>>
    where
        F: FnMut(&ServerFrame) -> bool,
    {
        if let Some(i) = self.pending.iter().position(&mut pred) {
            return Ok(self.pending.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_until(deadline).await? {
                None => return Ok(None),
                Some(f) if pred(&f) => return Ok(Some(f)),
                Some(f) => self.pending.push_back(f),
            }
        }
    }

    async fn recv_until(&mut self, deadline: Instant) -> Result<Option<ServerFrame>> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Err(_) => Ok(None),
            Ok(Some(f)) => Ok(Some(f)),
            Ok(None) => Err(ClientError::Closed {
                code: None,
                reason: self
                    .shared
                    .error()
                    .unwrap_or_else(|| "session ended".into()),
            }),
        }
    }

    /// The channel of frames itself, e.g. for `tokio::select!`. Frames that
    /// [`next_matching`](Self::next_matching) buffered are not in it.
    pub fn receiver(&mut self) -> &mut mpsc::Receiver<ServerFrame> {
        &mut self.rx
    }

    /// Queues a frame for the current connection, or the next one while disconnected.
    pub async fn send_frame(&self, frame: ClientFrame) -> Result<()> {
        self.command(Command::Frame(frame)).await
    }

    /// Sends a message and waits up to `timeout` for its `ack` (→ the message) or `error`
    /// (→ [`ClientError::Frame`]), resending the same `client_id` after every reconnect.
    /// Other frames stay buffered. A resend can leave a second `ack` for the same message in
    /// the stream.
    pub async fn send_message(
        &mut self,
        conversation_id: &str,
        req: &SendMessageRequest,
        timeout: Duration,
    ) -> Result<Message> {
        let deadline = Instant::now() + timeout;
        let client_id = req.client_id.clone();
        let mut sent_on = self.connects();
        self.send_frame(send_frame(conversation_id, req)).await?;
        loop {
            let slice = (Instant::now() + Duration::from_millis(250)).min(deadline);
            let got = self
                .next_matching(
                    slice.saturating_duration_since(Instant::now()),
                    |f| match f {
                        ServerFrame::Ack { client_id: c, .. } => *c == client_id,
                        ServerFrame::Error { client_id: c, .. } => c.as_deref() == Some(&client_id),
                        _ => false,
                    },
                )
                .await?;
            match got {
                Some(ServerFrame::Ack { message, .. }) => return Ok(message),
                Some(ServerFrame::Error {
                    client_id,
                    code,
                    message,
                }) => {
                    return Err(ClientError::Frame {
                        client_id,
                        code,
                        message,
                    });
                }
                Some(_) | None => {}
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout(format!("ack of {client_id}")));
            }
            let now_on = self.connects();
            if now_on > sent_on && self.is_connected() {
                sent_on = now_on;
                self.send_frame(send_frame(conversation_id, req)).await?;
            }
        }
    }

    /// Drops the current connection as if the network had failed (the session reconnects).
    pub async fn reconnect(&self) -> Result<()> {
        self.command(Command::Reconnect).await
    }

    async fn command(&self, c: Command) -> Result<()> {
        self.cmd.send(c).await.map_err(|_| ClientError::Closed {
            code: None,
            reason: self
                .shared
                .error()
                .unwrap_or_else(|| "session ended".into()),
        })
    }

    /// The position the next reconnect will `sync` from: the `stream_pos` of the last durable
    /// event delivered, or of the last `synced`, whichever is greater.
    pub fn last_stream_pos(&self) -> i64 {
        self.shared.resume_pos.load(Ordering::SeqCst)
    }

    /// How many times the session has authenticated (1 after the first connection).
    pub fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::SeqCst)
    }

    /// Whether a connection is up and authenticated right now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// Why the last connection attempt or connection failed, or why the session ended.
    pub fn last_error(&self) -> Option<String> {
        self.shared.error()
    }

    /// Whether the background task has stopped (the channel then drains and ends).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Closes the socket politely (1000) and stops the session.
    pub async fn close(self) {
        self.shared.stop.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while !self.task.is_finished() {
                sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        // Drop aborts the task if it is still running.
    }
}

impl Drop for ResilientWs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for ResilientWs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientWs")
            .field("last_stream_pos", &self.last_stream_pos())
            .field("connects", &self.connects())
            .field("connected", &self.is_connected())
            .field("buffered", &self.pending.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// The background task
// ---------------------------------------------------------------------------------------------

/// Why a session on one connection ended.
enum End {
    /// The connection was lost; reconnect.
    Lost { error: String, synced: bool },
    /// The user closed the session or dropped the receiver; stop.
    Stop,
}

/// Delivery state that outlives connections: the dedup watermark.
struct Cursor {
    /// `stream_pos` of the last durable event delivered (or synced past); `None` before the
    /// first `ready` when no start was given.
    last: Option<i64>,
}

impl Cursor {
    /// Whether a durable event at `pos` is new; if so, it becomes the watermark.
    fn advance(&mut self, pos: i64) -> bool {
        match self.last {
            Some(last) if pos <= last => false,
            _ => {
                self.last = Some(pos);
                true
            }
        }
    }
}

async fn run(
    client: Client,
    since: Option<i64>,
    cfg: ResilientConfig,
    tx: mpsc::Sender<ServerFrame>,
    mut cmd_rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
) {
    let mut cursor = Cursor { last: since };
    let mut attempt: u32 = 0;
    let mut delay_next = false;
    let mut refreshed = false;
    loop {
        if delay_next {
            let d = cfg.backoff.delay(attempt);
            attempt = attempt.saturating_add(1);
            tracing::debug!(
                delay_ms = d.as_millis() as u64,
                attempt,
                "reconnecting after backoff"
            );
            tokio::select! {
                _ = sleep(d) => {}
                _ = tx.closed() => return,
                _ = shared.stop.notified() => return,
            }
        }
        delay_next = true;

        let attempt_result = tokio::select! {
            r = connect(&client, cfg.auth_timeout) => r,
            _ = shared.stop.notified() => return,
        };
        let mut conn = match attempt_result {
            Ok(c) => c,
            Err(e) if e.is_unauthenticated() || matches!(e, ClientError::NoToken("access")) => {
                if refreshed {
                    shared.set_error(format!("authentication refused after a refresh: {e}"));
                    return;
                }
                match client.refresh().await {
                    Ok(_) => {
                        refreshed = true;
                        delay_next = false;
                    }
                    Err(re) if refresh_is_final(&re) => {
                        shared.set_error(format!("cannot refresh the access token: {re}"));
                        return;
                    }
                    Err(re) => shared.set_error(format!("refresh failed: {re}")),
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket connection failed");
                shared.set_error(e);
                continue;
            }
        };
        refreshed = false;
        let ready_pos = conn.ready().map(|r| r.stream_pos).unwrap_or(0);
        // The first connection without a start position begins at `ready`.
        let from = *cursor.last.get_or_insert(ready_pos);
        shared.connects.fetch_add(1, Ordering::SeqCst);
        shared.connected.store(true, Ordering::SeqCst);

        let end = session(
            &mut conn,
            from,
            &cfg,
            &tx,
            &mut cmd_rx,
            &mut cursor,
            &shared,
        )
        .await;
        shared.connected.store(false, Ordering::SeqCst);
        match end {
            End::Stop => {
                let _ = conn.close().await;
                return;
            }
            End::Lost { error, synced } => {
                tracing::debug!(%error, "WebSocket connection lost");
                shared.set_error(error);
                if synced {
                    attempt = 0;
                }
            }
        }
    }
}

/// Whether a failed refresh can never succeed by retrying.
fn refresh_is_final(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status, .. } => (400..500).contains(status) && *status != 429,
        ClientError::NoToken(_) => true,
        _ => false,
    }
}

async fn connect(client: &Client, auth_timeout: Duration) -> Result<WsConnection> {
    let token = client
        .access_token()
        .ok_or(ClientError::NoToken("access"))?;
    let mut conn = client.connect_ws_unauthenticated().await?;
    conn.authenticate(&token, auth_timeout).await?;
    Ok(conn)
}

/// Runs one connection: sync from `from`, then deliver until it is lost.
async fn session(
    conn: &mut WsConnection,
    from: i64,
    cfg: &ResilientConfig,
    tx: &mpsc::Sender<ServerFrame>,
    cmd_rx: &mut mpsc::Receiver<Command>,
    cursor: &mut Cursor,
    shared: &Shared,
) -> End {
    let lost = |e: ClientError, synced: bool| End::Lost {
        error: e.to_string(),
        synced,
    };
    // Frames buffered during `authenticate` come first (they arrived before the sync).
    let early = conn.take_buffered();
    if let Err(e) = conn.send_frame(ClientFrame::Sync { since: from }).await {
        return lost(e, false);
    }
    let mut syncing = true;
    let sync_deadline = Instant::now() + cfg.sync_timeout;
    // Durable events held back until `synced`, by position; `None` for unknown types.
    let mut held: BTreeMap<i64, Option<ServerFrame>> = BTreeMap::new();
    let mut queue: VecDeque<Incoming> = early.into_iter().map(Incoming::Frame).collect();

    loop {
        // Handle what is queued before reading more.
        while let Some(inc) = queue.pop_front() {
            let (frame, pos) = match inc {
                Incoming::Frame(f) => {
                    let pos = f.stream_pos();
                    (Some(f), pos)
                }
                Incoming::Unknown(v) => (None, raw_stream_pos(&v)),
            };
            match (frame, pos) {
                (Some(ServerFrame::Ready { .. }), _) => {}
                (Some(ServerFrame::Synced { stream_pos }), _) => {
                    // Everything up to `stream_pos` has now been replayed: deliver the held
                    // events in order, then move the watermark past the sync.
                    for (pos, f) in std::mem::take(&mut held) {
                        if cursor.advance(pos) {
                            if let Some(f) = f
                                && tx.send(f).await.is_err()
                            {
                                return End::Stop;
                            }
                            shared.resume_pos.store(pos, Ordering::SeqCst);
                        }
                    }
                    cursor.advance(stream_pos);
                    if let Some(last) = cursor.last {
                        shared.resume_pos.store(last, Ordering::SeqCst);
                    }
                    syncing = false;
                    if tx.send(ServerFrame::Synced { stream_pos }).await.is_err() {
                        return End::Stop;
                    }
                }
                (f, Some(pos)) if syncing => {
                    held.insert(pos, f);
                }
                (f, Some(pos)) => {
                    if cursor.advance(pos) {
                        shared.resume_pos.store(pos, Ordering::SeqCst);
                        if let Some(f) = f
                            && tx.send(f).await.is_err()
                        {
                            return End::Stop;
                        }
                    } else {
                        tracing::debug!(pos, "dropping an event already delivered");
                    }
                }
                (Some(f), None) => {
                    if tx.send(f).await.is_err() {
                        return End::Stop;
                    }
                }
                (None, None) => {}
            }
        }

        tokio::select! {
            _ = shared.stop.notified() => return End::Stop,
            cmd = cmd_rx.recv() => match cmd {
                None => return End::Stop,
                Some(Command::Reconnect) => {
                    return lost(ClientError::Closed { code: None, reason: "reconnect requested".into() }, !syncing);
                }
                Some(Command::Frame(f)) => {
                    if let Err(e) = conn.send_frame(f).await {
                        return lost(e, !syncing);
                    }
                }
            },
            inc = conn.recv_incoming() => match inc {
                Ok(i) => queue.push_back(i),
                // A frame that does not decode is a server bug: log it, keep the connection.
                Err(ClientError::Decode(d)) => tracing::warn!(error = %d, "undecodable frame skipped"),
                Err(e) => return lost(e, !syncing),
            },
            _ = sleep_until(sync_deadline), if syncing => {
                return lost(ClientError::Timeout("synced".into()), false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_ceiling_doubles_up_to_max() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(5), Duration::from_millis(3200));
        assert_eq!(b.ceiling(6), Duration::from_secs(5));
        assert_eq!(b.ceiling(40), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn backoff_delays_stay_within_bounds() {
        let b = Backoff::default();
        for attempt in [0, 1, 3, 7, 31, 32, 1000, u32::MAX] {
            let c = b.ceiling(attempt);
            assert_eq!(b.jittered(attempt, 0.0), c / 2);
            assert_eq!(b.jittered(attempt, 1.0), c);
            assert_eq!(b.jittered(attempt, 7.0), c);
            assert_eq!(b.jittered(attempt, f64::NAN), c / 2);
            for _ in 0..200 {
                let d = b.delay(attempt);
                assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
                assert!(d <= b.max);
            }
        }
    }

    #[test]
    fn backoff_with_base_above_max_is_capped() {
        let b = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(1),
        };
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert!(b.delay(3) <= Duration::from_secs(1));
    }

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let xs: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn cursor_only_moves_forward() {
        let mut c = Cursor { last: None };
        assert!(c.advance(5));
        assert!(!c.advance(5));
        assert!(!c.advance(3));
        assert!(c.advance(6));
        let mut c = Cursor { last: Some(10) };
        assert!(!c.advance(10));
        assert!(c.advance(11));
    }

    #[test]
    fn refresh_finality() {
        assert!(refresh_is_final(&ClientError::from_response(401, b"")));
        assert!(!refresh_is_final(&ClientError::from_response(429, b"")));
        assert!(!refresh_is_final(&ClientError::from_response(503, b"")));
        assert!(refresh_is_final(&ClientError::NoToken("refresh")));
        assert!(!refresh_is_final(&ClientError::Timeout("x".into())));
    }
}
