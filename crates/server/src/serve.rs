//! Accepting plain-TCP connections and serving HTTP/1.1 on them (TLS goes through
//! `axum-server`, see `Server::run`).
//!
//! Why not `axum::serve`: it hands hyper the socket wrapped in a private type (to sniff the
//! HTTP version), so after a WebSocket upgrade the gateway could not get the TCP stream back
//! and had to go through buffered generic I/O: two system calls per frame written, a read
//! buffer per socket. Served here with hyper's HTTP/1 connection directly, the upgraded
//! stream comes back as the `TcpStream` it is (see `ws::transport`).
//!
//! Every connection task belongs to the server's `TaskTracker`, so shutdown can wait for
//! them; on shutdown the accept loop stops and each HTTP connection finishes its request in
//! flight and closes (upgraded WebSockets are closed by the gateway, with 1001).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to send a request's headers (slow clients holding
/// connections open without ever finishing a request are closed).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections until `stop` is cancelled; each is served on a task of `tasks`.
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tasks: TaskTracker,
    stop: CancellationToken,
) {
    loop {
        let (stream, addr) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before accept): wait a
                    // moment instead of spinning; established connections are unaffected.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Chat frames are small and often sent back to back (an event, then an ack); with
        // Nagle the second waits for the peer's delayed ACK (~40 ms).
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(stream, addr, app.clone(), stop.clone()));
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    app: Router,
    stop: CancellationToken,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(addr));
        app.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}
