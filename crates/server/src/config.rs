//! Configuration: defaults, then a TOML file (`--config`), then `CHATNODE_*` environment
//! variables, then command-line flags (clap merges the last two).
//!
//! Every option is optional on the command line so that "not given" can fall through to the
//! TOML file; [`Config::resolve`] produces the final, validated settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "chatnode",
    version,
    about = "ChatNode: a real-time chat server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP API, WebSocket gateway and web client).
    Serve(ServeArgs),
    /// Re-encrypt every encrypted value under a new key, with the server stopped. Takes the
    /// same options as `serve` (only the data dir, database and key options matter).
    RotateKey(ServeArgs),
    /// Create load-test fixtures in bulk (users, sessions, friendships, conversations) and
    /// print their access tokens; reads `{"users":N,"conversations":[[i,j,…],…]}` on stdin.
    /// Run it while the server is stopped (SQLite) or from any machine (PostgreSQL).
    BenchSeed(BenchSeedArgs),
    /// Grant or revoke the system admin role (`chatnode admin grant USERNAME`); works while
    /// the server runs on the same data dir or database. Same options as `serve`.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Write a consistent copy of the embedded SQLite database to FILE while the server keeps
    /// serving (PostgreSQL: use pg_dump, see docs/deployment.md). Same options as `serve`.
    Backup {
        /// Where to write the copy (must not exist yet)
        file: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Make (`create NAME`: prints the token, once, alone on standard output) or revoke
    /// (`revoke NAME`) a service token for `POST /api/v1/notify`. Same options as `serve`.
    ServiceToken {
        #[command(subcommand)]
        action: ServiceTokenAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceTokenAction {
    /// Make a token named NAME and print it (once)
    Create(NamedArgs),
    /// Revoke the token named NAME
    Revoke(NamedArgs),
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Make USERNAME a system admin
    Grant(NamedArgs),
    /// Take the system admin role from USERNAME
    Revoke(NamedArgs),
}

/// A name (a username, a token's name) and the options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct NamedArgs {
    pub name: String,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchSeedArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Lifetime of the printed access tokens, in seconds
    #[arg(long, default_value_t = 7200)]
    pub token_ttl: i64,
    /// Usernames are PREFIX0, PREFIX1, …
    #[arg(long, default_value = "bench")]
    pub prefix: String,
    /// Also store this many messages, spread over the conversations (sealed and with their
    /// events, as sent ones are)
    #[arg(long, default_value_t = 0)]
    pub history: u64,
}

#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "CHATNODE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database, media and generated secrets [default: ./data]
    #[arg(long, env = "CHATNODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://FILE or postgres://… [default: sqlite://DATA_DIR/chatnode.db]
    #[arg(long, env = "CHATNODE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// nats://HOST:PORT, to run as one node of a cluster
    #[arg(long, env = "CHATNODE_NATS_URL")]
    pub nats_url: Option<String>,
    /// What this node does, comma-separated: `gateway` (the WebSocket), `api` (REST, media
    /// and the web client), `push` (sending Web Push); a node without a role answers its
    /// routes with a clear error [default: gateway,api,push]
    #[arg(long, env = "CHATNODE_ROLES", value_delimiter = ',')]
    pub roles: Option<Vec<String>>,
    /// A TOML file with the same keys as these options (snake_case)
    #[arg(long, env = "CHATNODE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log format: `pretty` or `json` [default: pretty]
    #[arg(long, env = "CHATNODE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// WebSocket frames a connection may send per second, sustained [default: 100]
    #[arg(long, env = "CHATNODE_WS_RATE")]
    pub ws_rate: Option<u32>,
    /// WebSocket frames a connection may send in a burst [default: 2000]
    #[arg(long, env = "CHATNODE_WS_BURST")]
    pub ws_burst: Option<u32>,
    /// Outgoing frames queued per connection before it is closed as too slow (4008) [default: 1024]
    #[arg(long, env = "CHATNODE_WS_QUEUE")]
    pub ws_queue: Option<usize>,
    /// Seconds without any frame from a client before its socket is closed [default: 90]
    #[arg(long, env = "CHATNODE_WS_IDLE_TIMEOUT")]
    pub ws_idle_timeout: Option<u64>,
    /// Password hashes computed at once; more wait [default: number of CPUs]
    #[arg(long, env = "CHATNODE_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Access token lifetime in seconds [default: 900]
    #[arg(long, env = "CHATNODE_ACCESS_TTL")]
    pub access_ttl: Option<i64>,
    /// Refresh token (login session) lifetime in days [default: 30]
    #[arg(long, env = "CHATNODE_REFRESH_TTL_DAYS")]
    pub refresh_ttl_days: Option<i64>,
    /// Largest image or file upload, in bytes [default: 26214400 (25 MiB)]
    #[arg(long, env = "CHATNODE_MAX_FILE_SIZE")]
    pub max_file_size: Option<u64>,
    /// Largest video upload, in bytes [default: 209715200 (200 MiB)]
    #[arg(long, env = "CHATNODE_MAX_VIDEO_SIZE")]
    pub max_video_size: Option<u64>,
    /// Largest image, in pixels (width x height) [default: 40000000]
    #[arg(long, env = "CHATNODE_MAX_IMAGE_PIXELS")]
    pub max_image_pixels: Option<u64>,
    /// Seconds before an upload never sent anywhere is deleted [default: 86400]
    #[arg(long, env = "CHATNODE_MEDIA_GRACE_SECS")]
    pub media_grace_secs: Option<u64>,
    /// Seconds between sweeps for such uploads [default: 600]
    #[arg(long, env = "CHATNODE_MEDIA_GC_INTERVAL_SECS")]
    pub media_gc_interval_secs: Option<u64>,
    /// Milliseconds to wait after a message before deciding to push it [default: 3000]
    #[arg(long, env = "CHATNODE_PUSH_DELAY_MS")]
    pub push_delay_ms: Option<u64>,
    /// VAPID contact (mailto: or https: URL) sent to push services [default: mailto:admin@localhost]
    #[arg(long, env = "CHATNODE_PUSH_CONTACT")]
    pub push_contact: Option<String>,
    /// Concurrent requests to push services, at most a quarter of them to one [default: 16]
    #[arg(long, env = "CHATNODE_PUSH_CONCURRENCY")]
    pub push_concurrency: Option<usize>,
    /// Seconds before a push request is abandoned (then retried) [default: 10]
    #[arg(long, env = "CHATNODE_PUSH_TIMEOUT_SECS")]
    pub push_timeout_secs: Option<u64>,
    /// Extra origins (comma-separated, e.g. https://app.example.com) whose pages may open
    /// WebSockets; the server's own origin always may [default: none]
    #[arg(long, env = "CHATNODE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Failed logins allowed per existing account in a burst; one more every 15 s [default: 20]
    #[arg(long, env = "CHATNODE_LIMIT_LOGIN_ACCOUNT")]
    pub limit_login_account: Option<u32>,
    /// Login attempts per client address in a burst; ten more every second [default: 1000]
    #[arg(long, env = "CHATNODE_LIMIT_LOGIN_ADDRESS")]
    pub limit_login_address: Option<u32>,
    /// Registrations per client address in a burst; five more every second [default: 500]
    #[arg(long, env = "CHATNODE_LIMIT_REGISTER_ADDRESS")]
    pub limit_register_address: Option<u32>,
    /// Friend requests per user in a burst; one more every 3 s [default: 100]
    #[arg(long, env = "CHATNODE_LIMIT_FRIEND_REQUESTS")]
    pub limit_friend_requests: Option<u32>,
    /// PEM certificate chain: serve HTTPS (and WSS) with rustls; needs --tls-key
    #[arg(long, env = "CHATNODE_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, env = "CHATNODE_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Proxies (comma-separated IP addresses) whose `X-Forwarded-For` is believed when
    /// telling clients apart for rate limits [default: none]
    #[arg(long, env = "CHATNODE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
    /// HTTP requests handled at once; beyond that the server answers 503 with Retry-After
    /// instead of queueing (WebSocket traffic is not counted) [default: 2048]
    #[arg(long, env = "CHATNODE_MAX_INFLIGHT")]
    pub max_inflight: Option<usize>,
    /// Concurrent WebSocket connections per user [default: 32]
    #[arg(long, env = "CHATNODE_LIMIT_WS_PER_USER")]
    pub limit_ws_per_user: Option<usize>,
    /// File holding the encryption-at-rest keys (mode 0600, generated on first start).
    /// `CHATNODE_ENCRYPTION_KEY` (base64 key material, newest first) replaces the file
    /// [default: DATA_DIR/encryption_key]
    #[arg(long, env = "CHATNODE_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Who may register: `open`, `invite` (an invite code made by an admin) or `closed`
    /// [default: open]
    #[arg(long, env = "CHATNODE_REGISTRATION")]
    pub registration: Option<String>,
    /// Bytes one account may upload in 24 hours; 0 for no limit [default: 1073741824 (1 GiB)]
    #[arg(long, env = "CHATNODE_UPLOAD_QUOTA_DAILY")]
    pub upload_quota_daily: Option<u64>,
    /// Bytes of uploads one account may keep in all; 0 for no limit [default: 10737418240 (10 GiB)]
    #[arg(long, env = "CHATNODE_UPLOAD_QUOTA_TOTAL")]
    pub upload_quota_total: Option<u64>,
    /// Uploads are refused while the data dir's file system has less free space than this:
    /// bytes, or a percentage of the file system such as `5%` [default: 5%]
    #[arg(long, env = "CHATNODE_MIN_FREE_DISK")]
    pub min_free_disk: Option<String>,
    /// The server's public base URL (e.g. `https://chat.example.com`), for links it hands out
    /// (webhook URLs, single sign-on redirects) [default: from the request's Host header]
    #[arg(long, env = "CHATNODE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Single sign-on: an OpenID Connect provider's issuer URL (its discovery document is
    /// ISSUER/.well-known/openid-configuration). Several providers: `[[oidc]]` tables in the
    /// config file
    #[arg(long, env = "CHATNODE_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client ID ChatNode is registered under at the provider
    #[arg(long, env = "CHATNODE_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The client secret (prefer the environment variable: a flag shows in `ps`)
    #[arg(long, env = "CHATNODE_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The name on the "Sign in with NAME" button [default: SSO]
    #[arg(long, env = "CHATNODE_OIDC_NAME")]
    pub oidc_name: Option<String>,
    /// Providers from the config file (`[[oidc]]`: id, name, issuer, client_id,
    /// client_secret)
    #[arg(skip)]
    pub oidc: Option<Vec<OidcProviderConfig>>,
}

