//! The WebSocket gateway (`GET /api/v1/ws`).
//!
//! One task per connection. The first frame must authenticate within 10 seconds. After that
//! the task waits for either of two things: bytes from the client, or a wake-up from the hub
//! (frames queued for it, a close request from logout, a slow-consumer verdict or shutdown,
//! a ping the sweeper asks for). It then writes everything queued in one `writev` and reads
//! everything there is.
//!
//! An idle connection is the common case (most sockets of a chat server are), so it costs as
//! little as we can make it: the task's state while waiting is a few hundred bytes, no read
//! or write buffer is held (see [`codec`] and [`transport`]), the outgoing queue is allocated
//! only while frames wait in it, and no timer is kept per socket (the hub's sweeper pings and
//! closes silent sockets for the whole node). Rarely used, larger states (authentication,
//! `sync`, a request being handled) are boxed so they do not size every idle connection.
//!
//! Sends go to the group-commit batcher together with this connection's handle; the batcher
//! queues the `ack` here itself after the commit, so one client can have many sends in flight
//! (and they still commit in the order they were received) without a task per send.
//!
//! `sync` replays stored events straight to the socket while live frames wait in the queue;
//! afterwards queued durable frames the replay already covered are skipped, so the client
//! sees each event once and in stream order. Until the client's first frame after `ready`
//! (or [`FIRST_FRAME_HOLD`]), live durable frames are held back rather than written: a client
//! that resumes sends `sync` first, and an event committed between `ready` and its `sync`
//! must come after the replay, not before it (and then again inside it).

pub mod codec;
mod request;
mod transport;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use chatnode_protocol::{self as p, ClientFrame, ErrorCode, ServerFrame, close_code};
use sha1::{Digest, Sha1};

pub use request::{Refusal, Request, decode};

use crate::SharedState;
use crate::auth::AuthUser;
use crate::domain::UserId;
use crate::error::{Error, error_frame};
use crate::hub::{Conn, Outbound, encode};
use crate::time::now_ms;
use codec::{Decoder, Incoming};
use transport::{Frame, Transport};

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a silent socket goes without a ping.
pub const PING_EVERY: Duration = Duration::from_secs(30);
const SYNC_PAGE: i64 = 500;
/// How long live durable frames wait for a new connection's first frame (usually `sync`).
const FIRST_FRAME_HOLD: Duration = Duration::from_millis(750);
/// The most durable frames the first-frame hold keeps back.
const MAX_HELD: usize = 4096;
/// How long a closing socket waits for the client's Close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Rate-limit strikes (refused frames, draining at the sustained rate) that close a socket (4029).
const MAX_STRIKES: f32 = 200.0;
/// Bytes read per system call, into a buffer on the stack of the (synchronous) reading code.
const READ_CHUNK: usize = 16 * 1024;
/// Frames taken from the queue per write.
const WRITE_BATCH: usize = 64;

/// How often the hub's sweeper looks at every socket, and the ping interval it applies, for
/// an idle timeout (at least twice per ping interval, so a ping is never late by much).
pub fn sweep_timing(idle: Duration) -> (Duration, Duration) {
    let ping = PING_EVERY.min(idle / 2).max(Duration::from_millis(250));
    let every = (ping / 4).max(Duration::from_millis(50));
    (every, ping)
}

/// Whether a browser page at `origin` may open a socket: the same host as the request, or an
/// origin on the allowlist. Requests without `Origin` are not from a browser page (native
/// apps, tools) and are allowed; they still have to authenticate like everyone.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// The RFC 6455 handshake's checks; the `Sec-WebSocket-Accept` value when they pass.
fn handshake(headers: &HeaderMap) -> Option<String> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return None;
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION)?.as_bytes() != b"13" {
        return None;
    }
    // §4.2.1: the key is a nonce of 16 bytes, base64-encoded.
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(key.as_bytes())
        .ok()?;
    if nonce.len() != 16 {
        return None;
    }
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    Some(base64::engine::general_purpose::STANDARD.encode(sha.finalize()))
}

