//! Test harness: runs the real `chatnode` binary on a free loopback port with a fresh data
//! dir, and typed helpers so each test reads like a story.
#![allow(dead_code)]

pub mod cluster;
pub mod push_service;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chatnode_client::protocol::{
    Conversation, CreateGroupRequest, ErrorCode, RegisterRequest, User,
};
use chatnode_client::{Client, FriendRequestOutcome};

pub const WAIT: Duration = Duration::from_secs(5);
pub const PASSWORD: &str = "correct horse battery";

pub struct TestServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: String,
    extra_args: Vec<String>,
    /// Environment variables the server runs with (besides the inherited ones).
    envs: Vec<(String, String)>,
    /// The PostgreSQL schema this server uses, when the suite runs against PostgreSQL.
    pg_schema: Option<String>,
}

/// With `CHATNODE_TEST_PG=postgres://…/db` set, every test server gets a fresh schema in that
/// database (`search_path`), so the whole suite runs against PostgreSQL; otherwise SQLite.
fn pg_base() -> Option<String> {
    std::env::var("CHATNODE_TEST_PG")
        .ok()
        .filter(|s| !s.is_empty())
}

fn psql(base: &str, sql: &str) {
    let out = Command::new("psql")
        .args([base, "-qAtc", sql])
        .output()
        .expect("psql is needed for the PostgreSQL suite");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh PostgreSQL schema that several test servers share (a cluster); dropped last.
pub struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    /// `None` when `CHATNODE_TEST_PG` is not set.
    pub fn create() -> Option<PgSchema> {
        let base = pg_base()?;
        let name = format!(
            "c{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql(&base, &format!("CREATE SCHEMA {name}"));
        Some(PgSchema { base, name })
    }

    /// The database URL that puts a connection in this schema.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA {} CASCADE", self.name);
        let _ = Command::new("psql")
            .args([self.base.as_str(), "-qAtc", &sql])
            .output();
    }
}

