//! Connections: dialing from many loopback source addresses, the two wire dialects (ChatNode's
//! JSON frames, which the `ws` peer copies, and Socket.IO's Engine.IO framing), and the task
//! that owns one socket.
//!
//! Every ChatNode frame the generator sends is a `chatnode_protocol::ClientFrame` serialized
//! with serde_json, so the bench cannot drift from the protocol; the Socket.IO dialect wraps the
//! same JSON (`42["send",{…}]`, whose `type` the peer ignores). Received frames are not decoded
//! into `ServerFrame`: see [`classify`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chatnode_protocol::ClientFrame;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

pub type Ws = WebSocketStream<TcpStream>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// ChatNode's protocol (`{"type":…}` text frames at `/api/v1/ws`).
    Json,
    /// Socket.IO v4 over its WebSocket transport.
    EngineIo,
}

/// Opens sockets to a server (user `i` goes to node `i % nodes` of a cluster), spreading them
/// over source addresses 127.0.0.1..=127.0.0.N so that the ~28k ephemeral ports of one
/// address are not the limit.
pub struct Dialer {
    pub addrs: Vec<SocketAddr>,
    pub proto: Proto,
    /// Whether the server implements `sync` (only ChatNode does).
    pub supports_sync: bool,
    sources: u8,
    next: AtomicUsize,
}

impl Dialer {
    pub fn new(addrs: Vec<SocketAddr>, proto: Proto, supports_sync: bool, sources: u8) -> Dialer {
        Dialer {
            addrs,
            proto,
            supports_sync,
            sources: sources.max(1),
            next: AtomicUsize::new(0),
        }
    }

    /// How many source addresses it spreads sockets over.
    pub fn sources(&self) -> u8 {
        self.sources
    }

