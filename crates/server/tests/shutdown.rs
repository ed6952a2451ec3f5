//! Shutting down under traffic: SIGTERM while clients keep sending over WebSockets and REST.
//! Every send the server acknowledged must be in the database afterwards, the process must
//! exit 0, and nothing may be logged as an error on the way out.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chatnode_client::protocol::{ClientFrame, ErrorCode, ServerFrame};
use chatnode_client::{Client, WsConnection};
use common::*;

fn send(conv: &str, client_id: &str) -> ClientFrame {
    ClientFrame::Send {
        conversation_id: conv.into(),
        client_id: client_id.into(),
        body: format!("during shutdown {client_id}"),
        kind: None,
        attachment_ids: None,
        reply_to_seq: None,
    }
}

/// What a sender saw: the client_ids acknowledged, and how many were refused.
#[derive(Default)]
struct Seen {
    acked: HashSet<String>,
    refused: usize,
}

fn note(seen: &mut Seen, frame: ServerFrame) {
    match frame {
        ServerFrame::Ack { client_id, .. } => {
            seen.acked.insert(client_id);
        }
        ServerFrame::Error {
            code: ErrorCode::Unavailable,
            ..
        } => seen.refused += 1,
        ServerFrame::Error { code, message, .. } => panic!("unexpected error {code:?}: {message}"),
        _ => {}
    }
}

/// Sends as fast as the socket takes them until the server closes it; returns what came back.
async fn ws_sender(mut ws: WsConnection, conv: String, tag: usize) -> (Seen, Option<u16>) {
    let mut seen = Seen::default();
    for i in 0.. {
        if ws
            .send_frame(send(&conv, &format!("w{tag}-{i}")))
            .await
            .is_err()
        {
            break;
        }
        // Take whatever answers are already there, without slowing the sending down much.
        let mut open = true;
        loop {
            match ws.next_frame(Duration::from_millis(1)).await {
                Ok(Some(f)) => note(&mut seen, f),
                Ok(None) => break,
                Err(_) => {
                    open = false;
                    break;
                }
            }
        }
        if !open {
            break;
        }
    }
    let code = ws.wait_close(WAIT).await.ok().and_then(|c| c.code);
    for f in ws.take_buffered() {
        note(&mut seen, f);
    }
    (seen, code)
}

/// REST sends until the server stops answering.
async fn rest_sender(c: Client, conv: String) -> Seen {
    let mut seen = Seen::default();
    for i in 0.. {
        let id = format!("r-{i}");
        match c.send_text(&conv, &id, "rest during shutdown").await {
            Ok(_) => {
                seen.acked.insert(id);
            }
            Err(e) if e.status() == Some(503) => seen.refused += 1,
            // The server is gone (connection refused or reset): stop.
            Err(_) => break,
        }
    }
    seen
}

#[tokio::test]
async fn sigterm_under_load_loses_no_acked_message_and_logs_no_error() {
    let mut server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let mut senders = Vec::new();
    for tag in 0..3 {
        let ws = a.connect_ws().await.unwrap();
        senders.push(tokio::spawn(ws_sender(ws, conv.id.clone(), tag)));
    }
    let rest = tokio::spawn(rest_sender(b.clone(), conv.id.clone()));
    // Let traffic build up, then stop the server in the middle of it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (server, status)
    });
    let mut acked = HashSet::new();
    let mut refused = 0;
    for s in senders {
        let (seen, code) = s.await.unwrap();
        assert_eq!(code, Some(1001), "sockets close with 1001");
        acked.extend(seen.acked);
        refused += seen.refused;
    }
    let seen = rest.await.unwrap();
    acked.extend(seen.acked);
    refused += seen.refused;
    let (mut server, status) = status.await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(acked.len() > 100, "only {} sends were acked", acked.len());

    // Nothing went wrong on the way out.
    let log = server.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("\"level\":\"ERROR\"")
                || l.contains("still open")
                || l.contains("still running")
        })
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(log.contains("shut down cleanly"), "{log}");

    // Every acknowledged send is stored.
    server.restart().await;
    let reader = Client::new(&server.url());
    reader.set_tokens(a.access_token().unwrap(), a.refresh_token().unwrap());
    let mut stored = HashSet::new();
    let mut before = None;
    loop {
        let page = reader
            .messages(&conv.id, before, None, Some(200))
            .await
            .unwrap();
        for m in &page.messages {
            stored.insert(m.client_id.clone());
        }
        match page.next_cursor {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    let missing: Vec<&String> = acked.iter().filter(|c| !stored.contains(*c)).collect();
    assert!(missing.is_empty(), "acked but not stored: {missing:?}");
    println!(
        "{} acked, {} refused, {} stored",
        acked.len(),
        refused,
        stored.len()
    );
}

/// "Last seen" times are written in the background, coalesced per user (a storm of closes
/// must not queue a database write per socket); a socket closed just before SIGTERM still
/// has its time written, by the flush at shutdown.
#[tokio::test]
async fn the_last_seen_time_of_a_socket_closed_just_before_sigterm_is_kept() {
    let mut server = TestServer::start().await;
    let (a, au, b, _bu, _conv) = friends_with_direct(&server).await;
    let ws = a.connect_ws().await.unwrap();
    // Long enough that the time noted on connecting differs from the one on closing.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let closed_at = time::OffsetDateTime::now_utc();
    ws.close().await.unwrap();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    server.restart().await;
    // A fresh client: b's pooled connection went with the old process.
    let b = {
        let fresh = Client::new(&server.url());
        fresh.set_tokens(b.access_token().unwrap(), b.refresh_token().unwrap());
        fresh
    };
    let seen = b.get_user(&au.id).await.unwrap();
    let at = seen.last_seen_at.expect("a last-seen time");
    let at =
        time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(
        at >= closed_at - Duration::from_millis(200),
        "last seen {at}, closed at {closed_at}: the close was not recorded"
    );
}
