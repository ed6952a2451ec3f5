//! ChatNode server as a library: [`Server::start`] opens storage and secrets, and
//! [`Server::run`] serves HTTP + WebSocket on a listener the caller bound, until the shutdown
//! future resolves. Tests bind port 0 and read the real port back.

pub(crate) mod auth;
pub(crate) mod bench_seed;
pub mod cli;
pub(crate) mod cluster;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod crypto;
pub(crate) mod domain;
pub(crate) mod encryption;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod failpoints;
pub mod fuzzing;
pub(crate) mod http;
pub(crate) mod hub;
pub(crate) mod last_seen;
pub(crate) mod limits;
pub(crate) mod media;
pub(crate) mod messages;
pub(crate) mod metrics;
pub(crate) mod oidc;
pub(crate) mod push;
pub(crate) mod search;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod store;
pub(crate) mod tasks;
pub(crate) mod time;
pub(crate) mod web;
pub(crate) mod ws;

pub use crate::config::Config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Auth;
use crate::cluster::Cluster;
use crate::domain::SessionId;
use crate::hub::Hub;
use crate::messages::Batcher;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tasks::Tasks;

/// Everything a request handler or connection task needs; shared behind an `Arc`.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub auth: Arc<Auth>,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    pub media: Arc<media::Media>,
    pub push: Arc<push::Notifier>,
    pub limits: limits::Limits,
    /// Permits for HTTP requests in flight (load shedding).
    pub inflight: Arc<tokio::sync::Semaphore>,
    /// Set when this node is one of a cluster (`--nats-url`).
    pub cluster: Option<Arc<Cluster>>,
    /// Flips to `true` when the server begins shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Every task of the server (see [`tasks`]).
    pub tasks: Tasks,
    /// Single sign-on providers.
    pub sso: Arc<oidc::Sso>,
    /// "Last seen" times, written in the background (see [`last_seen`]).
    pub last_seen: Arc<last_seen::LastSeen>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// Login sessions that ended (logout, password change, revocation, refresh-token reuse,
    /// account deletion): their sockets close with 4001 on this node and, in a cluster, on
    /// every other node.
    pub fn end_sessions(&self, sessions: Vec<SessionId>) {
        use chatnode_protocol::close_code::UNAUTHENTICATED;
        for s in &sessions {
            self.hub.close_session(s.as_str(), UNAUTHENTICATED);
        }
        if let Some(cluster) = &self.cluster {
            let sessions = sessions.iter().map(SessionId::to_string).collect();
            cluster.publish_sessions_ended(sessions, UNAUTHENTICATED);
        }
    }
}

impl AppState {
    /// WebSocket connections per node: this one now, the others as of their last heartbeat.
    pub fn node_connections(&self) -> Vec<chatnode_protocol::NodeStats> {
        let (id, mut nodes) = match &self.cluster {
            Some(c) => (
                c.node_id().to_owned(),
                c.peer_connections()
                    .into_iter()
                    .map(|(node_id, n)| chatnode_protocol::NodeStats {
                        node_id,
                        connections: n as i64,
                    })
                    .collect::<Vec<_>>(),
            ),
            None => ("local".to_owned(), Vec::new()),
        };
        nodes.insert(
            0,
            chatnode_protocol::NodeStats {
                node_id: id,
                connections: self.hub.connection_count() as i64,
            },
        );
        nodes
    }
}