pub async fn upgrade(State(state): State<SharedState>, mut req: HttpRequest) -> Response {
    if *state.shutdown.borrow() {
        return Error::new(ErrorCode::Unavailable, "server is shutting down").into_response();
    }
    // Cross-site WebSocket hijacking: a page on another site must not open sockets here.
    if !origin_allowed(req.headers(), &state.config.allowed_origins) {
        return Error::forbidden("this origin may not open a WebSocket here").into_response();
    }
    let Some(accept) = handshake(req.headers()) else {
        return Error::bad_request("this endpoint needs a WebSocket upgrade").into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tasks = state.tasks.clone();
    let task = async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let (transport, read_ahead) = Transport::from_upgraded(upgraded);
                connection(state, Socket::new(transport, read_ahead)).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    };
    tasks.connection(task);
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// The socket and what is needed to parse what comes from it. Holds no buffer while idle.
struct Socket {
    io: Transport,
    decoder: Decoder,
}

/// What reading found.
enum Read {
    /// Everything there was has been handed over.
    Done,
    /// The client went away (end of stream or an error).
    Gone,
    /// The client broke the protocol: close with this code.
    Violation(u16, &'static str),
}

/// One thing the client sent, decoded while its bytes were on the reading stack.
enum Item {
    Request(Result<Request, Refusal>),
    /// Over the rate limit; the `client_id` to answer with.
    Limited(Option<String>),
    /// Over the rate limit for long enough: close (4029).
    Flooding,
    Binary,
    Ping(Vec<u8>),
    /// The client's Close, with its code if it gave one.
    Close(Option<u16>),
}

impl Socket {
    /// `read_ahead`: what the HTTP layer read past the upgrade request (almost always
    /// nothing), parsed before anything else.
    fn new(io: Transport, read_ahead: Bytes) -> Socket {
        Socket {
            io,
            decoder: Decoder::with_input(&read_ahead),
        }
    }

    /// Reads what is there (without waiting) and passes each complete message to `on`.
    /// Synchronous on purpose: the read buffer lives on this call's stack, never in the
    /// connection's task state.
    fn read_available(&mut self, mut on: impl FnMut(Incoming<'_>) -> bool) -> Read {
        loop {
            let mut buf = [0u8; READ_CHUNK];
            let n = if self.decoder.has_input() {
                // Bytes read before (by the HTTP layer): parse them first.
                0
            } else {
                match self.io.try_read(&mut buf) {
                    Ok(0) => return Read::Gone,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read::Done,
                    Err(_) => return Read::Gone,
                }
            };
            let mut stop = false;
            let r = self.decoder.feed(&mut buf[..n], p::MAX_WS_FRAME, |m| {
                let go = on(m);
                stop |= !go;
                go
            });
            if let Err(v) = r {
                return Read::Violation(v.code(close_code::FRAME_TOO_LARGE), v.reason());
            }
            if stop || (n > 0 && n < READ_CHUNK) {
                return Read::Done;
            }
        }
    }

    /// The next text message (for the authentication phase); `None` when the client went
    /// away, closed or broke the protocol, or `deadline` passed.
    async fn next_text(&mut self, deadline: tokio::time::Instant) -> Result<String, Read> {
        loop {
            let mut got: Option<Result<String, Read>> = None;
            let r = self.read_available(|m| {
                got = match m {
                    Incoming::Text(t) => Some(Ok(t.to_owned())),
                    Incoming::Binary => Some(Ok(String::new())),
                    Incoming::Close(_) => Some(Err(Read::Gone)),
                    Incoming::Ping(_) | Incoming::Pong => return true,
                };
                false
            });
            if let Some(g) = got {
                return g;
            }
            if !matches!(r, Read::Done) {
                return Err(r);
            }
            match tokio::time::timeout_at(deadline, self.io.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Read::Gone),
                Err(_) => return Err(Read::Done),
            }
        }
    }

    async fn send_text(&mut self, text: &[u8]) -> bool {
        self.io
            .write_frames(&[Frame {
                opcode: codec::OP_TEXT,
                payload: text,
            }])
            .await
            .is_ok()
    }

    async fn send(&mut self, frame: &ServerFrame) -> bool {
        self.send_text(&encode(frame)).await
    }

    /// Sends our close frame and waits (briefly) for the client's, reading and dropping what
    /// it still sends. Dropping a socket with unread input makes the kernel answer with a
    /// reset, which can destroy our Close frame (and its code) before the client reads it —
    /// exactly when a flooding client is cut off.
    async fn close(&mut self, code: u16, reason: &str) {
        let _ = tokio::time::timeout(
            CLOSE_GRACE,
            self.io.write_raw(&codec::close_frame(code, reason)),
        )
        .await;
        let deadline = tokio::time::Instant::now() + CLOSE_GRACE;
        loop {
            let mut closed = false;
            let r = self.read_available(|m| {
                closed |= matches!(m, Incoming::Close(_));
                !closed
            });
            if closed || !matches!(r, Read::Done) {
                break;
            }
            match tokio::time::timeout_at(deadline, self.io.readable()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        self.io.shutdown().await;
    }
}

async fn connection(state: SharedState, mut socket: Socket) {
    // Boxed (here and for the other rare, large states below): a future is as large as its
    // largest await, and the connection task lives as long as the socket.
    let Some(auth) = Box::pin(authenticate(&state, &mut socket)).await else {
        return;
    };
    if state.hub.local_connections(auth.user_id.as_str()) >= state.limits.ws_per_user {
        Box::pin(socket.close(close_code::RATE_LIMITED, "too many connections")).await;
        return;
    }
    let (conn, first) = state.hub.register(
        auth.user_id.as_str(),
        auth.session_id.as_str(),
        state.config.ws_queue,
    );
    drop(auth);
    state.metrics.ws_connections_total.fetch_add(1, Relaxed);
    if first {
        Box::pin(came_online(&state, &user_of(&conn))).await;
    }
    serve(&state, &mut socket, &conn).await;
    if state.hub.unregister(&conn) {
        Box::pin(went_offline(&state, &user_of(&conn))).await;
    }
}

/// The user of a registered connection (it registered after its token was verified).
fn user_of(conn: &Conn) -> UserId {
    UserId::trusted(conn.user_id.clone())
}

async fn came_online(state: &SharedState, user_id: &UserId) {
    broadcast_presence(state, user_id, true, None).await;
}

async fn went_offline(state: &SharedState, user_id: &UserId) {
    let now = now_ms();
    state.last_seen.note(user_id, now);
    broadcast_presence(state, user_id, false, Some(now)).await;
}

/// Waits for the `auth` frame; on failure closes with 4001 and returns `None`.
async fn authenticate(state: &SharedState, socket: &mut Socket) -> Option<AuthUser> {
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let mut shutdown = state.shutdown.clone();
    let text = tokio::select! {
        t = socket.next_text(deadline) => t,
        _ = shutdown.changed() => {
            socket.close(close_code::GOING_AWAY, "server shutting down").await;
            return None;
        }
    };
    let text = match text {
        Ok(t) => t,
        Err(Read::Done) => {
            socket
                .close(close_code::UNAUTHENTICATED, "authentication timeout")
                .await;
            return None;
        }
        Err(Read::Violation(code, reason)) => {
            socket.close(code, reason).await;
            return None;
        }
        Err(Read::Gone) => return None,
    };
    let token = match serde_json::from_str::<ClientFrame>(&text) {
        Ok(ClientFrame::Auth { token }) => token,
        _ => {
            socket
                .close(close_code::UNAUTHENTICATED, "first frame must be auth")
                .await;
            return None;
        }
    };
    let checked = if crate::failpoints::hit("ws-auth-unavailable") {
        Err(Error::Internal(anyhow::anyhow!(
            "database unavailable (failpoint ws-auth-unavailable)"
        )))
    } else {
        crate::auth::authenticate(&state.auth, &*state.store, &token).await
    };
    let e = match checked {
        Ok(a) => return Some(a),
        Err(e) => e,
    };
    // A token the database could not check (the session lookup failed: overloaded or away)
    // is not the client's fault, so not 4001, which makes clients refresh or drop their
    // token: "try again later", and they reconnect with the same token. Found in a
    // 50,000-client storm on six nodes, where thousands of valid tokens were answered
    // "invalid or expired".
    let (code, message, close, reason) =
        if matches!(e.code(), ErrorCode::Internal | ErrorCode::Unavailable) {
            tracing::warn!(error = %e, "could not check a WebSocket token");
            (
                ErrorCode::Unavailable,
                "could not check the token just now; reconnect and try again",
                close_code::TRY_AGAIN_LATER,
                "try again later",
            )
        } else {
            (
                ErrorCode::Unauthenticated,
                "invalid or expired token",
                close_code::UNAUTHENTICATED,
                "invalid token",
            )
        };
    let _ = socket
        .send(&ServerFrame::Error {
            client_id: None,
            code,
            message: message.into(),
        })
        .await;
    socket.close(close, reason).await;
    None
}

/// At most this many presence lookups (a user's friends) at once. When thousands of sockets
/// close together, each lookup waiting for a database connection held a query's buffers
/// (~5.6 KB): 106 MiB of a node's heap when 19,000 closed (docs/bench-scale.md, "Heap
/// profile"). Waiting here costs only the connection task that waits anyway.
static PRESENCE_LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(32);

async fn broadcast_presence(
    state: &SharedState,
    user_id: &UserId,
    online: bool,
    last_seen_ms: Option<i64>,
) {
    let friends = {
        // Never closed, so the permit is always granted.
        let _permit = PRESENCE_LOOKUPS.acquire().await.ok();
        match state.store.friend_ids(user_id).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "presence: cannot load friends");
                return;
            }
        }
    };
    if let Some(cluster) = &state.cluster {
        let to = friends.iter().map(UserId::to_string).collect();
        cluster.publish_presence(user_id.as_str(), online, last_seen_ms, to);
        // Still connected to another node: for the cluster nothing changed.
        if state.hub.is_remote(user_id.as_str()) {
            return;
        }
    }
    let frame = ServerFrame::Presence {
        user_id: user_id.to_string(),
        online,
        last_seen_at: last_seen_ms.map(crate::time::rfc3339),
    };
    state
        .hub
        .deliver(&friends, &Outbound::ephemeral(encode(&frame)));
}

/// Token bucket: `burst` frames at once, refilled at `rate` per second.
struct Bucket {
    tokens: f32,
    burst: f32,
    rate: f32,
    last: Instant,
    /// Refused frames, draining at the sustained rate; too many close the socket (4029).
    strikes: f32,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.strikes = (self.strikes - elapsed * self.rate).max(0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.strikes += 1.0;
            false
        }
    }
}