impl TestServer {
    /// A node of a cluster: `args` carry the shared `--database-url` and `--nats-url`; the
    /// JWT secret, the encryption key and the VAPID key are copied from `secret_from` (a
    /// node's data dir) when given, since every node must sign and check tokens, read the
    /// data and sign pushes with the same keys.
    pub async fn start_node(args: &[&str], secret_from: Option<&Path>) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(from) = secret_from {
            std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
            for file in ["jwt_secret", "encryption_key", "vapid_private_key"] {
                std::fs::copy(from.join(file), dir.path().join("data").join(file))
                    .unwrap_or_else(|e| panic!("copy {file}: {e}"));
            }
        }
        let extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, addr) = spawn(dir.path(), "127.0.0.1:0", &extra_args, &[]);
        TestServer {
            child: Some(child),
            dir,
            addr,
            extra_args,
            envs: Vec::new(),
            pg_schema: None,
        }
    }

    pub async fn start() -> TestServer {
        TestServer::start_with(&[]).await
    }

    /// Starts with extra `serve` options, e.g. `["--ws-queue", "8"]`.
    pub async fn start_with(args: &[&str]) -> TestServer {
        TestServer::start_with_env(args, &[]).await
    }

    /// Starts with extra `serve` options and environment variables.
    pub async fn start_with_env(args: &[&str], envs: &[(&str, &str)]) -> TestServer {
        TestServer::start_with_files(args, envs, &[]).await
    }

    /// Starts on a data dir that already holds `files` (`(source, name in the data dir)`),
    /// e.g. a restored database and its keys. A first entry `(dir, "")` puts the data dir
    /// under `dir` instead of the system's temp dir.
    pub async fn start_with_files(
        args: &[&str],
        envs: &[(&str, &str)],
        files: &[(&Path, &str)],
    ) -> TestServer {
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = match files.first() {
            // A data dir in another place (a small file system, say).
            Some((parent, "")) => tempfile::tempdir_in(parent).expect("temp dir"),
            _ => tempfile::tempdir().expect("temp dir"),
        };
        let files: Vec<&(&Path, &str)> = files.iter().filter(|(_, n)| !n.is_empty()).collect();
        if !files.is_empty() {
            std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
            for (from, name) in files {
                std::fs::copy(from, dir.path().join("data").join(name))
                    .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
            }
        }
        let mut extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        // A test that names its own database keeps it.
        let own_db = args.contains(&"--database-url");
        let pg_schema = pg_base().filter(|_| !own_db).map(|base| {
            let schema = format!(
                "t{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            psql(&base, &format!("CREATE SCHEMA {schema}"));
            let sep = if base.contains('?') { '&' } else { '?' };
            extra_args.push("--database-url".into());
            extra_args.push(format!("{base}{sep}options=-c%20search_path%3D{schema}"));
            schema
        });
        let (child, addr) = spawn(dir.path(), "127.0.0.1:0", &extra_args, &envs);
        TestServer {
            child: Some(child),
            dir,
            addr,
            extra_args,
            envs,
            pg_schema,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url())
    }

    /// Everything the server logged so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no shutdown code runs at all.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(s)) = c.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        panic!("server did not exit within 10 s of SIGTERM");
    }

    /// Waits up to `within` for the server to exit by itself; its status, or `None`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(s)) = c.try_wait()
            {
                self.child = None;
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Starts the server again on the same address and data dir.
    pub async fn restart(&mut self) {
        self.kill9();
        let (child, addr) = spawn(
            self.dir.path(),
            &self.addr.clone(),
            &self.extra_args,
            &self.envs,
        );
        self.child = Some(child);
        self.addr = addr;
    }

    /// Replaces the environment variables of the next `restart`.
    pub fn set_envs(&mut self, envs: &[(&str, &str)]) {
        self.envs = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// The `--database-url` given to the server (PostgreSQL runs), else its SQLite file's.
    pub fn database_url(&self) -> String {
        self.extra_args
            .iter()
            .position(|a| a == "--database-url")
            .and_then(|i| self.extra_args.get(i + 1).cloned())
            .unwrap_or_else(|| {
                format!("sqlite://{}", self.data_dir().join("chatnode.db").display())
            })
    }

    /// Runs `chatnode ARGS…` (a subcommand and its options) on this server's data dir and
    /// options (the server should be stopped), with extra environment variables; gives up
    /// after 60 s.
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut child = Command::new(binary())
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra_args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(envs.iter().copied())
            .env("CHATNODE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chatnode");
        for _ in 0..1200 {
            if child.try_wait().expect("wait").is_some() {
                return child.wait_with_output().expect("output");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "chatnode {args:?} did not exit within 60 s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if let (Some(base), Some(schema)) = (pg_base(), self.pg_schema.take()) {
            let sql = format!("DROP SCHEMA {schema} CASCADE");
            let _ = Command::new("psql")
                .args([base.as_str(), "-qAtc", &sql])
                .output();
        }
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_chatnode")
}

fn spawn(dir: &Path, listen: &str, extra: &[String], envs: &[(String, String)]) -> (Child, String) {
    // The same port may still be in TIME_WAIT or held a moment after a kill: retry briefly.
    for attempt in 0..50 {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", listen, "--log-format", "json"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .env("CHATNODE_LOG", "info")
            // A test's own settings win (CHATNODE_LOG=debug included).
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chatnode");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut addr = None;
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["fields"]["message"] == "chatnode listening"
            {
                addr = v["fields"]["addr"].as_str().map(str::to_owned);
                break;
            }
            seen.push(line);
        }
        if let Some(addr) = addr {
            // Keep draining the log (into DIR/server.log) so the server never blocks on a
            // full pipe, and tests can read what it logged.
            let log_path = dir.join("server.log");
            std::thread::spawn(move || {
                use std::io::Write;
                let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log_path)
                else {
                    return;
                };
                // What it logged while starting, too.
                for line in seen {
                    let _ = writeln!(f, "{line}");
                }
                for line in lines.map_while(Result::ok) {
                    let _ = writeln!(f, "{line}");
                }
            });
            return (child, addr);
        }
        let _ = child.wait();
        if attempt == 49 || !seen.iter().any(|l| l.contains("in use")) {
            panic!("chatnode did not start: {}", seen.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unreachable!()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique username for this test process.
/// The `error.code` of a raw error body (`{"error":{"code",…}}`), as the protocol's enum; `None`
/// when the body has no code. Raw calls check the wire; the code is still compared as the enum.
pub fn error_code(body: &serde_json::Value) -> Option<ErrorCode> {
    serde_json::from_value(body["error"]["code"].clone()).ok()
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}_{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Registers a user with an email and returns a logged-in client.
pub async fn register(server: &TestServer, name: &str) -> (Client, User) {
    let client = server.client();
    let username = unique(name);
    let auth = client
        .register(&RegisterRequest {
            email: Some(format!("{username}@example.com")),
            username,
            password: PASSWORD.into(),
            display_name: Some(name.to_owned()),
            ..Default::default()
        })
        .await
        .expect("register");
    (client, auth.user.user)
}

/// Makes two users friends through a request and its acceptance.
pub async fn befriend(a: &Client, a_user: &User, b: &Client, b_user: &User) {
    match a.send_friend_request(&b_user.id).await.expect("request") {
        FriendRequestOutcome::Requested(r) => {
            assert_eq!(r.from.id, a_user.id);
            b.accept_request(&r.id).await.expect("accept");
        }
        FriendRequestOutcome::Friends(_) => {}
    }
}

/// Two friends and their direct conversation.
pub async fn friends_with_direct(
    server: &TestServer,
) -> (Client, User, Client, User, Conversation) {
    let (a, au) = register(server, "ann").await;
    let (b, bu) = register(server, "bob").await;
    befriend(&a, &au, &b, &bu).await;
    let conv = a.open_direct(&bu.id).await.expect("direct");
    (a, au, b, bu, conv)
}

pub async fn group(owner: &Client, name: &str, members: &[&User]) -> Conversation {
    owner
        .create_group(&CreateGroupRequest {
            name: name.into(),
            member_ids: Some(members.iter().map(|u| u.id.clone()).collect()),
            ..Default::default()
        })
        .await
        .expect("create group")
}
