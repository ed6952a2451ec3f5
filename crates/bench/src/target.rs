//! The servers under test: ChatNode (seeded with `chatnode bench-seed`, then `chatnode serve`)
//! and the Node.js peers in `bench/peers/` (seeded over their `POST /bench/seed`). Each run
//! gets a fresh process and data directory; the generator reads the process's CPU time and
//! resident memory from `/proc`.
//!
//! ChatNode can run on SQLite (its data directory) or PostgreSQL (`--database-url`: each run
//! gets a fresh schema, selected with `search_path`, that both `bench-seed` and `serve` use and
//! that is dropped afterwards), and as a cluster (`--nodes N`, PostgreSQL only): a private
//! `nats-server` on a free port and N `serve` processes on the same schema and NATS, sharing
//! the first node's JWT secret and encryption key, as `crates/server/tests/cluster.rs` does.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

#[derive(Clone)]
pub struct Options {
    pub server_bin: PathBuf,
    pub peers_dir: PathBuf,
    /// Extra `CHATNODE_*` settings for the server (`KEY=VALUE`).
    pub server_env: Vec<(String, String)>,
    /// A PostgreSQL base URL (`postgres://…/db`); SQLite in the data directory when `None`.
    pub database_url: Option<String>,
    /// ChatNode processes (more than one needs `database_url`).
    pub nodes: usize,
    /// The nats-server binary, for clusters.
    pub nats_bin: PathBuf,
    /// Messages `bench-seed` writes into the conversations before the run.
    pub history: u64,
    /// Each ChatNode process held to this fraction of a core (`--node-cpu`).
    pub node_cpu: Option<f64>,
}

pub struct Target {
    pub kind: Kind,
    /// Where to connect: one address per server process.
    pub addrs: Vec<SocketAddr>,
    /// Wall seconds `bench-seed` took (ChatNode) or the peer's seed request.
    pub seed_secs: f64,
    children: Vec<Child>,
    nats: Option<Child>,
    /// The cgroups made for `--node-cpu`, removed once their processes are gone.
    cgroups: Vec<PathBuf>,
    /// Dropped after the processes (field order): the schema outlives its users.
    _schema: Option<PgSchema>,
    _dirs: Vec<tempfile::TempDir>,
}

/// A fresh PostgreSQL schema, dropped (with everything in it) on drop.
struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    fn create(base: &str) -> anyhow::Result<PgSchema> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("bench_{}_{nanos}", std::process::id());
        psql(base, &format!("CREATE SCHEMA {name}"))?;
        Ok(PgSchema {
            base: base.to_owned(),
            name,
        })
    }

    /// The database URL that puts every connection in this schema.
    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Err(e) = psql(&self.base, &format!("DROP SCHEMA {} CASCADE", self.name)) {
            eprintln!("chatnode-bench: cannot drop schema {}: {e:#}", self.name);
        }
    }
}

fn psql(base: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([base, "-qAtc", sql])
        .output()
        .context("cannot run psql")?;
    if !out.status.success() {
        bail!(
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A private nats-server on a free loopback port (no JetStream: the cluster uses core NATS).
fn start_nats(bin: &Path) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("nats-server did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, format!("nats://127.0.0.1:{port}")))
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
                if opts.nodes > 1 && opts.database_url.is_none() {
                    bail!("--nodes needs --database-url (the nodes share a PostgreSQL database)");
                }
                let schema = match &opts.database_url {
                    Some(base) => Some(PgSchema::create(base)?),
                    None => None,
                };
                let db_url = schema.as_ref().map(PgSchema::url);
                let seeded = Instant::now();
                let fixture = seed_chatnode(opts, dir.path(), db_url.as_deref(), spec)?;
                let seed_secs = seeded.elapsed().as_secs_f64();
                let mut target = Target {
                    kind,
                    addrs: Vec::new(),
                    seed_secs,
                    children: Vec::new(),
                    nats: None,
                    cgroups: Vec::new(),
                    _schema: schema,
                    _dirs: Vec::new(),
                };
                let nats_url = if opts.nodes > 1 {
                    let (child, url) = start_nats(&opts.nats_bin)?;
                    target.nats = Some(child);
                    Some(url)
                } else {
                    None
                };
                let first = dir.path().to_owned();
                target._dirs.push(dir);
                for n in 0..opts.nodes.max(1) {
                    let node_dir = if n == 0 {
                        first.clone()
                    } else {
                        // Every node signs and checks tokens, and reads the data, with the
                        // same keys.
                        let d = tempfile::Builder::new()
                            .prefix("chatnode-bench")
                            .tempdir()?;
                        for file in ["jwt_secret", "encryption_key"] {
                            std::fs::copy(first.join(file), d.path().join(file))
                                .with_context(|| format!("copying {file} to node {n}"))?;
                        }
                        let p = d.path().to_owned();
                        target._dirs.push(d);
                        p
                    };
                    let (child, addr) =
                        spawn_chatnode(opts, &node_dir, db_url.as_deref(), nats_url.as_deref())
                            .with_context(|| format!("chatnode node {n} did not start"))?;
                    let pid = child.id();
                    target.children.push(child);
                    target.addrs.push(addr);
                    if let Some(share) = opts.node_cpu {
                        target.cgroups.push(
                            cpu_cgroup(n, pid, share)
                                .with_context(|| format!("a cpu cgroup for node {n}"))?,
                        );
                    }
                }
                Ok((target, fixture))
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
                let seeded = Instant::now();
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
                        addrs: vec![addr],
                        seed_secs: seeded.elapsed().as_secs_f64(),
                        children: vec![child],
                        nats: None,
                        cgroups: Vec::new(),
                        _schema: None,
                        _dirs: vec![dir],
                    },
                    fixture,
                ))
            }
        }
    }

    /// The server processes (one, or one per cluster node).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// User + system CPU seconds the server processes have used so far (NATS not included).
    pub fn cpu_secs(&self) -> f64 {
        self.pids()
            .iter()
            .map(|p| proc_cpu_secs(&format!("/proc/{p}/stat")))
            .sum()
    }

    /// CPU seconds of the cluster's nats-server so far (`None` without one).
    pub fn nats_cpu_secs(&self) -> Option<f64> {
        let nats = self.nats.as_ref()?;
        Some(proc_cpu_secs(&format!("/proc/{}/stat", nats.id())))
    }

    /// Resident memory of each server process, in bytes.
    pub fn node_rss(&self) -> Vec<u64> {
        self.pids()
            .iter()
            .map(|p| proc_rss(&format!("/proc/{p}/status")))
            .collect()
    }

    /// Resident memory summed over the server processes, in bytes.
    pub fn rss(&self) -> u64 {
        self.node_rss().iter().sum()
    }

    /// A counter from ChatNode's `/metrics`, summed over the nodes (0 for the peers).
    pub async fn metric(&self, name: &str) -> f64 {
        if self.kind != Kind::Chatnode {
            return 0.0;
        }
        let mut sum = 0.0;
        for addr in &self.addrs {
            let Ok(resp) = reqwest::get(format!("http://{addr}/metrics")).await else {
                continue;
            };
            let text = resp.text().await.unwrap_or_default();
            sum += text
                .lines()
                .find_map(|l| {
                    let rest = l.strip_prefix(name)?;
                    rest.trim().split(' ').next()?.parse().ok()
                })
                .unwrap_or(0.0);
        }
        sum
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        for child in self.children.iter_mut().chain(self.nats.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in &self.cgroups {
            if let Err(e) = std::fs::remove_dir(dir) {
                eprintln!("chatnode-bench: cannot remove {}: {e}", dir.display());
            }
        }
    }
}