/// How serving a connection ends.
enum End {
    /// The client went away, or closed (its Close was answered).
    Gone,
    /// We close, with this code and reason.
    Close(u16, &'static str),
}

fn close_reason(code: u16) -> &'static str {
    match code {
        close_code::TOO_SLOW => "too slow",
        close_code::GOING_AWAY => "server shutting down",
        1000 => "idle timeout",
        _ => "session ended",
    }
}

/// What a connection keeps between turns besides its socket.
struct Session {
    bucket: Bucket,
    /// Durable frames at or below this position were already sent by a `sync` replay.
    skip_until: i64,
    /// Set from `ready` until the client's first frame: see the module documentation.
    hold: Option<Box<Hold>>,
    /// The stream head `ready` announced (read after this connection was registered, so
    /// every later event reaches it live), until the first `sync`: a first `sync` from there
    /// or later is owed nothing and needs no query (a reconnect storm is mostly these).
    ready_head: Option<i64>,
}

/// Live durable frames held back until a new connection's first frame, and the deadline.
struct Hold {
    until: std::pin::Pin<Box<tokio::time::Sleep>>,
    held: Vec<Outbound>,
}

/// Serves an authenticated, registered connection until it ends.
///
/// Idle, this future is the small wait below; everything a wake-up leads to runs in a boxed
/// [`turn`], so the rarely used, large states are not part of every idle connection.
async fn serve(state: &SharedState, socket: &mut Socket, conn: &Arc<Conn>) {
    let hello = Box::pin(async {
        let ready = match ready_frame(state, &user_of(conn)).await {
            Ok(f) => f,
            Err(e) => {
                let _ = socket.send(&error_frame(None, &e)).await;
                return Err(End::Close(1011, "server error"));
            }
        };
        let head = match &ready {
            ServerFrame::Ready { stream_pos, .. } => Some(*stream_pos),
            _ => None,
        };
        match socket.send(&ready).await {
            true => Ok(head),
            false => Err(End::Gone),
        }
    })
    .await;
    let (hello, ready_head) = match hello {
        Ok(head) => (None, head),
        Err(end) => (Some(end), None),
    };
    let cfg = &state.config;
    let mut session = Session {
        bucket: Bucket {
            tokens: cfg.ws_burst as f32,
            burst: cfg.ws_burst as f32,
            rate: cfg.ws_rate as f32,
            last: Instant::now(),
            strikes: 0.0,
        },
        skip_until: 0,
        hold: Some(Box::new(Hold {
            until: Box::pin(tokio::time::sleep(FIRST_FRAME_HOLD)),
            held: Vec::new(),
        })),
        ready_head,
    };
    let end = match hello {
        Some(end) => end,
        None => loop {
            // Either the hub has something for this connection (frames, a close, a ping) or
            // the client sent something: one poll for both, no timer, no buffer.
            let hold = &mut session.hold;
            let readable = std::future::poll_fn(|cx| {
                // Frames that arrived behind an earlier one (pipelined after `auth`) were
                // read already: no readiness will announce them.
                if socket.decoder.has_input() {
                    return std::task::Poll::Ready(Ok(true));
                }
                if let Some(h) = hold
                    && h.until.as_mut().poll(cx).is_ready()
                {
                    return std::task::Poll::Ready(Ok(false));
                }
                match conn.poll_woken(cx) {
                    std::task::Poll::Ready(()) => std::task::Poll::Ready(Ok(false)),
                    std::task::Poll::Pending => socket.io.poll_readable(cx).map_ok(|()| true),
                }
            })
            .await;
            let readable = match readable {
                Ok(r) => r,
                Err(_) => break End::Gone,
            };
            if let Some(end) = Box::pin(turn(state, socket, conn, &mut session, readable)).await {
                break end;
            }
        },
    };
    if let End::Close(code, reason) = end {
        Box::pin(socket.close(code, reason)).await;
    }
}

