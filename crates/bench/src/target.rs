//! The servers under test: ChatNode (seeded with `chatnode bench-seed`, then `chatnode serve`)
//! and the Node.js peers in `bench/peers/` (seeded over their `POST /bench/seed`). Each run
//! gets a fresh process and data directory; the generator reads the process's CPU time and
//! resident memory from `/proc`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::conn::Proto;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// This project's server.
    Chatnode,
    /// Node.js: express + ws + better-sqlite3 (bench/peers/ws-express).
    WsExpress,
    /// Node.js: express + Socket.IO + better-sqlite3 (bench/peers/socketio).
    Socketio,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chatnode => "chatnode",
            Kind::WsExpress => "ws-express",
            Kind::Socketio => "socketio",
        }
    }

    pub fn proto(self) -> Proto {
        match self {
            Kind::Socketio => Proto::EngineIo,
            _ => Proto::Json,
        }
    }
}

/// What to create before a run: users and conversations given as member indices.
#[derive(Serialize, Default)]
pub struct Spec {
    pub users: usize,
    pub conversations: Vec<Vec<usize>>,
}

#[derive(Deserialize, Clone)]
pub struct SeedUser {
    #[allow(dead_code)]
    pub id: String,
    pub token: String,
}

#[derive(Deserialize, Clone)]
pub struct SeedConversation {
    pub id: String,
    pub members: Vec<usize>,
}

#[derive(Deserialize)]
pub struct Fixture {
    pub users: Vec<SeedUser>,
    pub conversations: Vec<SeedConversation>,
}

pub struct Options {
    pub server_bin: PathBuf,
    pub peers_dir: PathBuf,
    /// Extra `CHATNODE_*` settings for the server (`KEY=VALUE`).
    pub server_env: Vec<(String, String)>,
}

pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Target {
    pub async fn start(
        kind: Kind,
        opts: &Options,
        spec: &Spec,
    ) -> anyhow::Result<(Target, Fixture)> {
        let dir = tempfile::Builder::new()
            .prefix("chatnode-bench")
            .tempdir()?;
        match kind {
            Kind::Chatnode => {
                let fixture = seed_chatnode(opts, dir.path(), spec)?;
                let mut cmd = Command::new(&opts.server_bin);
                cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
                    .arg("--data-dir")
                    .arg(dir.path())
                    // The generator's senders are far faster than people: lift the
                    // per-connection frame rate limit so it measures the server, not the limit.
                    .env("CHATNODE_WS_RATE", "1000000")
                    .env("CHATNODE_WS_BURST", "1000000")
                    .env("CHATNODE_LOG", "info,tower_http=warn,sqlx=warn");
                for (k, v) in &opts.server_env {
                    cmd.env(k, v);
                }
                let mut child = cmd
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .with_context(|| format!("cannot run {}", opts.server_bin.display()))?;
                let stderr = child.stderr.take().expect("piped stderr");
                let addr = wait_line(stderr, |line| {
                    let v: serde_json::Value = serde_json::from_str(line).ok()?;
                    (v["fields"]["message"] == "chatnode listening")
                        .then(|| v["fields"]["addr"].as_str()?.parse().ok())
                        .flatten()
                })
                .context("chatnode did not start")?;
                Ok((
                    Target {
                        kind,
                        addr,
                        child,
                        _dir: dir,
                    },
                    fixture,
                ))
            }
            Kind::WsExpress | Kind::Socketio => {
                let script = opts.peers_dir.join(kind.name()).join("server.js");
                if !opts.peers_dir.join("node_modules").is_dir() {
                    bail!(
                        "{} has no node_modules: run `npm ci` there first",
                        opts.peers_dir.display()
                    );
                }
                let mut child = Command::new("node")
                    .arg(&script)
                    .env("PORT", "0")
                    .env("HOST", "127.0.0.1")
                    .env("DATA_DIR", dir.path())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .with_context(|| format!("cannot run node {}", script.display()))?;
                let stdout = child.stdout.take().expect("piped stdout");
                let port: u16 = wait_line(stdout, |line| {
                    line.strip_prefix("listening on ")?.trim().parse().ok()
                })
                .with_context(|| format!("{} did not start", kind.name()))?;
                let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                let fixture = reqwest::Client::new()
                    .post(format!("http://{addr}/bench/seed"))
                    .json(spec)
                    .timeout(Duration::from_secs(300))
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Fixture>()
                    .await
                    .context("peer seed response")?;
                Ok((
                    Target {
                        kind,
                        addr,
                        child,
                        _dir: dir,
                    },
                    fixture,
                ))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds the server has used so far.
    pub fn cpu_secs(&self) -> f64 {
        proc_cpu_secs(&format!("/proc/{}/stat", self.pid()))
    }

    /// Resident memory, in bytes.
    pub fn rss(&self) -> u64 {
        proc_rss(&format!("/proc/{}/status", self.pid()))
    }

    /// A counter from ChatNode's `/metrics` (0 for the peers).
    pub async fn metric(&self, name: &str) -> f64 {
        if self.kind != Kind::Chatnode {
            return 0.0;
        }
        let Ok(resp) = reqwest::get(format!("http://{}/metrics", self.addr)).await else {
            return 0.0;
        };
        let text = resp.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| {
                let rest = l.strip_prefix(name)?;
                rest.trim().split(' ').next()?.parse().ok()
            })
            .unwrap_or(0.0)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seed_chatnode(opts: &Options, dir: &std::path::Path, spec: &Spec) -> anyhow::Result<Fixture> {
    let mut child = Command::new(&opts.server_bin)
        .arg("bench-seed")
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", opts.server_bin.display()))?;
    let input = serde_json::to_vec(spec)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .expect("stdin writer")
        .context("writing the seed spec")?;
    if !out.status.success() {
        bail!("chatnode bench-seed failed ({})", out.status);
    }
    serde_json::from_slice(&out.stdout).context("bench-seed output")
}

/// Reads lines until `f` accepts one (30 s at most), then keeps draining the pipe in the
/// background so the server never blocks writing its log.
fn wait_line<T: Send + 'static>(
    pipe: impl std::io::Read + Send + 'static,
    f: impl Fn(&str) -> Option<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(pipe).lines();
        let mut tx = Some(tx);
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(t) = tx.as_ref()
                && let Some(v) = f(&line)
            {
                let _ = t.send(v);
                tx = None;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .context("no startup line within 30 s")
}

pub fn proc_cpu_secs(stat_path: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after ')'.
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // state is f[0]; utime is field 14 overall = f[11], stime f[12].
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

pub fn proc_rss(status_path: &str) -> u64 {
    std::fs::read_to_string(status_path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}
