//! The message writer under failure (issue 20 §6), injected with `CHATNODE_FAILPOINTS` into
//! the real server: every sender gets an answer at once (never a wait for an ack that does
//! not come), `/readyz` says what is wrong, the writer is started again after a panic, and
//! one that keeps failing stops the process with a non-zero exit for a supervisor to restart.
//! Runs on SQLite (the writer thread) and, with `CHATNODE_TEST_PG`, on PostgreSQL (the task).

mod common;

use std::time::{Duration, Instant};

use chatnode_client::ClientError;
use chatnode_client::protocol::{
    ClientFrame, ErrorCode, SendMessageRequest, ServerFrame, close_code,
};
use common::*;

/// Two friends and their direct conversation on `server`.
async fn pair(server: &TestServer) -> (chatnode_client::Client, String) {
    let (a, _, _, _, conv) = friends_with_direct(server).await;
    (a, conv.id)
}

fn unavailable(r: Result<chatnode_client::protocol::Message, ClientError>, what: &str) {
    match r {
        Err(ClientError::Frame { code, .. })
        | Err(ClientError::Api {
            code: Some(code), ..
        }) => {
            assert_eq!(code, ErrorCode::Unavailable, "{what}")
        }
        other => panic!("{what}: expected unavailable, got {other:?}"),
    }
}

async fn readyz_problem(server: &TestServer) -> Option<String> {
    match server.client().readyz().await {
        Ok(_) => None,
        Err(ClientError::Api {
            status: 503,
            message,
            ..
        }) => Some(message),
        Err(e) => panic!("readyz: {e}"),
    }
}

#[tokio::test]
async fn a_writer_that_panics_answers_at_once_and_is_started_again() {
    let server =
        TestServer::start_with_env(&[], &[("CHATNODE_FAILPOINTS", "writer-panic=1")]).await;
    let (a, conv) = pair(&server).await;
    let mut ws = a.connect_ws().await.unwrap();
    let started = Instant::now();
    unavailable(
        ws.send_message(&conv, "c1", "first").await,
        "the panicking batch",
    );
    assert!(started.elapsed() < WAIT, "answered at once");
    let problem = readyz_problem(&server)
        .await
        .expect("not ready after a panic");
    assert!(problem.contains("message writer"), "{problem}");
    // The same client_id again: committed by the restarted writer, once.
    let m = ws.send_message(&conv, "c1", "first").await.unwrap();
    assert_eq!(m.body, "first");
    assert_eq!(
        readyz_problem(&server).await,
        None,
        "ready after a good batch"
    );
    let again = ws.send_message(&conv, "c1", "first").await.unwrap();
    assert_eq!(again.id, m.id, "idempotent across the restart");
    let metrics = server.client().metrics().await.unwrap();
    assert!(
        metrics.contains("chatnode_message_writer_failures_total 1"),
        "{metrics}"
    );
    assert!(server.log().contains("panicked"), "the panic is logged");
}

#[tokio::test]
async fn a_batch_with_fewer_results_than_jobs_answers_every_job() {
    let server =
        TestServer::start_with_env(&[], &[("CHATNODE_FAILPOINTS", "writer-short=1")]).await;
    let (a, conv) = pair(&server).await;
    // A REST send and a WebSocket send, both answered although no result came back.
    let req = SendMessageRequest {
        client_id: "r1".into(),
        body: "over rest".into(),
        ..Default::default()
    };
    let rest = a.send_message(&conv, &req).await.map(|(m, _)| m);
    let mut ws = a.connect_ws().await.unwrap();
    let socket = ws.send_message(&conv, "w1", "over ws").await;
    // One of them met the failpoint; the other committed.
    let failed = [rest.is_err(), socket.is_err()];
    assert_eq!(
        failed.iter().filter(|f| **f).count(),
        1,
        "{rest:?} {socket:?}"
    );
    if rest.is_err() {
        unavailable(rest, "REST send");
    } else {
        unavailable(socket, "WebSocket send");
    }
}

#[tokio::test]
async fn a_failing_database_makes_readyz_say_so_until_a_batch_succeeds() {
    let server =
        TestServer::start_with_env(&[], &[("CHATNODE_FAILPOINTS", "writer-error=1")]).await;
    let (a, conv) = pair(&server).await;
    let mut ws = a.connect_ws().await.unwrap();
    match ws.send_message(&conv, "e1", "lost").await {
        Err(ClientError::Frame { code, .. }) => assert_eq!(code, ErrorCode::Internal),
        other => panic!("expected an internal error, got {other:?}"),
    }
    let problem = readyz_problem(&server).await.expect("not ready");
    assert!(problem.contains("message writer failing"), "{problem}");
    ws.send_message(&conv, "e1", "lost").await.unwrap();
    assert_eq!(readyz_problem(&server).await, None);
}

#[tokio::test]
async fn a_writer_that_keeps_panicking_stops_the_process_non_zero() {
    let mut server =
        TestServer::start_with_env(&[], &[("CHATNODE_FAILPOINTS", "writer-panic=always")]).await;
    let (a, conv) = pair(&server).await;
    let mut ws = a.connect_ws().await.unwrap();
    // Each send is answered at once, however the writer fares.
    for i in 0..=MAX_RESTARTS {
        let r = ws.send_message(&conv, &format!("p{i}"), "doomed").await;
        match r {
            Err(ClientError::Frame { code, .. }) => assert_eq!(code, ErrorCode::Unavailable),
            // The last one may meet the socket closing as the server shuts down.
            Err(ClientError::Closed { .. } | ClientError::Ws(_)) => break,
            other => panic!("send {i}: {other:?}"),
        }
    }
    let status = server
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("the server exits by itself");
    assert!(!status.success(), "{status:?}");
    let log = server.log();
    assert!(log.contains("message writer stopped"), "{log}");
}

/// The server's `messages::MAX_RESTARTS`: panics within a minute after which the writer
/// stays down.
const MAX_RESTARTS: usize = 3;

/// A token the database cannot check just now (the session lookup fails) is not "invalid":
/// the client is told to try again later (error `unavailable`, close 1013), not 4001, which
/// would make it refresh or drop a valid token. The same token works on the next try.
#[tokio::test]
async fn a_token_the_database_cannot_check_is_try_again_later_not_unauthenticated() {
    let server =
        TestServer::start_with_env(&[], &[("CHATNODE_FAILPOINTS", "ws-auth-unavailable=1")]).await;
    let (a, conv) = pair(&server).await;
    let mut ws = a.connect_ws_unauthenticated().await.unwrap();
    ws.send_frame(ClientFrame::Auth {
        token: a.access_token().unwrap(),
    })
    .await
    .unwrap();
    match ws.next_frame(WAIT).await {
        Ok(Some(ServerFrame::Error { code, .. })) => assert_eq!(code, ErrorCode::Unavailable),
        other => panic!("expected an unavailable error frame, got {other:?}"),
    }
    let closed = ws.wait_close(WAIT).await.unwrap();
    assert_eq!(closed.code, Some(close_code::TRY_AGAIN_LATER));
    let mut ws = a.connect_ws().await.unwrap();
    ws.send_message(&conv, "t1", "after the retry")
        .await
        .unwrap();
    // A forged token is still refused as unauthenticated.
    let mut bad = a.connect_ws_unauthenticated().await.unwrap();
    bad.send_frame(ClientFrame::Auth {
        token: "forged".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        bad.wait_close(WAIT).await.unwrap().code,
        Some(close_code::UNAUTHENTICATED)
    );
}
