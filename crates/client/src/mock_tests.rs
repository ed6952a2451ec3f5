//! Tests of the client against a scripted in-process mock server (raw HTTP answers and
//! tokio-tungstenite WebSockets), so the WebSocket and reconnection logic is checked without
//! the real server. Tests against the real server live in `crates/server/tests`.

use std::time::Duration;

use chatnode_protocol::{ErrorCode, Message, MessageKind, SendMessageRequest, ServerFrame, User};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::{Backoff, Client, ClientError, FriendRequestOutcome, ResilientConfig, ResilientWs};

const T: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<TcpStream>;
/// Answers one HTTP request: (method, path with query, body) → (status, body).
type HttpFn = fn(&str, &str, &str) -> (u16, String);

/// Starts a mock server; WebSocket connections are handed to the test in order.
async fn mock(http: HttpFn) -> (String, mpsc::UnboundedReceiver<Ws>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let head = peek_head(&stream).await;
                if head.to_ascii_lowercase().contains("upgrade: websocket") {
                    if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                        let _ = tx.send(ws);
                    }
                } else {
                    serve_http(stream, http).await;
                }
            });
        }
    });
    (base, rx)
}

async fn peek_head(stream: &TcpStream) -> String {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = stream.peek(&mut buf).await.unwrap();
        let s = String::from_utf8_lossy(&buf[..n]).into_owned();
        if s.contains("\r\n\r\n") || n == 0 {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn serve_http(mut stream: TcpStream, http: HttpFn) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, content_length) = loop {
        let n = stream.read(&mut buf).await.unwrap();
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(i) = text.find("\r\n\r\n") {
            let len = text[..i]
                .lines()
                .find_map(|l| {
                    let l = l.to_ascii_lowercase();
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0usize);
            break (i + 4, len);
        }
    };
    while data.len() < head_end + content_length {
        let n = stream.read(&mut buf).await.unwrap();
        data.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&data).into_owned();
    let mut first = text.lines().next().unwrap().split(' ');
    let (method, path) = (first.next().unwrap(), first.next().unwrap());
    let (status, body) = http(method, path, &text[head_end..]);
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await.unwrap();
    let _ = stream.shutdown().await;
}

fn no_http(_: &str, _: &str, _: &str) -> (u16, String) {
    (404, String::new())
}

async fn recv_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(WsMessage::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(WsMessage::Close(_))) | None => return Value::Null,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("mock ws error: {e}"),
        }
    }
}

async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(WsMessage::Text(v.to_string().into()))
        .await
        .unwrap();
}

async fn close_with(ws: &mut Ws, code: u16) {
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "bye".into(),
        }))
        .await;
}

fn user() -> User {
    User {
        id: "u1".into(),
        username: "alice".into(),
        display_name: "Alice".into(),
        avatar_url: None,
        bio: None,
        online: true,
        last_seen_at: None,
        bot: false,
    }
}

fn message(seq: i64, client_id: &str, body: &str) -> Message {
    Message {
        id: format!("m{seq}"),
        conversation_id: "c1".into(),
        seq,
        sender_id: "u1".into(),
        client_id: client_id.into(),
        kind: MessageKind::Text,
        body: body.into(),
        attachments: vec![],
        reply_to_seq: None,
        created_at: "2025-01-01T00:00:00Z".into(),
        edited_at: None,
        deleted: false,
        reactions: vec![],
        mentions: vec![],
        via_webhook: None,
    }
}

fn event(pos: i64) -> Value {
    json!({"type":"message","message":message(pos, &format!("e{pos}"), "x"),"stream_pos":pos})
}

/// Accepts the next WebSocket, checks `auth` carries `token`, answers `ready`.
async fn accept_auth(rx: &mut mpsc::UnboundedReceiver<Ws>, token: &str, pos: i64) -> Ws {
    let mut ws = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    let auth = recv_json(&mut ws).await;
    assert_eq!(auth, json!({"type":"auth","token":token}));
    send_json(
        &mut ws,
        json!({"type":"ready","user":user(),"stream_pos":pos}),
    )
    .await;
    ws
}