/// One wake-up: writes what the hub queued (a close or a ping it asked for first), then
/// reads and handles what the client sent (when `readable`). `Some` ends the connection.
async fn turn(
    state: &SharedState,
    socket: &mut Socket,
    conn: &Arc<Conn>,
    session: &mut Session,
    readable: bool,
) -> Option<End> {
    if let Some(code) = conn.close_requested() {
        // Shutting down: what is queued (answers to sends the batcher committed while
        // draining) goes out before the close. A slow consumer's queue is just dropped.
        if code == close_code::GOING_AWAY && conn.has_queued() {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                release(socket, session).await?;
                flush(socket, conn, session).await
            })
            .await;
        }
        return Some(End::Close(code, close_reason(code)));
    }
    if conn.take_ping() {
        let ping = [Frame {
            opcode: codec::OP_PING,
            payload: b"",
        }];
        if socket.io.write_frames(&ping).await.is_err() {
            return Some(End::Gone);
        }
    }
    if session
        .hold
        .as_mut()
        .is_some_and(|h| h.until.as_mut().poll(&mut noop_cx()).is_ready())
        && release(socket, session).await.is_err()
    {
        return Some(End::Gone);
    }
    if conn.has_queued() && flush(socket, conn, session).await.is_err() {
        return Some(End::Gone);
    }
    if !readable {
        return None;
    }
    // Decode everything that arrived while its bytes are on the reading stack; handle it
    // afterwards (handling awaits).
    let mut items: Vec<Item> = Vec::new();
    let bucket = &mut session.bucket;
    let read = socket.read_available(|m| {
        items.push(match m {
            Incoming::Text(text) => {
                state.metrics.ws_frames_in.fetch_add(1, Relaxed);
                if bucket.take() {
                    Item::Request(decode(&user_of(conn), text))
                } else if bucket.strikes > MAX_STRIKES {
                    Item::Flooding
                } else {
                    state.metrics.ws_rate_limited.fetch_add(1, Relaxed);
                    Item::Limited(request::client_id_of(text))
                }
            }
            Incoming::Binary => Item::Binary,
            Incoming::Ping(data) => Item::Ping(data.to_vec()),
            Incoming::Pong => return true,
            Incoming::Close(code) => Item::Close(code),
        });
        !matches!(items.last(), Some(Item::Close(_) | Item::Flooding))
    });
    conn.heard(&state.hub);
    let first = session.hold.is_some() && !items.is_empty();
    for item in items {
        let end = match item {
            Item::Request(Ok(Request::Send(m))) => {
                let client_id = m.client_id.clone();
                match state.batcher.submit_from(m, conn.clone()).await {
                    Ok(()) => None,
                    Err(e) => reply(socket, &error_frame(Some(client_id), &e)).await,
                }
            }
            Item::Request(Ok(r)) => Box::pin(handle(state, socket, conn, r, session)).await,
            Item::Request(Err(refusal)) => reply(socket, &refusal.frame()).await,
            Item::Limited(client_id) => {
                let frame = ServerFrame::Error {
                    client_id,
                    code: ErrorCode::RateLimited,
                    message: "too many frames; slow down".into(),
                };
                reply(socket, &frame).await
            }
            Item::Flooding => Some(End::Close(close_code::RATE_LIMITED, "rate limited")),
            Item::Binary => {
                let e =
                    Error::bad_request("binary frames are not supported; send JSON text frames");
                reply(socket, &error_frame(None, &e)).await
            }
            Item::Ping(data) => {
                let pong = [Frame {
                    opcode: codec::OP_PONG,
                    payload: &data,
                }];
                socket.io.write_frames(&pong).await.err().map(|_| End::Gone)
            }
            Item::Close(code) => {
                // Answer the client's Close by echoing its code (RFC 6455 §5.5.1), or with an
                // empty Close when it gave none, then it is over.
                let answer = match code {
                    Some(code) => codec::close_frame(code, ""),
                    None => codec::empty_close_frame(),
                };
                let _ = socket.io.write_raw(&answer).await;
                socket.io.shutdown().await;
                Some(End::Gone)
            }
        };
        if end.is_some() {
            return end;
        }
    }
    // The first frame was handled (a `sync` replayed): what was held goes out now, then
    // what queued meanwhile, both without what the replay covered.
    if first
        && (release(socket, session).await.is_err() || flush(socket, conn, session).await.is_err())
    {
        return Some(End::Gone);
    }
    match read {
        Read::Done => None,
        Read::Gone => Some(End::Gone),
        Read::Violation(code, reason) => Some(End::Close(code, reason)),
    }
}