/// One OpenID Connect provider for single sign-on.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// In URLs (`/auth/oidc/{id}/...`): letters, digits and `-` [default: from the name]
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for OidcProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("OidcProviderConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A provider's ID from its name: lower-case letters and digits, other runs as `-`.
fn provider_id(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    let id = id.trim_end_matches('-').to_owned();
    if id.is_empty() { "sso".into() } else { id }
}

/// `--min-free-disk`: a number of bytes or a share of the file system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FreeSpaceFloor {
    Bytes(u64),
    Percent(f64),
}

impl FreeSpaceFloor {
    pub fn parse(s: &str) -> anyhow::Result<FreeSpaceFloor> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .context("--min-free-disk: not a percentage")?;
            anyhow::ensure!(
                (0.0..100.0).contains(&p),
                "--min-free-disk must be under 100%"
            );
            return Ok(FreeSpaceFloor::Percent(p));
        }
        Ok(FreeSpaceFloor::Bytes(s.parse().context(
            "--min-free-disk must be bytes or a percentage such as 5%",
        )?))
    }

    /// The floor in bytes on a file system of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            FreeSpaceFloor::Bytes(b) => b,
            FreeSpaceFloor::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

/// The environment variable that holds the encryption-at-rest key material itself.
pub const KEY_ENV: &str = "CHATNODE_ENCRYPTION_KEY";