    fn path(&self) -> &'static str {
        match self.proto {
            Proto::Json => "/api/v1/ws",
            Proto::EngineIo => "/socket.io/?EIO=4&transport=websocket",
        }
    }

    /// Opens a WebSocket for user `user` (which picks the node).
    pub async fn dial(&self, user: usize) -> anyhow::Result<Ws> {
        let addr = self.addrs[user % self.addrs.len()];
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.sources as usize;
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + n as u8));
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(src, 0)).context("bind")?;
        let stream = socket.connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{addr}{}", self.path());
        // Small buffers: the generator holds as many sockets as the server.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_write_buffer_size(1 << 20);
        let (ws, _) = client_async_with_config(url, stream, Some(config))
            .await
            .context("websocket handshake")?;
        Ok(ws)
    }

    /// Dials and authenticates user `user`; returns the socket and the stream position from
    /// `ready`.
    pub async fn connect(&self, user: usize, token: &str) -> anyhow::Result<(Ws, i64)> {
        let mut ws = self.dial(user).await?;
        let pos = login(&mut ws, self.proto, token).await?;
        Ok((ws, pos))
    }
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Err(_) => bail!("timed out waiting for the server"),
            Ok(None) => bail!("socket closed"),
            Ok(Some(Err(e))) => bail!("socket error: {e}"),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(Message::Close(f)))) => {
                bail!("closed by server: {:?}", f.map(|f| u16::from(f.code)))
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The authentication exchange of each dialect.
pub async fn login(ws: &mut Ws, proto: Proto, token: &str) -> anyhow::Result<i64> {
    match proto {
        Proto::Json => {
            let auth = ClientFrame::Auth {
                token: token.to_owned(),
            };
            ws.send(Message::text(encode(&auth))).await?;
            loop {
                let t = next_text(ws).await?;
                if t.contains(r#""type":"ready""#) {
                    return Ok(number_after(&t, r#""stream_pos":"#).unwrap_or(0));
                }
                if t.contains(r#""type":"error""#) {
                    bail!("auth refused: {t}");
                }
            }
        }
        Proto::EngineIo => {
            let open = next_text(ws).await?;
            if !open.starts_with('0') {
                bail!("expected an Engine.IO open packet, got {open}");
            }
            // Socket.IO's CONNECT packet with its auth payload (not a ChatNode frame).
            let auth = serde_json::json!({ "token": token });
            ws.send(Message::text(format!("40{auth}"))).await?;
            loop {
                let t = next_text(ws).await?;
                if t == "2" {
                    ws.send(Message::text("3")).await?;
                } else if t.starts_with(r#"42["ready""#) {
                    return Ok(0);
                } else if t.starts_with("44") {
                    bail!("connect refused: {t}");
                }
            }
        }
    }
}

/// The JSON of a protocol frame. Serializing these types cannot fail (strings, integers and
/// enums only); `expect` documents that.
fn encode(frame: &ClientFrame) -> String {
    serde_json::to_string(frame).expect("a ClientFrame always serializes")
}

pub fn send_frame(proto: Proto, conversation_id: &str, client_id: &str, body: &str) -> String {
    let send = encode(&ClientFrame::Send {
        conversation_id: conversation_id.to_owned(),
        client_id: client_id.to_owned(),
        body: body.to_owned(),
        kind: None,
        attachment_ids: None,
        reply_to_seq: None,
    });
    match proto {
        Proto::Json => send,
        // An Engine.IO message packet (4) carrying a Socket.IO event (2): `["send", payload]`.
        Proto::EngineIo => format!(r#"42["send",{send}]"#),
    }
}

pub fn sync_frame(since: i64) -> String {
    encode(&ClientFrame::Sync { since })
}

pub enum Incoming<'a> {
    Message(&'a str),
    Ack(&'a str),
    Error,
    Synced,
    /// Engine.IO ping: answer `3`.
    Ping,
    Other,
}

/// Sorts a received frame by looking at its first bytes instead of decoding it into a
/// `chatnode_protocol::ServerFrame`, for two reasons:
/// - Cost, measured: on a `message` event like the bench's (~440 bytes), this takes ~80 ns and
///   a full `serde_json::from_str::<ServerFrame>` ~1.1 µs (release build, this 2-core machine).
///   The generator reads up to ~195,000 deliveries/s in the fan-out runs: ~0.2 core-seconds per
///   second decoding, taken from the same two cores as the server under test, against ~0.015.
/// - The Node.js peers send only the subset of a `Message` the bench reads (no `attachments`,
///   `reply_to_seq`, `edited_at`, `deleted`), which a full decode would refuse.
///
/// What is sent is still typed (see [`send_frame`]). The tests below run this on frames the
/// protocol crate serializes, and `smoke` fails on any lost delivery or ack, so a renamed tag
/// cannot go unnoticed.
pub fn classify(proto: Proto, t: &str) -> Incoming<'_> {
    match proto {
        Proto::Json => {
            // ChatNode puts `type` first; the ws peer too. `contains` keeps it order-proof.
            let head = &t[..t.len().min(40)];
            if head.contains(r#""type":"message""#) {
                body_of(t).map_or(Incoming::Other, Incoming::Message)
            } else if head.contains(r#""type":"ack""#) {
                body_of(t).map_or(Incoming::Other, Incoming::Ack)
            } else if head.contains(r#""type":"error""#) {
                Incoming::Error
            } else if head.contains(r#""type":"synced""#) {
                Incoming::Synced
            } else {
                Incoming::Other
            }
        }
        Proto::EngineIo => {
            if t.starts_with(r#"42["message""#) {
                body_of(t).map_or(Incoming::Other, Incoming::Message)
            } else if t.starts_with(r#"42["ack""#) {
                body_of(t).map_or(Incoming::Other, Incoming::Ack)
            } else if t.starts_with(r#"42["error"#) {
                Incoming::Error
            } else if t == "2" {
                Incoming::Ping
            } else {
                Incoming::Other
            }
        }
    }
}

fn body_of(t: &str) -> Option<&str> {
    let start = t.find(r#""body":""#)? + 8;
    let len = t[start..].find('"')?;
    Some(&t[start..start + len])
}

fn number_after(t: &str, key: &str) -> Option<i64> {
    let start = t.find(key)? + key.len();
    let digits: String = t[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The send time the generator scheduled and the sending connection, carried in the body as
/// `t<micros> s<connection> …`.
pub fn body_stamp(body: &str) -> Option<(u64, usize)> {
    let rest = body.strip_prefix('t')?;
    let (t, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('s')?;
    let end = rest.find(' ').unwrap_or(rest.len());
    Some((t.parse().ok()?, rest[..end].parse().ok()?))
}

/// Padding that makes a body about as long as a typical chat line (~70 bytes).
const PAD: &str = "the quick brown fox jumps over the lazy dog 0123456789";

pub fn make_body(scheduled_us: u64, conn: usize) -> String {
    format!("t{scheduled_us} s{conn} {PAD}")
}

const SHARDS: usize = 8;

/// Counters and latency histograms shared by every connection of a run.
pub struct Shared {
    pub epoch: Instant,
    pub delivered: AtomicU64,
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    pub synced: AtomicU64,
    deliver: Vec<Mutex<Histogram<u64>>>,
    ack: Vec<Mutex<Histogram<u64>>>,
    pub closes: Mutex<HashMap<u16, u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            epoch: Instant::now(),
            delivered: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            deliver: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
            ack: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
            closes: Mutex::new(HashMap::new()),
        }
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn record(&self, hists: &[Mutex<Histogram<u64>>], shard: usize, t: u64) {
        let lat = self.now_us().saturating_sub(t).max(1);
        let mut h = hists[shard % SHARDS].lock().expect("histogram lock");
        let _ = h.record(lat.min(120_000_000));
    }

    /// Empties the histograms (between steps).
    pub fn reset(&self) {
        for h in self.deliver.iter().chain(self.ack.iter()) {
            h.lock().expect("histogram lock").reset();
        }
    }

    pub fn delivery_histogram(&self) -> Histogram<u64> {
        merge(&self.deliver)
    }

    pub fn ack_histogram(&self) -> Histogram<u64> {
        merge(&self.ack)
    }
}

fn merge(hists: &[Mutex<Histogram<u64>>]) -> Histogram<u64> {
    let mut out = histogram();
    for h in hists {
        let _ = out.add(&*h.lock().expect("histogram lock"));
    }
    out
}

pub enum Cmd {
    Send(String),
    /// Drop the socket without a closing handshake (a lost network).
    Drop,
}

/// Owns one authenticated socket: writes what it is told, reads and records everything.
pub async fn run(
    mut ws: Ws,
    proto: Proto,
    me: usize,
    shared: std::sync::Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Cmd::Drop) => return,
                // Every handle gone: the run is over; close politely.
                None => {
                    let _ = ws.close(None).await;
                    return;
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => match classify(proto, &t) {
                    Incoming::Message(body) => match body_stamp(body) {
                        // ChatNode also sends the event to the sending socket (it has the ack
                        // already); only other sockets count as deliveries.
                        Some((_, from)) if from == me => {}
                        Some((t, _)) => {
                            shared.delivered.fetch_add(1, Ordering::Relaxed);
                            shared.record(&shared.deliver, me, t);
                        }
                        None => {}
                    },
                    Incoming::Ack(body) => {
                        shared.acked.fetch_add(1, Ordering::Relaxed);
                        if let Some((t, _)) = body_stamp(body) {
                            shared.record(&shared.ack, me, t);
                        }
                    }
                    Incoming::Error => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Incoming::Synced => {
                        shared.synced.fetch_add(1, Ordering::Relaxed);
                    }
                    Incoming::Ping => {
                        let _ = ws.send(Message::text("3")).await;
                    }
                    Incoming::Other => {}
                },
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    *shared.closes.lock().expect("closes lock").entry(code).or_default() += 1;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    *shared.closes.lock().expect("closes lock").entry(1006).or_default() += 1;
                    break;
                }
            }
        }
    }
    // The socket is gone; keep draining commands so senders never block on us.
    while let Some(cmd) = rx.recv().await {
        if matches!(cmd, Cmd::Drop) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use chatnode_protocol::{ErrorCode, Message as ChatMessage, MessageKind, ServerFrame, User};

    use super::*;

    fn message(body: &str) -> ChatMessage {
        ChatMessage {
            id: "m".into(),
            conversation_id: "c".into(),
            seq: 7,
            sender_id: "u".into(),
            client_id: "k".into(),
            kind: MessageKind::Text,
            body: body.into(),
            attachments: vec![],
            reply_to_seq: None,
            created_at: "2026-11-29T00:00:00Z".into(),
            edited_at: None,
            deleted: false,
            reactions: vec![],
            mentions: vec![],
            via_webhook: None,
        }
    }

    /// The fast path reads frames as the protocol crate writes them.
    #[test]
    fn classify_agrees_with_the_protocol_serialization() {
        let body = make_body(1234, 5);
        let json = |f: &ServerFrame| serde_json::to_string(f).unwrap();
        let event = json(&ServerFrame::Message {
            message: message(&body),
            stream_pos: Some(9),
        });
        assert!(matches!(classify(Proto::Json, &event), Incoming::Message(b) if b == body));
        let ack = json(&ServerFrame::Ack {
            client_id: "k".into(),
            message: message(&body),
        });
        assert!(matches!(classify(Proto::Json, &ack), Incoming::Ack(b) if b == body));
        assert_eq!(body_stamp(&body), Some((1234, 5)));
        let error = json(&ServerFrame::Error {
            client_id: Some("k".into()),
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
        });
        assert!(matches!(classify(Proto::Json, &error), Incoming::Error));
        let synced = json(&ServerFrame::Synced { stream_pos: 3 });
        assert!(matches!(classify(Proto::Json, &synced), Incoming::Synced));
        let ready = json(&ServerFrame::Ready {
            user: User {
                id: "u".into(),
                username: "u".into(),
                display_name: "U".into(),
                avatar_url: None,
                bio: None,
                online: true,
                last_seen_at: None,
                bot: false,
            },
            stream_pos: 42,
        });
        assert!(ready.contains(r#""type":"ready""#));
        assert_eq!(number_after(&ready, r#""stream_pos":"#), Some(42));
    }

    #[test]
    fn sent_frames_are_protocol_frames() {
        let text = send_frame(Proto::Json, "c", "k1", "hi \"there\"");
        assert_eq!(
            serde_json::from_str::<ClientFrame>(&text).unwrap(),
            ClientFrame::Send {
                conversation_id: "c".into(),
                client_id: "k1".into(),
                body: "hi \"there\"".into(),
                kind: None,
                attachment_ids: None,
                reply_to_seq: None,
            }
        );
        let eio = send_frame(Proto::EngineIo, "c", "k1", "hi");
        let payload = eio.strip_prefix(r#"42["send","#).unwrap().strip_suffix(']');
        let v: serde_json::Value = serde_json::from_str(payload.unwrap()).unwrap();
        assert_eq!(
            (v["conversation_id"].as_str(), v["body"].as_str()),
            (Some("c"), Some("hi"))
        );
        assert_eq!(
            serde_json::from_str::<ClientFrame>(&sync_frame(41)).unwrap(),
            ClientFrame::Sync { since: 41 }
        );
    }
}
