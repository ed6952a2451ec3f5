//! The WebSocket gateway (`GET /api/v1/ws`).
//!
//! One task per connection. The first frame must authenticate within 10 seconds. After that
//! the task multiplexes: frames from the client, frames queued for it by the hub (bounded:
//! a full queue closes it with 4008), a close request (logout, slow consumer, shutdown) and a
//! ping timer that also enforces the idle timeout.
//!
//! Sends are handed to the group-commit batcher and the task moves on; a small task waits for
//! the commit and queues the `ack`, so one client can have many sends in flight (and they
//! still commit in the order they were received).
//!
//! `sync` replays stored events straight to the socket while live frames wait in the queue;
//! afterwards queued durable frames the replay already covered are skipped, so the client
//! sees each event once and in stream order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chatnode_protocol::{self as p, ClientFrame, ErrorCode, ServerFrame, close_code};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::SharedState;
use crate::error::Error;
use crate::http::AuthUser;
use crate::hub::{ConnControl, Outbound};
use crate::store::NewMessage;
use crate::time::now_ms;

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(30);
const SYNC_PAGE: i64 = 500;
/// How long a closing socket waits for the client's Close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Rate-limit strikes (refused frames, draining at the sustained rate) that close a socket (4029).
const MAX_STRIKES: f64 = 200.0;

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

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

pub async fn upgrade(
    State(state): State<SharedState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Cross-site WebSocket hijacking: a page on another site must not open sockets here.
    if !origin_allowed(&headers, &state.config.allowed_origins) {
        return Error::forbidden("this origin may not open a WebSocket here").into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return Error::bad_request("this endpoint needs a WebSocket upgrade").into_response();
        }
    };
    // Small buffers: tungstenite's defaults cost over 100 KiB per idle socket, and the read
    // buffer is allocated up front for every socket (a chat frame is rarely over 1 KiB; a
    // larger one grows it). Frames above the contract's 64 KiB are closed with 4009 by the
    // connection task; the library limit only stops absurd frames from being buffered at all.
    ws.read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(1024 * 1024)
        .max_frame_size(1024 * 1024)
        .on_upgrade(move |socket| connection(state, socket))
}

fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_else(|_| {
        r#"{"type":"error","code":"internal","message":"encoding failed"}"#.into()
    }))
}

fn error_frame(client_id: Option<String>, e: &Error) -> ServerFrame {
    if let Error::Internal(inner) = e {
        tracing::error!(error = %format!("{inner:#}"), "websocket request failed");
    }
    let (code, message) = e.public();
    ServerFrame::Error {
        client_id,
        code,
        message,
    }
}

async fn close(sink: &mut Sink, code: u16, reason: &'static str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
    let _ = sink.close().await;
}

async fn connection(state: SharedState, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    // Boxed (here and for `handle` below): a future's size is that of its largest await,
    // and the connection task lives as long as the socket; boxing keeps the rarely used,
    // large states (auth, frame handling, sync) out of every idle connection's memory.
    let Some(auth) = Box::pin(authenticate(&state, &mut sink, &mut stream)).await else {
        return;
    };
    if state.hub.local_connections(&auth.user_id) >= state.limits.ws_per_user {
        close(&mut sink, close_code::RATE_LIMITED, "too many connections").await;
        return;
    }
    let reg = state
        .hub
        .register(&auth.user_id, &auth.session_id, state.config.ws_queue);
    state
        .metrics
        .ws_connections_total
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let conn_id = reg.id;
    if reg.first {
        // Subscribe before `ready`: whatever commits after `ready`'s stream_pos reaches us.
        if let Some(cluster) = &state.cluster {
            cluster.user_connected(&auth.user_id).await;
        }
        broadcast_presence(&state, &auth.user_id, true, None).await;
    }
    // Every log line of this connection carries the user and connection IDs.
    let span = tracing::info_span!("ws", user_id = %auth.user_id, conn = conn_id);
    Connection {
        state: state.clone(),
        auth: auth.clone(),
        sink,
        stream,
        skip_until: 0,
        conn_id,
    }
    .run(reg)
    .instrument(span)
    .await;
    if state.hub.unregister(&auth.user_id, conn_id) {
        if let Some(cluster) = &state.cluster {
            cluster.user_disconnected(&auth.user_id);
        }
        let now = now_ms();
        if let Err(e) = state.store.set_last_seen(&auth.user_id, now).await {
            tracing::warn!(error = %e, "could not record last_seen_at");
        }
        broadcast_presence(&state, &auth.user_id, false, Some(now)).await;
    }
}