/// What a node does (`--roles`). Every node serves `/healthz`, `/readyz` and `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// `/api/v1/ws`: WebSocket connections and their live delivery.
    pub gateway: bool,
    /// The REST API, media and the embedded web client.
    pub api: bool,
    /// Sending Web Push requests (every node decides on pushes for what it commits; in a
    /// cluster the requests go to the nodes with this role).
    pub push: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        gateway: true,
        api: true,
        push: true,
    };

    pub fn parse(names: &[String]) -> anyhow::Result<Roles> {
        let mut r = Roles {
            gateway: false,
            api: false,
            push: false,
        };
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            match name {
                "gateway" => r.gateway = true,
                "api" => r.api = true,
                "push" => r.push = true,
                "all" => r = Roles::ALL,
                other => {
                    bail!("unknown role {other:?} in --roles (the roles are gateway, api, push)")
                }
            }
        }
        if r == (Roles {
            gateway: false,
            api: false,
            push: false,
        }) {
            bail!("--roles names no role (the roles are gateway, api, push)");
        }
        Ok(r)
    }

    /// The role names, in a fixed order.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("gateway", self.gateway),
            ("api", self.api),
            ("push", self.push),
        ]
        .into_iter()
        .filter_map(|(n, on)| on.then_some(n))
        .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        match name {
            "gateway" => self.gateway,
            "api" => self.api,
            "push" => self.push,
            _ => false,
        }
    }
}