pub struct Server {
    state: SharedState,
    shutdown_tx: watch::Sender<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The accept queue asked for. The kernel caps it at `net.core.somaxconn` (4096 on most
/// systems): a reconnect storm of tens of thousands of clients overflows 4096, the kernel
/// drops the handshakes that do not fit and the clients retry after 1, 3, 7, 15 s… Asking
/// for the most here means raising `somaxconn` is all an operator has to do (see
/// docs/deployment.md, "Kernel settings").
const LISTEN_BACKLOG: u32 = 65_535;

/// Binds a TCP listener with a large backlog (a reconnect storm overflows the default 128).
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .context("cannot create a socket")?;
    socket
        .set_reuseaddr(true)
        .context("cannot set SO_REUSEADDR")?;
    socket
        .bind(addr)
        .with_context(|| format!("cannot listen on {addr}"))?;
    socket
        .listen(LISTEN_BACKLOG)
        .with_context(|| format!("cannot listen on {addr}"))
}

impl Server {
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        let is_postgres = config.database_url.starts_with("postgres:")
            || config.database_url.starts_with("postgresql:");
        if config.nats_url.is_some() && !is_postgres {
            // Each node would have its own SQLite file: they would not be one service.
            bail!(
                "--nats-url needs a shared postgres:// --database-url (SQLite cannot be shared between nodes)"
            );
        }
        let tasks = Tasks::new();
        let hub = Arc::new(Hub::new());
        {
            // One sweeper pings silent sockets and closes dead ones, for every connection of
            // the node (no timer per socket; see `hub`).
            let idle = Duration::from_secs(config.ws_idle_timeout.max(1));
            let (every, ping) = ws::sweep_timing(idle);
            let hub = hub.clone();
            tasks.background(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    hub.sweep(ping, idle);
                }
            });
        }
        let store: Arc<dyn Store> =
            encryption::open_store(&config, hub.clone(), hub.clone()).await?;
        // Events without a stream position yet (PostgreSQL) get one within a second whatever
        // happened to the node that committed them.
        {
            let store = store.clone();
            tasks.background(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    if let Err(e) = store.stamp_pending().await {
                        tracing::warn!(error = %e, "stamping stream positions failed");
                    }
                }
            });
        }
        // The search index under the current key before any send; older messages are indexed
        // in the background, newest first.
        store
            .prepare_search()
            .await
            .context("cannot prepare the search index")?;
        {
            let store = store.clone();
            tasks.background(async move {
                loop {
                    match store.backfill_search(500).await {
                        Ok(true) => tokio::task::yield_now().await,
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "search backfill failed; retrying");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
            });
        }
        // New messages are indexed off the send path; where a backend does it in a task
        // (PostgreSQL), here, in batches, one node at a time. After a full pass a node pauses
        // briefly, so that in a cluster the passes (and their CPU) go round the nodes instead
        // of landing on whichever took the lock first.
        {
            let store = store.clone();
            tasks.background(async move {
                const BATCH: i64 = 500;
                loop {
                    match store.index_search(BATCH).await {
                        Ok(None) => break,
                        Ok(Some(n)) if n as i64 >= BATCH => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "search indexing failed; retrying");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    }
                }
            });
        }
        let auth = Arc::new(Auth::load_or_create(
            &config.data_dir,
            config.access_ttl,
            config.hash_concurrency,
        )?);
        let last_seen = last_seen::LastSeen::spawn(store.clone(), &tasks);
        let cluster = match &config.nats_url {
            Some(url) => Some(
                Cluster::start(url, hub.clone(), store.clone(), last_seen.clone(), &tasks).await?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let batcher = Batcher::spawn(store.clone(), metrics.clone(), 256, &tasks);
        let blobs = Arc::new(
            media::LocalBlobs::new(&config.data_dir)
                .context("cannot create the media directory")?,
        );
        let limits = media::MediaLimits {
            max_file: config.max_file_size,
            max_video: config.max_video_size,
            max_image_pixels: config.max_image_pixels,
        };
        let media = Arc::new(media::Media::new(blobs, limits, config.hash_concurrency));
        media.spawn_gc(
            &tasks,
            store.clone(),
            Duration::from_secs(config.media_grace_secs),
            Duration::from_secs(config.media_gc_interval_secs),
        );
        // The push client and any other rustls user share one crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let push = push::Notifier::start(
            &config.data_dir,
            push::PushConfig {
                sends: config.roles.push,
                delay: Duration::from_millis(config.push_delay_ms),
                contact: config.push_contact.clone(),
                concurrency: config.push_concurrency.max(1),
                timeout: Duration::from_secs(config.push_timeout_secs.max(1)),
            },
            store.clone(),
            hub.clone(),
            &tasks,
        )?;
        if let Some(cluster) = &cluster {
            push.join(cluster.clone(), &tasks).await?;
        }
        let limits = {
            use limits::Limiter;
            let per = |ms: u64| Duration::from_millis(ms);
            limits::Limits {
                login_account: Limiter::new(config.limit_login_account, per(15_000)),
                login_address: Limiter::new(config.limit_login_address, per(100)),
                register_address: Limiter::new(config.limit_register_address, per(200)),
                friend_requests: Limiter::new(config.limit_friend_requests, per(3_000)),
                // The same sustained rate as one WebSocket connection.
                rest_sends: Limiter::new(
                    config.ws_burst,
                    per(1000 / u64::from(config.ws_rate.max(1)).max(1)),
                ),
                reports: Limiter::new(20, per(30_000)),
                webhook_posts: limits::WindowLimiter::new(60, Duration::from_secs(60)),
                ws_per_user: config.limit_ws_per_user.max(1),
            }
        };
        let inflight = Arc::new(tokio::sync::Semaphore::new(config.max_inflight.max(1)));
        let (shutdown_tx, shutdown) = watch::channel(false);
        let sso = Arc::new(oidc::Sso::new(config.oidc.clone())?);
        let state = Arc::new(AppState {
            sso,
            last_seen,
            config,
            store,
            hub,
            auth,
            batcher,
            metrics,
            media,
            push,
            inflight,
            limits,
            cluster,
            shutdown,
            tasks,
        });
        let tls = match &state.config.tls {
            Some((cert, key)) => Some(serve::tls_acceptor(cert, key)?),
            None => None,
        };
        Ok(Server {
            state,
            shutdown_tx,
            tls,
        })
    }

    pub fn state(&self) -> &SharedState {
        &self.state
    }

    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then shuts down in order:
    /// 1. new sends are refused and every send already queued is committed and answered
    ///    (the batcher drains); readiness turns 503;
    /// 2. every WebSocket writes what is queued for it (those answers) and closes with 1001;
    ///    the accept loop stops and HTTP connections finish their request in flight;
    /// 3. connection tasks are waited for (up to 10 s), background tasks are stopped;
    /// 4. the store's connections are closed.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let stop_accepting = state.tasks.cancelled().child_token();
        let serving = serve::accept_loop(
            listener,
            self.router(),
            state.tasks.connection_tracker(),
            stop_accepting.clone(),
            self.tls.clone(),
        );
        let mut serving = std::pin::pin!(serving);
        // A writer that stopped for good ends the process non-zero (after the same orderly
        // shutdown), so that a supervisor starts a fresh one.
        let mut writer_stopped = false;
        tokio::select! {
            _ = serving.as_mut() => return Ok(()),
            _ = shutdown => {}
            _ = state.batcher.stopped() => writer_stopped = true,
        }
        let started = tokio::time::Instant::now();
        let _ = self.shutdown_tx.send(true);
        // 1. Every queued send committed and answered; later ones refused.
        let drained = tokio::time::timeout(Duration::from_secs(10), state.batcher.drain()).await;
        if drained.is_err() {
            tracing::warn!("the message batcher did not drain within 10 s");
        }
        // 2. Sockets flush their answers and close with 1001; no new connections.
        state
            .hub
            .close_all(chatnode_protocol::close_code::GOING_AWAY);
        stop_accepting.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
        // 3. Connections, then background tasks.
        let left = state.tasks.connections_done(Duration::from_secs(10)).await;
        if left > 0 {
            tracing::warn!(connections = left, "connections still open at shutdown");
        }
        // The "last seen" times of the sockets just closed.
        let _ = tokio::time::timeout(Duration::from_secs(5), state.last_seen.flush()).await;
        let left = state.tasks.stop_background(Duration::from_secs(5)).await;
        if left > 0 {
            tracing::warn!(tasks = left, "background tasks still running at shutdown");
        }
        // 4. The store.
        state.store.close().await;
        if writer_stopped {
            bail!(
                "the message writer stopped ({}); exiting so that a supervisor restarts the server",
                state.batcher.health().problem().unwrap_or_default()
            );
        }
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "shut down cleanly"
        );
        Ok(())
    }
}