/// Waits for the `auth` frame; on failure closes with 4001 and returns `None`.
async fn authenticate(
    state: &SharedState,
    sink: &mut Sink,
    stream: &mut Stream,
) -> Option<AuthUser> {
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let mut shutdown = state.shutdown.clone();
    loop {
        let msg = tokio::select! {
            m = tokio::time::timeout_at(deadline, stream.next()) => m,
            _ = shutdown.changed() => {
                close(sink, close_code::GOING_AWAY, "server shutting down").await;
                return None;
            }
        };
        let text = match msg {
            Err(_) => {
                close(sink, close_code::UNAUTHENTICATED, "authentication timeout").await;
                return None;
            }
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Binary(_)))) => {
                close(
                    sink,
                    close_code::UNAUTHENTICATED,
                    "first frame must be auth",
                )
                .await;
                return None;
            }
        };
        if text.len() > p::MAX_WS_FRAME {
            close(sink, close_code::FRAME_TOO_LARGE, "frame too large").await;
            return None;
        }
        let token = match serde_json::from_str::<ClientFrame>(&text) {
            Ok(ClientFrame::Auth { token }) => token,
            _ => {
                close(
                    sink,
                    close_code::UNAUTHENTICATED,
                    "first frame must be auth",
                )
                .await;
                return None;
            }
        };
        match crate::http::authenticate(state, &token).await {
            Ok(a) => return Some(a),
            Err(_) => {
                let _ = sink
                    .send(Message::Text(encode(&ServerFrame::Error {
                        client_id: None,
                        code: ErrorCode::Unauthenticated,
                        message: "invalid or expired token".into(),
                    })))
                    .await;
                close(sink, close_code::UNAUTHENTICATED, "invalid token").await;
                return None;
            }
        }
    }
}

async fn broadcast_presence(
    state: &SharedState,
    user_id: &str,
    online: bool,
    last_seen_ms: Option<i64>,
) {
    let friends = match state.store.friend_ids(user_id).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "presence: cannot load friends");
            return;
        }
    };
    if let Some(cluster) = &state.cluster {
        cluster.publish_presence(user_id, online, last_seen_ms, friends.clone());
        // Still connected to another node: for the cluster nothing changed.
        if state.hub.is_remote(user_id) {
            return;
        }
    }
    let frame = ServerFrame::Presence {
        user_id: user_id.to_owned(),
        online,
        last_seen_at: last_seen_ms.map(crate::time::rfc3339),
    };
    state.hub.deliver(
        &friends,
        &Outbound {
            pos: None,
            text: encode(&frame),
        },
    );
}

/// Token bucket: `burst` frames at once, refilled at `rate` per second.
struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

enum Flow {
    Continue,
    Close(u16, &'static str),
}

struct Connection {
    state: SharedState,
    auth: AuthUser,
    sink: Sink,
    stream: Stream,
    /// Durable frames at or below this position were already sent by a `sync` replay.
    skip_until: i64,
    conn_id: u64,
}

impl Connection {
    async fn send(&mut self, frame: &ServerFrame) -> bool {
        self.sink.send(Message::Text(encode(frame))).await.is_ok()
    }