#[tokio::test]
async fn ws_auth_ack_buffering_unknown_frames_and_close_codes() {
    let (base, mut rx) = mock(no_http).await;
    let client = Client::new(&base).with_token("tok");
    let server = tokio::spawn(async move {
        let mut ws = accept_auth(&mut rx, "tok", 3).await;
        let send = recv_json(&mut ws).await;
        assert_eq!(send["type"], "send");
        assert_eq!(send["conversation_id"], "c1");
        assert_eq!(send["body"], "hello");
        send_json(
            &mut ws,
            json!({"type":"typing","conversation_id":"c1","user_id":"u2","typing":true}),
        )
        .await;
        send_json(
            &mut ws,
            json!({"type":"reaction.added","stream_pos":20,"emoji":"+1"}),
        )
        .await;
        send_json(
            &mut ws,
            json!({"type":"ack","client_id":"other","message":message(1,"other","x")}),
        )
        .await;
        send_json(
            &mut ws,
            json!({"type":"ack","client_id":"k1","message":message(2,"k1","hello")}),
        )
        .await;
        let _ = recv_json(&mut ws).await;
        send_json(
            &mut ws,
            json!({"type":"error","client_id":"k2","code":"not_found","message":"no"}),
        )
        .await;
        close_with(&mut ws, 4008).await;
    });

    let mut conn = client.connect_ws().await.unwrap();
    assert_eq!(conn.ready().unwrap().stream_pos, 3);
    assert_eq!(conn.ready().unwrap().user.username, "alice");
    let m = conn.send_message("c1", "k1", "hello").await.unwrap();
    assert_eq!((m.seq, m.body.as_str()), (2, "hello"));
    assert_eq!(
        conn.last_stream_pos(),
        20,
        "unknown durable frames still count"
    );
    // Frames passed over while waiting for the ack come back in order.
    assert!(matches!(
        conn.next_frame(T).await.unwrap(),
        Some(ServerFrame::Typing { .. })
    ));
    assert!(matches!(
        conn.next_frame(T).await.unwrap(),
        Some(ServerFrame::Ack { client_id, .. }) if client_id == "other"
    ));
    let e = conn.send_message("c1", "k2", "again").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    assert!(matches!(e, ClientError::Frame { client_id: Some(ref c), .. } if c == "k2"));
    let e = conn.next_frame(T).await.unwrap_err();
    assert_eq!(e.close_code(), Some(4008));
    // The close is sticky.
    assert_eq!(
        conn.next_frame(T).await.unwrap_err().close_code(),
        Some(4008)
    );
    assert_eq!(conn.close_info().unwrap().code, Some(4008));
    assert!(conn.send_raw_text("x".into()).await.is_err());
    server.await.unwrap();
}

#[tokio::test]
async fn ws_auth_refusals_are_errors() {
    let (base, mut rx) = mock(no_http).await;
    let server = tokio::spawn(async move {
        let mut ws = rx.recv().await.unwrap();
        let _ = recv_json(&mut ws).await;
        close_with(&mut ws, 4001).await;
        let mut ws = rx.recv().await.unwrap();
        let _ = recv_json(&mut ws).await;
        send_json(
            &mut ws,
            json!({"type":"error","code":"unauthenticated","message":"bad token"}),
        )
        .await;
        // Never authenticates: the client must see the close via wait_close.
        let mut ws = rx.recv().await.unwrap();
        close_with(&mut ws, 4001).await;
    });
    let c = Client::new(&base).with_token("bad");
    let e = c.connect_ws().await.unwrap_err();
    assert_eq!(e.close_code(), Some(4001), "{e:?}");
    assert!(e.is_unauthenticated());
    let e = c.connect_ws().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthenticated), "{e:?}");
    let mut raw = c.connect_ws_unauthenticated().await.unwrap();
    assert_eq!(raw.wait_close(T).await.unwrap().code, Some(4001));
    server.await.unwrap();
}

#[tokio::test]
async fn ws_sync_collects_until_synced() {
    let (base, mut rx) = mock(no_http).await;
    let server = tokio::spawn(async move {
        let mut ws = accept_auth(&mut rx, "tok", 9).await;
        assert_eq!(recv_json(&mut ws).await, json!({"type":"sync","since":4}));
        for p in [5, 7] {
            send_json(&mut ws, event(p)).await;
        }
        send_json(&mut ws, json!({"type":"synced","stream_pos":9})).await;
        // Keep the socket open until the client is done.
        let _ = recv_json(&mut ws).await;
    });
    let mut conn = Client::new(&base)
        .with_token("tok")
        .connect_ws()
        .await
        .unwrap();
    let (frames, pos) = conn.sync(4).await.unwrap();
    assert_eq!(pos, 9);
    let positions: Vec<_> = frames.iter().filter_map(ServerFrame::stream_pos).collect();
    assert_eq!(positions, vec![5, 7]);
    assert_eq!(
        conn.next_frame(Duration::from_millis(50)).await.unwrap(),
        None
    );
    conn.close().await.unwrap();
    server.await.unwrap();
}

