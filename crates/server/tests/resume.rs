//! The client library's reconnecting session against a real server that dies (SIGKILL) and
//! comes back: every acked message reaches the receiver exactly once, in order.

mod common;

use std::time::{Duration, Instant};

use chatnode_client::protocol::ServerFrame;
use chatnode_client::{Backoff, Client, ResilientConfig, ResilientWs};
use common::*;

#[tokio::test]
async fn resilient_session_resumes_after_a_crash_with_nothing_missing_or_doubled() {
    let mut server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let config = ResilientConfig {
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(500),
        },
        ..Default::default()
    };
    let mut rx = ResilientWs::start(b.clone(), None, config);
    // Wait until the session is up.
    let deadline = Instant::now() + WAIT;
    while !rx.is_connected() {
        assert!(
            Instant::now() < deadline,
            "resilient session did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for i in 0..40 {
        a.send_text(&conv.id, &format!("before-{i}"), &format!("before {i}"))
            .await
            .unwrap();
    }
    server.kill9();
    server.restart().await;
    // The sender's HTTP pool still points at the dead process: use a fresh one.
    let a2 = Client::new(&server.url());
    a2.set_tokens(a.access_token().unwrap(), a.refresh_token().unwrap());
    for i in 0..40 {
        a2.send_text(&conv.id, &format!("after-{i}"), &format!("after {i}"))
            .await
            .unwrap();
    }

    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seqs.len() < 80 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.next_frame(left).await.unwrap() {
            Some(ServerFrame::Message { message, .. }) => seqs.push(message.seq),
            Some(_) => {}
            None => panic!("timed out after {} messages: {seqs:?}", seqs.len()),
        }
    }
    assert_eq!(seqs, (1..=80).collect::<Vec<_>>());
    assert!(rx.connects() >= 2, "it reconnected");
    // Nothing more arrives (no duplicates from the replay).
    let extra = rx
        .next_matching(Duration::from_millis(500), |f| {
            matches!(f, ServerFrame::Message { .. })
        })
        .await
        .unwrap();
    assert!(extra.is_none(), "{extra:?}");
    rx.close().await;
}