    async fn run(mut self, mut reg: crate::hub::Registration) {
        let ready = match Box::pin(self.ready_frame()).await {
            Ok(f) => f,
            Err(e) => {
                let _ = self.send(&error_frame(None, &e)).await;
                close(&mut self.sink, 1011, "server error").await;
                return;
            }
        };
        if !self.send(&ready).await {
            return;
        }
        let cfg = &self.state.config;
        let mut bucket = Bucket {
            tokens: cfg.ws_burst as f64,
            burst: cfg.ws_burst as f64,
            rate: cfg.ws_rate as f64,
            last: Instant::now(),
        };
        let idle = Duration::from_secs(cfg.ws_idle_timeout);
        // Refused frames add a strike; strikes drain at the sustained rate. A client that keeps
        // sending far above its rate after being told accumulates them and is closed (4029).
        let mut strikes = 0.0f64;
        let mut last_strike = Instant::now();
        let mut last_heard = Instant::now();
        // Ping (and check for idleness) every 30 s, or more often for short idle timeouts.
        let every = PING_EVERY.min(idle / 2).max(Duration::from_millis(250));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut shutdown = self.state.shutdown.clone();
        let ctl = reg.ctl.clone();
        let flow = loop {
            tokio::select! {
                biased;
                code = ctl.closed() => break Flow::Close(code, match code {
                    close_code::TOO_SLOW => "too slow",
                    close_code::GOING_AWAY => "server shutting down",
                    _ => "session ended",
                }),
                _ = shutdown.changed() => break Flow::Close(close_code::GOING_AWAY, "server shutting down"),
                out = reg.rx.recv() => {
                    let Some(out) = out else { break Flow::Continue };
                    if out.pos.is_some_and(|p| p <= self.skip_until) {
                        continue;
                    }
                    if self.sink.send(Message::Text(out.text)).await.is_err() {
                        break Flow::Continue;
                    }
                }
                msg = self.stream.next() => {
                    let msg = match msg {
                        None => break Flow::Continue,
                        Some(Err(e)) => {
                            let s = e.to_string();
                            if s.contains("too long") || s.contains("Space limit") {
                                break Flow::Close(close_code::FRAME_TOO_LARGE, "frame too large");
                            }
                            break Flow::Continue;
                        }
                        Some(Ok(m)) => m,
                    };
                    last_heard = Instant::now();
                    let text = match msg {
                        Message::Text(t) => t,
                        Message::Close(_) => break Flow::Continue,
                        Message::Ping(_) | Message::Pong(_) => continue,
                        Message::Binary(_) => {
                            let e = Error::bad_request("binary frames are not supported; send JSON text frames");
                            if !self.send(&error_frame(None, &e)).await { break Flow::Continue }
                            continue;
                        }
                    };
                    self.state.metrics.ws_frames_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if text.len() > p::MAX_WS_FRAME {
                        break Flow::Close(close_code::FRAME_TOO_LARGE, "frame too large");
                    }
                    if !bucket.take() {
                        self.state.metrics.ws_rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let drained = last_strike.elapsed().as_secs_f64() * bucket.rate;
                        strikes = (strikes - drained).max(0.0) + 1.0;
                        last_strike = Instant::now();
                        if strikes > MAX_STRIKES {
                            break Flow::Close(close_code::RATE_LIMITED, "rate limited");
                        }
                        let frame = ServerFrame::Error {
                            client_id: client_id_of(&text),
                            code: ErrorCode::RateLimited,
                            message: "too many frames; slow down".into(),
                        };
                        if !self.send(&frame).await { break Flow::Continue }
                        continue;
                    }
                    match Box::pin(self.handle(&text, &reg.tx, &ctl)).await {
                        Flow::Continue => {}
                        close => break close,
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > idle {
                        break Flow::Close(1000, "idle timeout");
                    }
                    if self.sink.send(Message::Ping(Default::default())).await.is_err() {
                        break Flow::Continue;
                    }
                }
            }
        };
        if let Flow::Close(code, reason) = flow {
            close(&mut self.sink, code, reason).await;
            // The closing handshake: read (and drop) what the client still sends until its
            // own Close, for a short while. Dropping a socket with unread input makes the
            // kernel answer with a reset, which can destroy our Close frame (and its code)
            // before the client reads it — exactly when a flooding client is cut off.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(msg)) = self.stream.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }

    async fn ready_frame(&self) -> crate::error::Result<ServerFrame> {
        let me = self.state.store.me(&self.auth.user_id).await?;
        let stream_pos = self.state.store.stream_head().await?;
        Ok(ServerFrame::Ready {
            user: me.user,
            stream_pos,
        })
    }

    /// Handles one client frame. Errors go back as `error` frames; only a broken socket
    /// ends the connection.
    async fn handle(
        &mut self,
        text: &str,
        own_tx: &mpsc::Sender<Outbound>,
        ctl: &Arc<ConnControl>,
    ) -> Flow {
        let request = match decode(&self.auth.user_id, text) {
            Ok(r) => r,
            Err(refusal) => return self.reply(refusal.frame()).await,
        };
        let state = self.state.clone();
        let user = self.auth.user_id.clone();
        match request {
            Request::Ping => self.reply(ServerFrame::Pong).await,
            Request::Send(m) => {
                let client_id = m.client_id.clone();
                let rx = match state.batcher.submit(m).await {
                    Ok(rx) => rx,
                    Err(e) => return self.reply(error_frame(Some(client_id), &e)).await,
                };
                let (tx, ctl) = (own_tx.clone(), ctl.clone());
                tokio::spawn(async move {
                    let frame = match rx.await {
                        Ok(Ok(outcome)) => ServerFrame::Ack {
                            client_id,
                            message: outcome.message,
                        },
                        Ok(Err(e)) => error_frame(Some(client_id), &e),
                        Err(_) => error_frame(
                            Some(client_id),
                            &Error::new(ErrorCode::Unavailable, "server is shutting down"),
                        ),
                    };
                    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(Outbound {
                        pos: None,
                        text: encode(&frame),
                    }) {
                        let _ = ctl.close(close_code::TOO_SLOW);
                    }
                });
                Flow::Continue
            }
            Request::Typing {
                conversation_id: conv,
                typing,
            } => match state.store.member_ids_if_member(&user, &conv).await {
                Ok(Some(members)) => {
                    let others: Vec<&String> = members.iter().filter(|m| **m != user).collect();
                    let frame = ServerFrame::Typing {
                        conversation_id: conv.clone(),
                        user_id: user.clone(),
                        typing,
                    };
                    let text = encode(&frame);
                    if let Some(cluster) = &state.cluster {
                        cluster.publish_ephemeral(
                            &conv,
                            others.iter().map(|s| (*s).clone()).collect(),
                            text.as_str().to_owned(),
                        );
                    }
                    state.hub.deliver(&others, &Outbound { pos: None, text });
                    Flow::Continue
                }
                Ok(None) => {
                    self.reply(error_frame(None, &Error::not_found("conversation")))
                        .await
                }
                Err(e) => self.reply(error_frame(None, &e)).await,
            },
            Request::Read {
                conversation_id: conv,
                seq,
            } => match state.store.mark_read(&user, &conv, seq).await {
                Ok(_) => Flow::Continue,
                Err(e) => self.reply(error_frame(None, &e)).await,
            },
            Request::Sync { since } => self.sync(since).await,
            Request::View { conversation_id } => {
                self.state
                    .hub
                    .set_viewing(&user, self.conn_id, conversation_id);
                Flow::Continue
            }
        }
    }

    async fn reply(&mut self, frame: ServerFrame) -> Flow {
        if self.send(&frame).await {
            Flow::Continue
        } else {
            Flow::Close(1011, "send failed")
        }
    }

    /// Replays stored events after `since` (not negative: [`decode`] checked it).
    async fn sync(&mut self, since: i64) -> Flow {
        let mut cursor = since;
        loop {
            let page = match self
                .state
                .store
                .events_since(&self.auth.user_id, cursor, SYNC_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => return self.reply(error_frame(None, &e)).await,
            };
            let n = page.len() as i64;
            for ev in page {
                cursor = ev.pos;
                if self
                    .sink
                    .send(Message::Text(Utf8Bytes::from(ev.json)))
                    .await
                    .is_err()
                {
                    return Flow::Close(1011, "send failed");
                }
            }
            if n < SYNC_PAGE {
                break;
            }
        }
        self.skip_until = self.skip_until.max(cursor);
        self.reply(ServerFrame::Synced { stream_pos: cursor }).await
    }
}

/// A client frame that passed every check that needs no state: its JSON shape, IDs
/// (normalized), the message rules.
#[doc(hidden)]
#[derive(Debug)]
pub enum Request {
    Ping,
    Send(NewMessage),
    Typing {
        conversation_id: String,
        typing: bool,
    },
    Read {
        conversation_id: String,
        seq: i64,
    },
    Sync {
        since: i64,
    },
    /// `None`: nothing in view (also for anything that is not a conversation ID).
    View {
        conversation_id: Option<String>,
    },
}

/// Why [`decode`] refused a frame, and the `client_id` to answer with.
#[doc(hidden)]
#[derive(Debug)]
pub struct Refusal {
    pub client_id: Option<String>,
    pub error: Error,
}

impl Refusal {
    fn new(client_id: Option<String>, error: Error) -> Refusal {
        Refusal { client_id, error }
    }

    /// The `error` frame that answers the refused frame.
    pub fn frame(&self) -> ServerFrame {
        error_frame(self.client_id.clone(), &self.error)
    }
}

/// Parses and checks one text frame of an authenticated connection. No state and no I/O:
/// the store and the hub see only what passed, and the `ws_frame` fuzz target runs exactly
/// this.
#[doc(hidden)]
pub fn decode(user_id: &str, text: &str) -> Result<Request, Refusal> {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(f) => f,
        Err(e) => {
            let err = Error::bad_request(format!("invalid frame: {e}"));
            return Err(Refusal::new(client_id_of(text), err));
        }
    };
    let conversation =
        |id: &str| crate::domain::id(id, "conversation").map_err(|e| Refusal::new(None, e));
    match frame {
        ClientFrame::Ping => Ok(Request::Ping),
        ClientFrame::Auth { .. } => Err(Refusal::new(
            None,
            Error::bad_request("this connection is already authenticated"),
        )),
        ClientFrame::Send {
            conversation_id,
            client_id,
            body,
            kind,
            attachment_ids,
            reply_to_seq,
        } => crate::http::messages::new_message(
            user_id,
            &conversation_id,
            &client_id,
            &body,
            kind,
            attachment_ids.as_deref(),
            reply_to_seq,
        )
        .map(Request::Send)
        .map_err(|e| Refusal::new(Some(client_id), e)),
        ClientFrame::Typing {
            conversation_id,
            typing,
        } => Ok(Request::Typing {
            conversation_id: conversation(&conversation_id)?,
            typing,
        }),
        ClientFrame::Read {
            conversation_id,
            seq,
        } => Ok(Request::Read {
            conversation_id: conversation(&conversation_id)?,
            seq,
        }),
        ClientFrame::Sync { since } if since < 0 => Err(Refusal::new(
            None,
            Error::invalid("since", "since must not be negative"),
        )),
        ClientFrame::Sync { since } => Ok(Request::Sync { since }),
        // What this client shows: push notifications skip it. Only the user's own
        // conversations count; anything else is treated as "nothing in view".
        ClientFrame::View { conversation_id } => Ok(Request::View {
            conversation_id: conversation_id
                .and_then(|c| crate::domain::id(&c, "conversation").ok()),
        }),
    }
}

/// Best effort: the `client_id` of a frame that failed to parse fully, for the error reply.
fn client_id_of(text: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("client_id")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONV: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

    fn refused(text: &str) -> (Option<String>, ErrorCode) {
        match decode("u", text).map_err(|r| r.frame()) {
            Err(ServerFrame::Error {
                client_id, code, ..
            }) => (client_id, code),
            other => panic!("{text}: expected an error frame, got {other:?}"),
        }
    }

    #[test]
    fn decode_checks_everything_that_needs_no_state() {
        assert!(matches!(
            decode("u", r#"{"type":"ping"}"#),
            Ok(Request::Ping)
        ));
        let send = format!(
            r#"{{"type":"send","conversation_id":"{}","client_id":"c1","body":"hi"}}"#,
            CONV.to_uppercase()
        );
        match decode("u", &send) {
            Ok(Request::Send(m)) => {
                assert_eq!(
                    (m.conversation_id.as_str(), m.client_id.as_str()),
                    (CONV, "c1")
                );
            }
            other => panic!("{other:?}"),
        }
        // Refusals carry the client_id when there is one, even from a frame that did not parse.
        assert_eq!(
            refused(r#"{"type":"send","client_id":"c2","body":1}"#),
            (Some("c2".into()), ErrorCode::InvalidRequest)
        );
        let blank =
            format!(r#"{{"type":"send","conversation_id":"{CONV}","client_id":"c3","body":" "}}"#);
        assert_eq!(refused(&blank).0.as_deref(), Some("c3"));
        assert_eq!(
            refused(r#"{"type":"sync","since":-1}"#).1,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            refused(r#"{"type":"auth","token":"t"}"#).1,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            refused(r#"{"type":"typing","conversation_id":"x","typing":true}"#).1,
            ErrorCode::NotFound
        );
        assert!(matches!(
            decode("u", r#"{"type":"view","conversation_id":"not-an-id"}"#),
            Ok(Request::View {
                conversation_id: None
            })
        ));
    }
}
