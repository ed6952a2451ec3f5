//! The WebSocket opening handshake and closing handshake as RFC 6455 has them, spoken byte by
//! byte over a plain TCP socket (a WebSocket library would refuse to send the broken cases).

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// Sends an upgrade request with `key`; returns the response head and the socket.
async fn upgrade(server: &TestServer, key: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(&server.addr).await.unwrap();
    let req = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n",
        server.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "connection closed in the response head: {head:?}");
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), s)
}

/// A masked client frame with FIN set.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Reads server frames until a Close; returns its payload.
async fn read_close(s: &mut TcpStream) -> Vec<u8> {
    loop {
        let (opcode, payload) = read_frame(s).await;
        if opcode == 0x8 {
            return payload;
        }
    }
}

/// The next server frame: its opcode and payload.
async fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    {
        let mut h = [0u8; 2];
        tokio::time::timeout(WAIT, s.read_exact(&mut h))
            .await
            .expect("a frame in time")
            .expect("a frame before the end of the stream");
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).await.unwrap();
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                s.read_exact(&mut l).await.unwrap();
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.unwrap();
        (h[0] & 0x0f, payload)
    }
}

fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

async fn authenticated(server: &TestServer) -> TcpStream {
    let (client, _) = register(server, "closer").await;
    let token = client.access_token().expect("a session");
    let (head, mut s) = upgrade(server, "dGhlIHNhbXBsZSBub25jZQ==").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let auth = serde_json::json!({"type": "auth", "token": token}).to_string();
    s.write_all(&frame(0x1, auth.as_bytes())).await.unwrap();
    s
}

#[tokio::test]
async fn frames_pipelined_behind_auth_in_one_segment_are_all_handled() {
    let server = TestServer::start().await;
    let (client, _) = register(&server, "pipeliner").await;
    let token = client.access_token().expect("a session");
    let (head, mut s) = upgrade(&server, "dGhlIHNhbXBsZSBub25jZQ==").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let auth = serde_json::json!({"type": "auth", "token": token}).to_string();
    let mut bytes = frame(0x1, auth.as_bytes());
    bytes.extend(frame(0x1, br#"{"type":"sync","since":0}"#));
    bytes.extend(frame(0x1, br#"{"type":"ping"}"#));
    s.write_all(&bytes).await.unwrap();
    let mut types = Vec::new();
    while types.len() < 3 {
        let (opcode, payload) = read_frame(&mut s).await;
        assert_eq!(opcode, 0x1);
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        types.push(v["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(types, ["ready", "synced", "pong"]);
}

#[tokio::test]
async fn the_key_must_be_a_base64_nonce_of_16_bytes() {
    let server = TestServer::start().await;
    let (head, _) = upgrade(&server, "dGhlIHNhbXBsZSBub25jZQ==").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the accept value of RFC 6455 §1.3: {head}"
    );
    for bad in [
        "short",
        "dGhlIHNhbXBsZQ==",
        "dGhlIHNhbXBsZSBub25jZSE=",
        "!!!!",
    ] {
        let (head, _) = upgrade(&server, bad).await;
        assert!(head.starts_with("HTTP/1.1 400"), "key {bad:?}: {head}");
    }
}

#[tokio::test]
async fn the_clients_close_code_is_echoed() {
    let server = TestServer::start().await;
    for code in [1000u16, 1001, 3000, 4000, 4999] {
        let mut s = authenticated(&server).await;
        s.write_all(&frame(0x8, &code.to_be_bytes())).await.unwrap();
        let answer = read_close(&mut s).await;
        assert_eq!(close_code(&answer), Some(code), "echo of {code}");
    }
    // A Close without a code is answered without one.
    let mut s = authenticated(&server).await;
    s.write_all(&frame(0x8, b"")).await.unwrap();
    let answer = read_close(&mut s).await;
    assert_eq!(answer, Vec::<u8>::new());
}

#[tokio::test]
async fn close_codes_the_rfc_forbids_on_the_wire_are_a_protocol_error() {
    let server = TestServer::start().await;
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000] {
        let mut s = authenticated(&server).await;
        s.write_all(&frame(0x8, &code.to_be_bytes())).await.unwrap();
        let answer = read_close(&mut s).await;
        assert_eq!(close_code(&answer), Some(1002), "close code {code}");
    }
    // The server stays healthy.
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.client().healthz().await.unwrap();
}