/// A context for polling the hold's deadline outside the wait (its wake-up is not needed).
fn noop_cx() -> std::task::Context<'static> {
    std::task::Context::from_waker(std::task::Waker::noop())
}

/// Ends the first-frame hold: writes the held durable frames a replay did not cover.
async fn release(socket: &mut Socket, session: &mut Session) -> std::io::Result<()> {
    let Some(hold) = session.hold.take() else {
        return Ok(());
    };
    let skip_until = session.skip_until;
    let frames: Vec<Frame<'_>> = hold
        .held
        .iter()
        .filter(|o| o.pos.is_some_and(|p| p > skip_until))
        .map(|o| Frame {
            opcode: codec::OP_TEXT,
            payload: &o.text,
        })
        .collect();
    if frames.is_empty() {
        return Ok(());
    }
    socket.io.write_frames(&frames).await
}

/// Writes everything queued for the connection, skipping durable frames a replay covered
/// (and, during the first-frame hold, keeping durable frames back).
async fn flush(socket: &mut Socket, conn: &Conn, session: &mut Session) -> std::io::Result<()> {
    let skip_until = session.skip_until;
    let mut batch: Vec<Outbound> = Vec::new();
    loop {
        conn.take(WRITE_BATCH, &mut batch);
        if batch.is_empty() {
            return Ok(());
        }
        batch.retain(|o| o.pos.is_none_or(|p| p > skip_until));
        if let Some(hold) = session.hold.as_mut() {
            let (durable, ephemeral): (Vec<Outbound>, Vec<Outbound>) =
                batch.drain(..).partition(|o| o.pos.is_some());
            hold.held.extend(durable);
            batch = ephemeral;
            if hold.held.len() > MAX_HELD {
                // A flood while waiting: stop holding (the queue's own limit applies again).
                release(socket, session).await?;
            }
        }
        let frames: Vec<Frame<'_>> = batch
            .iter()
            .map(|o| Frame {
                opcode: codec::OP_TEXT,
                payload: &o.text,
            })
            .collect();
        socket.io.write_frames(&frames).await?;
        drop(frames);
        batch.clear();
    }
}