/// The cgroup v1 cpu controller's mount point.
const CPU_CGROUP_ROOT: &str = "/sys/fs/cgroup/cpu";

/// Puts process `pid` (all its threads) in a new cgroup that may use `share` of one core:
/// `cpu.cfs_quota_us` = `share` × `cpu.cfs_period_us`, with a 20 ms period (a throttled node
/// waits at most the rest of one period, so latency below saturation stays readable).
fn cpu_cgroup(node: usize, pid: u32, share: f64) -> anyhow::Result<PathBuf> {
    if !(0.01..=64.0).contains(&share) {
        bail!("--node-cpu must be between 0.01 and 64 cores, not {share}");
    }
    let dir = Path::new(CPU_CGROUP_ROOT)
        .join(format!("chatnode-bench-{}-node{node}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| {
        format!(
            "cannot create {} (is the cgroup v1 cpu controller mounted at {CPU_CGROUP_ROOT}, and are we root?)",
            dir.display()
        )
    })?;
    let period: u64 = 20_000;
    let write = |file: &str, value: String| {
        std::fs::write(dir.join(file), &value)
            .with_context(|| format!("writing {value} to {}", dir.join(file).display()))
    };
    write("cpu.cfs_period_us", period.to_string())?;
    write(
        "cpu.cfs_quota_us",
        ((share * period as f64) as u64).to_string(),
    )?;
    write("cgroup.procs", pid.to_string())?;
    Ok(dir)
}

/// Starts one `chatnode serve` on `dir` and waits for its address.
fn spawn_chatnode(
    opts: &Options,
    dir: &Path,
    db_url: Option<&str>,
    nats_url: Option<&str>,
) -> anyhow::Result<(Child, SocketAddr)> {
    let mut cmd = Command::new(&opts.server_bin);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(dir)
        // The generator's senders are far faster than people: lift the
        // per-connection frame rate limit so it measures the server, not the limit.
        .env("CHATNODE_WS_RATE", "1000000")
        .env("CHATNODE_WS_BURST", "1000000")
        .env("CHATNODE_LOG", "info,tower_http=warn,sqlx=warn");
    if let Some(url) = db_url {
        cmd.args(["--database-url", url]);
    }
    if let Some(url) = nats_url {
        cmd.args(["--nats-url", url]);
    }
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
    match wait_line(stderr, |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v["fields"]["message"] == "chatnode listening")
            .then(|| v["fields"]["addr"].as_str()?.parse().ok())
            .flatten()
    }) {
        Ok(addr) => Ok((child, addr)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Runs `chatnode bench-seed` on the data directory and database the (first) node will use.
fn seed_chatnode(
    opts: &Options,
    dir: &Path,
    db_url: Option<&str>,
    spec: &Spec,
) -> anyhow::Result<Fixture> {
    let mut cmd = Command::new(&opts.server_bin);
    cmd.arg("bench-seed").arg("--data-dir").arg(dir);
    if let Some(url) = db_url {
        cmd.args(["--database-url", url]);
    }
    if opts.history > 0 {
        cmd.args(["--history", &opts.history.to_string()]);
    }
    for (k, v) in &opts.server_env {
        cmd.env(k, v);
    }
    let mut child = cmd
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