fn refresh_http(method: &str, path: &str, body: &str) -> (u16, String) {
    match (method, path) {
        ("POST", "/api/v1/auth/refresh") => {
            let v: Value = serde_json::from_str(body).unwrap();
            if v["refresh_token"] == "r1" {
                (
                    200,
                    json!({"access_token":"a2","refresh_token":"r2"}).to_string(),
                )
            } else {
                (
                    401,
                    json!({"error":{"code":"unauthenticated","message":"spent"}}).to_string(),
                )
            }
        }
        _ => (404, String::new()),
    }
}

#[tokio::test]
async fn resilient_session_reconnects_refreshes_resumes_and_dedups() {
    let (base, mut rx) = mock(refresh_http).await;
    let client = Client::new(&base);
    client.set_tokens("a1", "r1");
    let config = ResilientConfig {
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        ..Default::default()
    };
    let server = tokio::spawn(async move {
        // 1st connection: starts at `ready` (5), delivers 6 and 7, then the server restarts.
        let mut ws = accept_auth(&mut rx, "a1", 5).await;
        assert_eq!(recv_json(&mut ws).await, json!({"type":"sync","since":5}));
        send_json(&mut ws, json!({"type":"synced","stream_pos":5})).await;
        send_json(&mut ws, event(6)).await;
        send_json(&mut ws, event(7)).await;
        close_with(&mut ws, 1001).await;
        drop(ws);
        // 2nd: the access token has expired.
        let mut ws = rx.recv().await.unwrap();
        assert_eq!(recv_json(&mut ws).await["token"], "a1");
        close_with(&mut ws, 4001).await;
        drop(ws);
        // 3rd: refreshed token; resumes from 7. A live event (10) and a duplicate (7) arrive
        // interleaved with the replay (8, 9); ephemeral frames pass through during the sync.
        let mut ws = accept_auth(&mut rx, "a2", 12).await;
        assert_eq!(recv_json(&mut ws).await, json!({"type":"sync","since":7}));
        send_json(&mut ws, event(10)).await;
        send_json(
            &mut ws,
            json!({"type":"presence","user_id":"u2","online":true,"last_seen_at":null}),
        )
        .await;
        send_json(&mut ws, event(7)).await;
        send_json(&mut ws, event(8)).await;
        send_json(&mut ws, event(9)).await;
        send_json(&mut ws, json!({"type":"synced","stream_pos":9})).await;
        send_json(&mut ws, event(10)).await; // duplicate of the early live one
        send_json(&mut ws, event(11)).await;
        // The session forwards frames sent through it, and the ack of a send.
        let send = recv_json(&mut ws).await;
        assert_eq!(send["client_id"], "s1");
        send_json(
            &mut ws,
            json!({"type":"ack","client_id":"s1","message":message(4,"s1","hi")}),
        )
        .await;
        let _ = recv_json(&mut ws).await; // the close
    });

    let mut session = ResilientWs::start(client.clone(), None, config);
    let mut got = Vec::new();
    while got.len() < 9 {
        let f = session.next_frame(T).await.unwrap().expect("frame in time");
        got.push(match &f {
            ServerFrame::Synced { stream_pos } => format!("synced{stream_pos}"),
            ServerFrame::Presence { .. } => "presence".into(),
            other => format!("{}{}", other.type_name(), other.stream_pos().unwrap_or(-1)),
        });
    }
    assert_eq!(
        got,
        [
            "synced5",
            "message6",
            "message7",
            "presence",
            "message8",
            "message9",
            "message10",
            "synced9",
            "message11",
        ]
    );
    let req = SendMessageRequest {
        client_id: "s1".into(),
        body: "hi".into(),
        ..Default::default()
    };
    assert_eq!(session.send_message("c1", &req, T).await.unwrap().seq, 4);
    assert_eq!(session.last_stream_pos(), 11);
    assert_eq!(session.connects(), 2);
    assert_eq!(client.access_token().as_deref(), Some("a2"));
    assert_eq!(client.refresh_token().as_deref(), Some("r2"));
    session.close().await;
    server.await.unwrap();
}