/// Sends a reply; a broken socket ends the connection.
async fn reply(socket: &mut Socket, frame: &ServerFrame) -> Option<End> {
    if socket.send(frame).await {
        None
    } else {
        Some(End::Gone)
    }
}

async fn ready_frame(state: &SharedState, user_id: &UserId) -> crate::error::Result<ServerFrame> {
    let me = state.store.me(user_id).await?;
    let stream_pos = state.store.stream_head().await?;
    // "Active in the last 24 hours" (admin statistics) counts from `last_seen_at`, which is
    // otherwise written when a user goes offline: note a connection too, at most once an hour
    // per user, so a reconnect storm writes (almost) nothing.
    let seen_ms = me.user.last_seen_at.as_deref().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    });
    let now = crate::time::now_ms();
    if seen_ms.is_none_or(|t| now - t > 3_600_000) {
        state.last_seen.note(user_id, now);
    }
    Ok(ServerFrame::Ready {
        user: me.user,
        stream_pos,
    })
}

/// Handles one decoded request. Errors go back as `error` frames; only a broken socket ends
/// the connection.
async fn handle(
    state: &SharedState,
    socket: &mut Socket,
    conn: &Arc<Conn>,
    request: Request,
    session: &mut Session,
) -> Option<End> {
    let user = &user_of(conn);
    match request {
        Request::Ping => reply(socket, &ServerFrame::Pong).await,
        Request::Send(m) => {
            let client_id = m.client_id.clone();
            match state.batcher.submit_from(m, conn.clone()).await {
                Ok(()) => None,
                Err(e) => reply(socket, &error_frame(Some(client_id), &e)).await,
            }
        }
        Request::Typing {
            conversation_id: conv,
            typing,
        } => match state.store.member_ids_if_member(user, &conv).await {
            Ok(Some(members)) => {
                let others: Vec<&UserId> = members.iter().filter(|m| *m != user).collect();
                let frame = ServerFrame::Typing {
                    conversation_id: conv.to_string(),
                    user_id: user.to_string(),
                    typing,
                };
                let text = encode(&frame);
                if let Some(cluster) = &state.cluster {
                    cluster.publish_ephemeral(
                        others.iter().map(|s| s.to_string()).collect(),
                        String::from_utf8_lossy(&text).into_owned(),
                    );
                }
                state.hub.deliver(&others, &Outbound::ephemeral(text));
                None
            }
            Ok(None) => {
                reply(
                    socket,
                    &error_frame(None, &Error::not_found("conversation")),
                )
                .await
            }
            Err(e) => reply(socket, &error_frame(None, &e)).await,
        },
        Request::Read {
            conversation_id: conv,
            seq,
        } => match state.store.mark_read(user, &conv, seq).await {
            Ok(_) => None,
            Err(e) => reply(socket, &error_frame(None, &e)).await,
        },
        Request::Sync { since } => {
            let owed_nothing = session.ready_head.take().is_some_and(|head| since >= head);
            sync(
                state,
                socket,
                user,
                since,
                owed_nothing,
                &mut session.skip_until,
            )
            .await
        }
        Request::View { conversation_id } => {
            let conversation_id = conversation_id.map(|c| c.to_string());
            state
                .hub
                .set_viewing(user.as_str(), conn.id, conversation_id);
            None
        }
    }
}