/// The resolved settings the server runs with.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub roles: Roles,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub nats_url: Option<String>,
    pub log_format: String,
    pub ws_rate: u32,
    pub ws_burst: u32,
    pub ws_queue: usize,
    pub ws_idle_timeout: u64,
    pub hash_concurrency: usize,
    pub access_ttl: i64,
    pub refresh_ttl_days: i64,
    pub max_file_size: u64,
    pub max_video_size: u64,
    pub max_image_pixels: u64,
    pub media_grace_secs: u64,
    pub media_gc_interval_secs: u64,
    pub push_delay_ms: u64,
    pub push_contact: String,
    pub push_concurrency: usize,
    pub push_timeout_secs: u64,
    pub allowed_origins: Vec<String>,
    pub limit_login_account: u32,
    pub limit_login_address: u32,
    pub limit_register_address: u32,
    pub limit_friend_requests: u32,
    pub limit_ws_per_user: usize,
    pub max_inflight: usize,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Certificate and key files when serving TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where the encryption-at-rest keys come from (the `Debug` form never shows a key).
    pub encryption_key: crate::crypto::KeySource,
    pub registration: chatnode_protocol::RegistrationMode,
    /// Upload quotas in bytes (None: no limit).
    pub upload_quota_daily: Option<u64>,
    pub upload_quota_total: Option<u64>,
    pub min_free_disk: FreeSpaceFloor,
    /// Without a trailing slash.
    pub public_url: Option<String>,
    /// Single sign-on providers (IDs unique).
    pub oidc: Vec<OidcProviderConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database URL may carry a password: show only its scheme.
        let scheme = self.database_url.split("://").next().unwrap_or("?");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &format!("{scheme}://…"))
            .field("nats_url", &self.nats_url.as_ref().map(|_| "nats://…"))
            .field("ws_rate", &self.ws_rate)
            .field("ws_burst", &self.ws_burst)
            .field("ws_queue", &self.ws_queue)
            .field("encryption_key", &self.encryption_key)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Builds the final settings: flags/env first, then the TOML file, then defaults.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<ServeArgs>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => ServeArgs::default(),
        };
        macro_rules! pick {
            ($field:ident, $default:expr) => {
                args.$field
                    .clone()
                    .or(file.$field.clone())
                    .unwrap_or_else(|| $default)
            };
        }
        let data_dir: PathBuf = pick!(data_dir, PathBuf::from("./data"));
        let database_url = pick!(
            database_url,
            format!("sqlite://{}", data_dir.join("chatnode.db").display())
        );
        // The key itself only from the environment: never a flag (visible in `ps`) or the
        // TOML file (which is often less guarded than a secret).
        let env_key = std::env::var(KEY_ENV).ok().filter(|k| !k.trim().is_empty());
        let key_file = args
            .encryption_key_file
            .clone()
            .or(file.encryption_key_file.clone());
        let encryption_key = match (env_key, key_file) {
            (Some(_), Some(_)) => {
                bail!("give {KEY_ENV} or --encryption-key-file, not both")
            }
            (Some(k), None) => crate::crypto::KeySource::Env(k),
            (None, Some(f)) => crate::crypto::KeySource::File(f),
            (None, None) => crate::crypto::KeySource::File(data_dir.join("encryption_key")),
        };
        let roles = match args.roles.clone().or(file.roles.clone()) {
            Some(names) => Roles::parse(&names)?,
            None => Roles::ALL,
        };
        let cfg = Config {
            roles,
            encryption_key,
            listen: pick!(listen, SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url,
            nats_url: args.nats_url.clone().or(file.nats_url.clone()),
            log_format: pick!(log_format, "pretty".into()),
            ws_rate: pick!(ws_rate, 100),
            ws_burst: pick!(ws_burst, 2000),
            ws_queue: pick!(ws_queue, 1024),
            ws_idle_timeout: pick!(ws_idle_timeout, 90),
            hash_concurrency: pick!(
                hash_concurrency,
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            ),
            access_ttl: pick!(access_ttl, 900),
            refresh_ttl_days: pick!(refresh_ttl_days, 30),
            max_file_size: pick!(max_file_size, 25 * 1024 * 1024),
            max_video_size: pick!(max_video_size, 200 * 1024 * 1024),
            max_image_pixels: pick!(max_image_pixels, 40_000_000),
            media_grace_secs: pick!(media_grace_secs, 86_400),
            media_gc_interval_secs: pick!(media_gc_interval_secs, 600),
            push_delay_ms: pick!(push_delay_ms, 3000),
            push_contact: pick!(push_contact, "mailto:admin@localhost".into()),
            push_concurrency: pick!(push_concurrency, 16),
            push_timeout_secs: pick!(push_timeout_secs, 10),
            allowed_origins: pick!(allowed_origins, Vec::new()),
            limit_login_account: pick!(limit_login_account, 20),
            limit_login_address: pick!(limit_login_address, 1000),
            limit_register_address: pick!(limit_register_address, 500),
            limit_friend_requests: pick!(limit_friend_requests, 100),
            limit_ws_per_user: pick!(limit_ws_per_user, 32),
            max_inflight: pick!(max_inflight, 2048),
            trusted_proxies: pick!(trusted_proxies, Vec::new()),
            tls: match (
                args.tls_cert.clone().or(file.tls_cert.clone()),
                args.tls_key.clone().or(file.tls_key.clone()),
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => bail!("--tls-cert and --tls-key go together"),
            },
            registration: {
                let mode = pick!(registration, "open".into());
                chatnode_protocol::RegistrationMode::parse(&mode).with_context(|| {
                    format!("--registration must be open, invite or closed, not `{mode}`")
                })?
            },
            upload_quota_daily: Some(pick!(upload_quota_daily, 1 << 30)).filter(|q| *q > 0),
            upload_quota_total: Some(pick!(upload_quota_total, 10 << 30)).filter(|q| *q > 0),
            min_free_disk: FreeSpaceFloor::parse(&pick!(min_free_disk, "5%".into()))?,
            oidc: {
                let mut list = file.oidc.clone().unwrap_or_default();
                let issuer = args.oidc_issuer.clone().or(file.oidc_issuer.clone());
                if let Some(issuer) = issuer {
                    let field = |a: &Option<String>, f: &Option<String>, flag: &str| {
                        a.clone()
                            .or(f.clone())
                            .with_context(|| format!("--oidc-issuer needs {flag}"))
                    };
                    list.push(OidcProviderConfig {
                        id: String::new(),
                        name: args
                            .oidc_name
                            .clone()
                            .or(file.oidc_name.clone())
                            .unwrap_or_else(|| "SSO".into()),
                        issuer,
                        client_id: field(
                            &args.oidc_client_id,
                            &file.oidc_client_id,
                            "--oidc-client-id",
                        )?,
                        client_secret: field(
                            &args.oidc_client_secret,
                            &file.oidc_client_secret,
                            "--oidc-client-secret",
                        )?,
                    });
                }
                for p in &mut list {
                    p.issuer = p.issuer.trim_end_matches('/').to_owned();
                    if p.id.is_empty() {
                        p.id = provider_id(&p.name);
                    }
                    if !(p.issuer.starts_with("https://") || p.issuer.starts_with("http://")) {
                        bail!(
                            "the OpenID provider {}'s issuer must be an http(s) URL",
                            p.name
                        );
                    }
                    if !p.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                        bail!(
                            "an OpenID provider's id is letters, digits and '-': `{}`",
                            p.id
                        );
                    }
                }
                let mut ids: Vec<&str> = list.iter().map(|p| p.id.as_str()).collect();
                ids.sort_unstable();
                if ids.windows(2).any(|w| w[0] == w[1]) {
                    bail!("two OpenID providers have the same id; give each an `id`");
                }
                list
            },
            public_url: match args.public_url.clone().or(file.public_url.clone()) {
                None => None,
                Some(u) => {
                    let u = u.trim_end_matches('/').to_owned();
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        bail!("--public-url must start with http:// or https://");
                    }
                    Some(u)
                }
            },
            data_dir,
        };
        if !matches!(cfg.log_format.as_str(), "pretty" | "json") {
            bail!(
                "--log-format must be `pretty` or `json`, not `{}`",
                cfg.log_format
            );
        }
        if cfg.ws_rate == 0 || cfg.ws_burst == 0 || cfg.ws_queue == 0 || cfg.hash_concurrency == 0 {
            bail!("--ws-rate, --ws-burst, --ws-queue and --hash-concurrency must be at least 1");
        }
        if cfg.max_file_size == 0
            || cfg.max_video_size == 0
            || cfg.max_image_pixels == 0
            || cfg.media_gc_interval_secs == 0
        {
            bail!(
                "--max-file-size, --max-video-size, --max-image-pixels and --media-gc-interval-secs must be at least 1"
            );
        }
        if cfg.access_ttl < 10 || cfg.refresh_ttl_days < 1 {
            bail!("--access-ttl must be at least 10 seconds and --refresh-ttl-days at least 1");
        }
        Ok(cfg)
    }

    /// Settings for tests and embedding: everything default except the data dir.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let args = ServeArgs {
            data_dir: Some(data_dir.into()),
            ..Default::default()
        };
        Config::resolve(args).expect("default config is valid")
    }
}
