//! [`WsConnection`]: one WebSocket connection to `/api/v1/ws`, with no reconnection.
//!
//! It speaks the contract's JSON frames through [`ClientFrame`] and [`ServerFrame`], keeps a
//! buffer of frames that arrived while the caller was waiting for something else (an `ack`, a
//! matching frame, `ready`), and tracks the highest `stream_pos` it has seen. A close from the
//! server surfaces as [`ClientError::Closed`] with its code (4001, 4008, 1001, ...), and every
//! later call reports the same close.
//!
//! Frames of a `type` this client does not know are skipped with a `tracing` warning (their
//! `stream_pos`, if any, still counts), so a newer server never breaks it; frames of a known
//! type that do not decode are a [`ClientError::Decode`], because that is a server bug.
//! [`WsConnection::next_json`] shows any frame as raw JSON.

use std::collections::VecDeque;
use std::time::Duration;

use chatnode_protocol::{ClientFrame, Message, SendMessageRequest, ServerFrame, User};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::Client;
use crate::error::{ClientError, Result, snippet};

/// How long to wait for the TCP + upgrade handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Client::connect_ws`] waits for `ready` after sending `auth`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the convenience methods wait for an `ack` or `synced`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The `type` tags [`ServerFrame`] knows; anything else is an unknown (newer) frame.
const KNOWN_TYPES: [&str; 21] = [
    "ready",
    "ack",
    "error",
    "synced",
    "pong",
    "message",
    "message.updated",
    "message.deleted",
    "typing",
    "presence",
    "read",
    "friend.request",
    "friend.request.removed",
    "friend.added",
    "friend.removed",
    "conversation.updated",
    "member.added",
    "member.removed",
    "member.updated",
    "reaction",
    "notification",
];

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The server's answer to `auth`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub user: User,
    pub stream_pos: i64,
}

/// How a connection ended: the server's close code and reason, if it sent a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub code: Option<u16>,
    pub reason: String,
}

impl CloseInfo {
    fn to_error(&self) -> ClientError {
        ClientError::Closed {
            code: self.code,
            reason: self.reason.clone(),
        }
    }
}

/// A decoded incoming frame. Short-lived (moved on at once), so its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Incoming {
    Frame(ServerFrame),
    /// A frame whose `type` this client does not know, as JSON.
    Unknown(Value),
}

/// One WebSocket connection to a ChatNode server.
///
/// Methods take `&mut self`: a connection is driven by one task. Frames that arrive while a
/// method waits for something specific are kept, in order, and returned by later calls of
/// [`next_frame`](Self::next_frame) / [`next_matching`](Self::next_matching).
pub struct WsConnection {
    socket: Socket,
    pending: VecDeque<ServerFrame>,
    ready: Option<Ready>,
    last_stream_pos: i64,
    closed: Option<CloseInfo>,
}

impl std::fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnection")
            .field("ready", &self.ready)
            .field("pending", &self.pending.len())
            .field("last_stream_pos", &self.last_stream_pos)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Client {
    /// Opens `/api/v1/ws`, sends `auth` with the stored access token and waits for `ready`
    /// (see [`WsConnection::ready`]). An `error` frame, a close (4001) or no answer within
    /// [`AUTH_TIMEOUT`] is an error.
    pub async fn connect_ws(&self) -> Result<WsConnection> {
        let token = self.access_token().ok_or(ClientError::NoToken("access"))?;
        let mut conn = self.connect_ws_unauthenticated().await?;
        conn.authenticate(&token, AUTH_TIMEOUT).await?;
        Ok(conn)
    }

    /// Opens `/api/v1/ws` without sending anything (to test the auth handshake itself).
    pub async fn connect_ws_unauthenticated(&self) -> Result<WsConnection> {
        WsConnection::connect(&self.ws_url()?).await
    }
}