#[tokio::test]
async fn resilient_session_stops_when_refresh_is_refused() {
    let (base, mut rx) = mock(refresh_http).await;
    let client = Client::new(&base);
    client.set_tokens("a1", "spent");
    let server = tokio::spawn(async move {
        let mut ws = rx.recv().await.unwrap();
        let _ = recv_json(&mut ws).await;
        close_with(&mut ws, 4001).await;
    });
    let mut session = client.resilient_ws(Some(3));
    assert_eq!(session.last_stream_pos(), 3);
    let e = session.next_frame(T).await.unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. }), "{e:?}");
    assert!(
        session.last_error().unwrap().contains("refresh"),
        "{:?}",
        session.last_error()
    );
    server.await.unwrap();
}

fn rest_http(method: &str, path: &str, body: &str) -> (u16, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match (method, path) {
        ("GET", "/api/v1/users/me") => (
            401,
            json!({"error":{"code":"unauthenticated","message":"token expired"}}).to_string(),
        ),
        ("POST", "/api/v1/friends/requests") if v["user_id"] == "u2" => {
            (200, json!({"friend":user()}).to_string())
        }
        ("POST", "/api/v1/friends/requests") => (
            201,
            json!({"id":"r1","from":user(),"to":user(),"created_at":"2025-01-01T00:00:00Z"})
                .to_string(),
        ),
        ("POST", "/api/v1/conversations/c%2F1/messages") => {
            let status = if v["client_id"] == "again" { 200 } else { 201 };
            (
                status,
                serde_json::to_string(&message(1, "x", "hi")).unwrap(),
            )
        }
        ("GET", "/api/v1/users?q=a+b&limit=2") => (
            200,
            json!({"users":[user()],"next_cursor":null}).to_string(),
        ),
        ("GET", "/healthz") => (200, "ok".into()),
        _ => (404, "plain not found".into()),
    }
}

#[tokio::test]
async fn rest_errors_outcomes_and_raw_calls() {
    let (base, _rx) = mock(rest_http).await;
    let c = Client::new(&base).with_token("tok");
    let e = c.me().await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(401), Some(ErrorCode::Unauthenticated))
    );
    let e = c.get_user("nobody").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), None));
    assert!(e.to_string().contains("plain not found"));

    match c.send_friend_request("u2").await.unwrap() {
        FriendRequestOutcome::Friends(u) => assert_eq!(u.id, "u1"),
        other => panic!("{other:?}"),
    }
    match c.send_friend_request("u3").await.unwrap() {
        FriendRequestOutcome::Requested(r) => assert_eq!(r.id, "r1"),
        other => panic!("{other:?}"),
    }
    let req = |cid: &str| SendMessageRequest {
        client_id: cid.into(),
        body: "hi".into(),
        ..Default::default()
    };
    assert!(c.send_message("c/1", &req("new")).await.unwrap().1);
    assert!(!c.send_message("c/1", &req("again")).await.unwrap().1);
    assert_eq!(
        c.search_users("a b", Some(2), None)
            .await
            .unwrap()
            .users
            .len(),
        1
    );
    assert_eq!(c.healthz().await.unwrap(), "ok");

    let (status, body) = c.raw(crate::Method::GET, "/users/me", None).await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, body) = c.raw(crate::Method::GET, "/nope", None).await.unwrap();
    assert_eq!(
        (status, body),
        (404, Value::String("plain not found".into()))
    );
    let r = c
        .raw_bytes(
            crate::Method::POST,
            "/friends/requests",
            Some("text/plain"),
            b"{".to_vec(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json().unwrap()["id"], "r1");
}

#[tokio::test]
async fn resilient_session_closes_promptly_while_the_server_is_down() {
    // Nothing listens on port 1: every attempt is refused and the session keeps backing off.
    let client = Client::new("http://127.0.0.1:1").with_token("a");
    let session = client.resilient_ws(None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!session.is_connected());
    assert_eq!(session.connects(), 0);
    assert!(session.last_error().is_some());
    let started = std::time::Instant::now();
    session.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