/// Replays stored events after `since` (not negative: [`decode`] checked it); with
/// `owed_nothing` (a first `sync` at or past the head `ready` gave) there is nothing stored to
/// replay and it answers `synced` at once.
async fn sync(
    state: &SharedState,
    socket: &mut Socket,
    user: &UserId,
    since: i64,
    owed_nothing: bool,
    skip_until: &mut i64,
) -> Option<End> {
    let mut cursor = since;
    let mut more = !owed_nothing;
    while more {
        let page = match state.store.events_since(user, cursor, SYNC_PAGE).await {
            Ok(p) => p,
            Err(e) => return reply(socket, &error_frame(None, &e)).await,
        };
        let n = page.len() as i64;
        if let Some(last) = page.last() {
            cursor = last.pos;
        }
        let frames: Vec<Frame<'_>> = page
            .iter()
            .map(|ev| Frame {
                opcode: codec::OP_TEXT,
                payload: ev.json.as_bytes(),
            })
            .collect();
        if socket.io.write_frames(&frames).await.is_err() {
            return Some(End::Gone);
        }
        more = n == SYNC_PAGE;
    }
    *skip_until = (*skip_until).max(cursor);
    reply(socket, &ServerFrame::Synced { stream_pos: cursor }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_answers_as_rfc_6455_says() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        // The example of RFC 6455 §1.3.
        assert_eq!(
            handshake(&h).as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        // A key that is not a base64 nonce of 16 bytes is refused.
        for bad in [
            "",
            "not base64!",
            "dGhlIHNhbXBsZQ==",
            "dGhlIHNhbXBsZSBub25jZSE=",
        ] {
            let mut h = h.clone();
            h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static(bad));
            assert_eq!(handshake(&h), None, "{bad:?}");
        }
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert_eq!(handshake(&h), None);
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.remove(header::UPGRADE);
        assert_eq!(handshake(&h), None);
    }

    #[test]
    fn the_sweeper_pings_often_enough_for_any_idle_timeout() {
        assert_eq!(
            sweep_timing(Duration::from_secs(90)),
            (Duration::from_millis(7500), PING_EVERY)
        );
        let (every, ping) = sweep_timing(Duration::from_secs(1));
        assert_eq!(ping, Duration::from_millis(500));
        assert!(every <= ping / 2);
    }
}