impl WsConnection {
    /// Opens a WebSocket to a full `ws://` URL, without authenticating.
    pub async fn connect(url: &str) -> Result<WsConnection> {
        let (socket, _response) =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url))
                .await
                .map_err(|_| ClientError::Timeout(format!("WebSocket handshake with {url}")))??;
        Ok(WsConnection {
            socket,
            pending: VecDeque::new(),
            ready: None,
            last_stream_pos: 0,
            closed: None,
        })
    }

    /// Sends `auth` and waits for `ready` (other frames are kept for later). An `error` frame
    /// becomes [`ClientError::Frame`], a close [`ClientError::Closed`].
    pub async fn authenticate(&mut self, token: &str, timeout: Duration) -> Result<Ready> {
        self.send_frame(ClientFrame::Auth {
            token: token.to_owned(),
        })
        .await?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_until(deadline).await? {
                None => return Err(ClientError::Timeout("ready".into())),
                Some(ServerFrame::Ready { user, stream_pos }) => {
                    let ready = Ready { user, stream_pos };
                    self.ready = Some(ready.clone());
                    return Ok(ready);
                }
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
                Some(other) => self.pending.push_back(other),
            }
        }
    }

    /// The `ready` frame of this connection, once authenticated.
    pub fn ready(&self) -> Option<&Ready> {
        self.ready.as_ref()
    }

    /// The highest `stream_pos` seen on this connection (in `ready`, `synced` or any durable
    /// event, known or not); 0 before any.
    pub fn last_stream_pos(&self) -> i64 {
        self.last_stream_pos
    }

    /// How the server closed this connection, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.closed.as_ref()
    }

    /// Frames received but not yet returned.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Drops the frames received but not yet returned, returning them.
    pub fn take_buffered(&mut self) -> Vec<ServerFrame> {
        self.pending.drain(..).collect()
    }

    // -----------------------------------------------------------------------------------------
    // Sending
    // -----------------------------------------------------------------------------------------

    async fn write(&mut self, msg: WsMessage) -> Result<()> {
        if let Some(c) = &self.closed {
            return Err(c.to_error());
        }
        match self.socket.send(msg).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, frame: ClientFrame) -> Result<()> {
        let text = serde_json::to_string(&frame)
            .map_err(|e| ClientError::Decode(format!("client frame: {e}")))?;
        self.write(WsMessage::Text(text.into())).await
    }

    /// Sends any text as one frame (to test how the server handles bad frames).
    pub async fn send_raw_text(&mut self, text: String) -> Result<()> {
        self.write(WsMessage::Text(text.into())).await
    }

    /// Sends a binary frame (the protocol uses text frames only).
    pub async fn send_raw_binary(&mut self, data: Vec<u8>) -> Result<()> {
        self.write(WsMessage::Binary(data.into())).await
    }

    /// Sends a text message and waits up to [`DEFAULT_WAIT`] for its `ack`, returning the
    /// committed message. An `error` frame with this `client_id` is [`ClientError::Frame`].
    pub async fn send_message(
        &mut self,
        conversation_id: &str,
        client_id: &str,
        body: &str,
    ) -> Result<Message> {
        let req = SendMessageRequest {
            client_id: client_id.to_owned(),
            body: body.to_owned(),
            ..Default::default()
        };
        self.send_request(conversation_id, &req, DEFAULT_WAIT).await
    }

    /// Sends a `send` frame with every option of the contract and waits for its `ack`.
    pub async fn send_request(
        &mut self,
        conversation_id: &str,
        req: &SendMessageRequest,
        timeout: Duration,
    ) -> Result<Message> {
        self.send_frame(send_frame(conversation_id, req)).await?;
        self.wait_ack(&req.client_id, timeout).await
    }

    /// Waits for the `ack` (→ the message) or `error` (→ [`ClientError::Frame`]) carrying
    /// `client_id`, keeping every other frame for later.
    pub async fn wait_ack(&mut self, client_id: &str, timeout: Duration) -> Result<Message> {
        let is_answer = |f: &ServerFrame| match f {
            ServerFrame::Ack { client_id: c, .. } => c == client_id,
            ServerFrame::Error { client_id: c, .. } => c.as_deref() == Some(client_id),
            _ => false,
        };
        match self.next_matching(timeout, is_answer).await? {
            Some(ServerFrame::Ack { message, .. }) => Ok(message),
            Some(ServerFrame::Error {
                client_id,
                code,
                message,
            }) => Err(ClientError::Frame {
                client_id,
                code,
                message,
            }),
            Some(_) | None => Err(ClientError::Timeout(format!("ack of {client_id}"))),
        }
    }

    /// Sends `sync` and collects every frame until `synced`, returning them (in arrival order,
    /// `synced` itself excluded) and the `synced` stream position. Waits up to
    /// [`DEFAULT_WAIT`]. Frames buffered before the call are left in the buffer.
    pub async fn sync(&mut self, since: i64) -> Result<(Vec<ServerFrame>, i64)> {
        self.sync_timeout(since, DEFAULT_WAIT).await
    }

    /// [`sync`](Self::sync) with an explicit timeout.
    pub async fn sync_timeout(
        &mut self,
        since: i64,
        timeout: Duration,
    ) -> Result<(Vec<ServerFrame>, i64)> {
        self.send_frame(ClientFrame::Sync { since }).await?;
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        loop {
            match self.recv_until(deadline).await? {
                None => return Err(ClientError::Timeout("synced".into())),
                Some(ServerFrame::Synced { stream_pos }) => return Ok((frames, stream_pos)),
                Some(f) => frames.push(f),
            }
        }
    }

    /// Sends a normal close (1000) and waits briefly for the server's answer.
    pub async fn close(mut self) -> Result<()> {
        if self.closed.is_some() {
            return Ok(());
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if let Err(e) = self.socket.close(Some(frame)).await {
            return match e {
                tokio_tungstenite::tungstenite::Error::ConnectionClosed
                | tokio_tungstenite::tungstenite::Error::AlreadyClosed => Ok(()),
                other => Err(other.into()),
            };
        }
        // Read until the server's close frame or the end of the stream.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Receiving
    // -----------------------------------------------------------------------------------------

    /// The next frame: a buffered one, or the next from the socket within `timeout`. `None`
    /// on timeout; [`ClientError::Closed`] once the server closed the connection.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Option<ServerFrame>> {
        if let Some(f) = self.pending.pop_front() {
            return Ok(Some(f));
        }
        self.recv_until(Instant::now() + timeout).await
    }

    /// The first frame (buffered or new, within `timeout`) for which `pred` is true; the
    /// frames it passes over stay buffered, in order, for later calls. `None` on timeout.
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

    /// The next frame as raw JSON, whatever its type (buffered frames first, re-encoded).
    /// `None` on timeout.
    pub async fn next_json(&mut self, timeout: Duration) -> Result<Option<Value>> {
        if let Some(f) = self.pending.pop_front() {
            return serde_json::to_value(&f)
                .map(Some)
                .map_err(|e| ClientError::Decode(format!("buffered frame: {e}")));
        }
        match timeout_at(Instant::now() + timeout, self.recv_value()).await {
            Err(_) => Ok(None),
            Ok(v) => v.map(Some),
        }
    }

    /// Reads until the connection closes (keeping frames for later) and returns how it
    /// closed; [`ClientError::Timeout`] if it is still open after `timeout`. A connection that
    /// ends without a close frame gives `code: None`.
    pub async fn wait_close(&mut self, timeout: Duration) -> Result<CloseInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = &self.closed {
                return Ok(c.clone());
            }
            match timeout_at(deadline, self.recv_incoming()).await {
                Err(_) => return Err(ClientError::Timeout("close".into())),
                Ok(Ok(Incoming::Frame(f))) => self.pending.push_back(f),
                Ok(Ok(Incoming::Unknown(_))) => {}
                // `fail`/`recv_value` recorded the close; the loop returns it.
                Ok(Err(_)) => {}
            }
        }
    }

    /// The next known frame from the socket (not the buffer) before `deadline`.
    async fn recv_until(&mut self, deadline: Instant) -> Result<Option<ServerFrame>> {
        loop {
            match timeout_at(deadline, self.recv_incoming()).await {
                Err(_) => return Ok(None),
                Ok(r) => match r? {
                    Incoming::Frame(f) => return Ok(Some(f)),
                    Incoming::Unknown(_) => continue,
                },
            }
        }
    }

    /// The next frame from the socket, decoded. Cancel-safe: the only await is the socket
    /// read, and a frame taken from it is processed without awaiting.
    pub(crate) async fn recv_incoming(&mut self) -> Result<Incoming> {
        let value = self.recv_value().await?;
        classify(value)
    }

    /// The next text frame from the socket as JSON, updating `last_stream_pos`. Cancel-safe.
    async fn recv_value(&mut self) -> Result<Value> {
        if let Some(c) = &self.closed {
            return Err(c.to_error());
        }
        loop {
            let msg = match self.socket.next().await {
                None => {
                    return Err(self.mark_closed(None, "connection ended without a close frame"));
                }
                Some(Err(e)) => return Err(self.fail(e)),
                Some(Ok(m)) => m,
            };
            match msg {
                WsMessage::Text(t) => {
                    let value: Value = serde_json::from_str(t.as_str()).map_err(|e| {
                        ClientError::Decode(format!("frame ({e}): {}", snippet(t.as_bytes())))
                    })?;
                    if let Some(pos) = value.get("stream_pos").and_then(Value::as_i64) {
                        self.last_stream_pos = self.last_stream_pos.max(pos);
                    }
                    return Ok(value);
                }
                WsMessage::Binary(b) => {
                    return Err(ClientError::Decode(format!(
                        "unexpected binary frame of {} bytes",
                        b.len()
                    )));
                }
                WsMessage::Close(frame) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_owned()),
                        None => (None, String::new()),
                    };
                    return Err(self.mark_closed(code, &reason));
                }
                // tungstenite answers pings itself.
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => continue,
            }
        }
    }

    fn mark_closed(&mut self, code: Option<u16>, reason: &str) -> ClientError {
        let info = self.closed.get_or_insert_with(|| CloseInfo {
            code,
            reason: reason.to_owned(),
        });
        info.to_error()
    }

    /// Turns a transport error into a [`ClientError`], remembering that the connection is
    /// unusable from now on.
    fn fail(&mut self, e: tokio_tungstenite::tungstenite::Error) -> ClientError {
        use tokio_tungstenite::tungstenite::Error as E;
        match e {
            E::ConnectionClosed | E::AlreadyClosed => self.mark_closed(None, "connection closed"),
            other => {
                if self.closed.is_none() {
                    self.closed = Some(CloseInfo {
                        code: None,
                        reason: other.to_string(),
                    });
                }
                other.into()
            }
        }
    }
}

