//! Accepting connections and serving HTTP/1.1 on them, plain TCP or TLS alike: one accept
//! loop, one task tracker, one header timeout and one drain for both.
//!
//! Why not `axum::serve`: it hands hyper the socket wrapped in a private type (to sniff the
//! HTTP version), so after a WebSocket upgrade the gateway could not get the TCP stream back
//! and had to go through buffered generic I/O: two system calls per frame written, a read
//! buffer per socket. Served here with hyper's HTTP/1 connection directly, the upgraded
//! stream comes back as the `TcpStream` it is (see `ws::transport`). A TLS connection is
//! handshaken on its own task (bounded by the header timeout), then served the same way.
//!
//! Every connection task belongs to the server's `TaskTracker`, so shutdown can wait for
//! them; on shutdown the accept loop stops and each HTTP connection finishes its request in
//! flight and closes (upgraded WebSockets are closed by the gateway, with 1001).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to send a request's headers (slow clients holding
/// connections open without ever finishing a request are closed).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS side of the listener, from a PEM certificate chain and private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let what = || {
        format!(
            "cannot load the TLS certificate {} and key {}",
            cert.display(),
            key.display()
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(what)?;
    if chain.is_empty() {
        anyhow::bail!("{}: no certificate in {}", what(), cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(what)?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(what)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until `stop` is cancelled; each is served on a task of `tasks`
/// (handshaken first when `tls` is given).
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tasks: TaskTracker,
    stop: CancellationToken,
    tls: Option<TlsAcceptor>,
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
        match &tls {
            None => {
                tasks.spawn(connection(stream, addr, app.clone(), stop.clone()));
            }
            Some(tls) => {
                tasks.spawn(tls_connection(
                    tls.clone(),
                    stream,
                    addr,
                    app.clone(),
                    stop.clone(),
                ));
            }
        }
    }
}

/// Handshakes a TLS connection (within the header timeout), then serves it.
async fn tls_connection(
    tls: TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    app: Router,
    stop: CancellationToken,
) {
    let handshake = tokio::select! {
        _ = stop.cancelled() => return,
        r = tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream)) => r,
    };
    match handshake {
        Ok(Ok(stream)) => connection(stream, addr, app, stop).await,
        Ok(Err(e)) => tracing::debug!(error = %e, %addr, "TLS handshake failed"),
        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
    }
}

async fn connection<S>(stream: S, addr: SocketAddr, app: Router, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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