/// The `send` frame for a conversation and a request body.
pub(crate) fn send_frame(conversation_id: &str, req: &SendMessageRequest) -> ClientFrame {
    ClientFrame::Send {
        conversation_id: conversation_id.to_owned(),
        client_id: req.client_id.clone(),
        body: req.body.clone(),
        kind: req.kind,
        attachment_ids: req.attachment_ids.clone(),
        reply_to_seq: req.reply_to_seq,
    }
}

/// Decodes a frame: a known type must decode, an unknown one is returned as JSON.
pub(crate) fn classify(value: Value) -> Result<Incoming> {
    let ty = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if KNOWN_TYPES.contains(&ty.as_str()) {
        let text = value.to_string();
        serde_json::from_value::<ServerFrame>(value)
            .map(Incoming::Frame)
            .map_err(|e| {
                ClientError::Decode(format!("`{ty}` frame ({e}): {}", snippet(text.as_bytes())))
            })
    } else {
        tracing::warn!(frame_type = %ty, "skipping a WebSocket frame of unknown type");
        Ok(Incoming::Unknown(value))
    }
}

/// The `stream_pos` of a raw frame, if it has one.
pub(crate) fn raw_stream_pos(value: &Value) -> Option<i64> {
    value.get("stream_pos").and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_types_match_the_protocol() {
        // Every tag the protocol can produce must be in KNOWN_TYPES, or its frames would be
        // skipped as unknown.
        let frames = [
            ServerFrame::Pong,
            ServerFrame::Synced { stream_pos: 1 },
            ServerFrame::Typing {
                conversation_id: "c".into(),
                user_id: "u".into(),
                typing: true,
            },
            ServerFrame::FriendRequestRemoved {
                request_id: "r".into(),
                stream_pos: Some(3),
            },
            ServerFrame::MemberUpdated {
                conversation_id: "c".into(),
                user_id: "u".into(),
                role: None,
                stream_pos: Some(4),
            },
        ];
        for f in frames {
            assert!(KNOWN_TYPES.contains(&f.type_name()), "{}", f.type_name());
        }
    }

    #[test]
    fn classify_known_unknown_and_broken() {
        match classify(json!({"type":"synced","stream_pos":9})) {
            Ok(Incoming::Frame(ServerFrame::Synced { stream_pos: 9 })) => {}
            _ => panic!("synced not decoded"),
        }
        // New fields on known frames are ignored.
        match classify(json!({"type":"pong","extra":1})) {
            Ok(Incoming::Frame(ServerFrame::Pong)) => {}
            _ => panic!("pong with extra field not decoded"),
        }
        let v = json!({"type":"reaction.added","stream_pos":12,"emoji":"x"});
        match classify(v) {
            Ok(Incoming::Unknown(v)) => assert_eq!(raw_stream_pos(&v), Some(12)),
            _ => panic!("unknown type not kept"),
        }
        match classify(json!({"no_type":true})) {
            Ok(Incoming::Unknown(_)) => {}
            _ => panic!("typeless frame not skipped"),
        }
        let e = classify(json!({"type":"message","stream_pos":1})).err();
        assert!(matches!(e, Some(ClientError::Decode(_))), "{e:?}");
    }

    #[test]
    fn send_frame_carries_all_options() {
        let req = SendMessageRequest {
            client_id: "cid".into(),
            body: "hi".into(),
            kind: None,
            attachment_ids: Some(vec!["m1".into()]),
            reply_to_seq: Some(3),
        };
        let v = serde_json::to_value(send_frame("conv", &req)).unwrap();
        assert_eq!(
            v,
            json!({"type":"send","conversation_id":"conv","client_id":"cid","body":"hi",
                   "attachment_ids":["m1"],"reply_to_seq":3})
        );
    }
}
