//! Worker processes: one process may hold only ~20,000 files (the machine's hard limit), so
//! for more sockets the generator re-executes itself as `chatnode-bench worker` children, each
//! holding its share of the users' sockets.
//!
//! The protocol is JSON lines: the parent writes a [`Job`] then [`Command`]s on the worker's
//! stdin; the worker answers each command with one line on its stdout ([`Connected`],
//! [`StormReport`] or [`Closed`]). The worker's stderr is the parent's.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::mpsc;

use crate::conn::{self, Cmd, Dialer, Proto, Shared, Ws};
use crate::scenario::{self, StormReport};

/// What a worker is given: where to connect and its users (global index, token).
#[derive(Serialize, Deserialize)]
struct Job {
    addrs: Vec<SocketAddr>,
    engine_io: bool,
    supports_sync: bool,
    sources: u8,
    users: Vec<(usize, String)>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
enum Command {
    /// Connect and authenticate users until `upto` of this worker's users are connected.
    Connect { upto: usize, per_sec: u32 },
    /// Drop every socket without a close handshake, then reconnect all at once and `sync`.
    Storm,
    /// Close every socket politely.
    Close,
}

#[derive(Serialize, Deserialize)]
pub struct Connected {
    /// Users connected so far (this worker).
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Sockets the server closed so far (none should be, while idle).
    pub closed_while_idle: u64,
    /// The worker's own resident memory, in bytes.
    pub rss: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Closed {
    pub closed: usize,
}

/// One connected user in a worker: its command channel, the task owning the socket, and
/// the stream position to resume from.
struct Live {
    user: usize,
    token: String,
    pos: i64,
    tx: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

/// The worker's side: `chatnode-bench worker`.
pub async fn run() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let job: Job = read_line(&mut lines).await?;
    let proto = if job.engine_io {
        Proto::EngineIo
    } else {
        Proto::Json
    };
    let dialer = Arc::new(Dialer::new(
        job.addrs,
        proto,
        job.supports_sync,
        job.sources,
    ));
    let shared = Arc::new(Shared::new());
    let mut live: Vec<Live> = Vec::new();
    // Users tried so far (connected or failed), in `job.users` order.
    let mut tried = 0;
    let mut failed = 0;
    let mut out = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Command>(&line).context("worker command")? {
            Command::Connect { upto, per_sec } => {
                let batch = &job.users[tried..upto.clamp(tried, job.users.len())];
                let socks = scenario::connect_raw(&dialer, batch, Some(per_sec)).await;
                tried += batch.len();
                let mut first_error = None;
                for ((user, token), sock) in batch.iter().zip(socks) {
                    match sock {
                        Some((ws, pos)) => {
                            live.push(spawn(ws, proto, *user, token.clone(), pos, &shared))
                        }
                        None => {
                            failed += 1;
                            first_error.get_or_insert(format!("user {user} did not connect"));
                        }
                    }
                }
                serde_json::to_string(&Connected {
                    connected: live.len(),
                    failed,
                    first_error,
                    closed_while_idle: shared.closes.lock().expect("lock").values().sum(),
                    rss: crate::target::proc_rss("/proc/self/status"),
                })?
            }
            Command::Storm => {
                let mut users = Vec::with_capacity(live.len());
                for l in live.drain(..) {
                    let _ = l.tx.send(Cmd::Drop);
                    let _ = l.task.await;
                    users.push((l.user, l.token, l.pos));
                }
                let known: std::collections::HashMap<usize, (String, i64)> = users
                    .iter()
                    .map(|(u, t, pos)| (*u, (t.clone(), *pos)))
                    .collect();
                let (report, back) = scenario::storm(&dialer, users).await;
                for (user, ws) in back {
                    let (token, pos) = known[&user].clone();
                    live.push(spawn(ws, proto, user, token, pos, &shared));
                }
                serde_json::to_string(&report)?
            }
            Command::Close => {
                let closed = live.len();
                for l in live.drain(..) {
                    drop(l.tx);
                    // The task closes its socket once every sender is gone.
                    let _ = tokio::time::timeout(Duration::from_secs(5), l.task).await;
                }
                serde_json::to_string(&Closed { closed })?
            }
        };
        out.write_all(reply.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}

fn spawn(ws: Ws, proto: Proto, user: usize, token: String, pos: i64, shared: &Arc<Shared>) -> Live {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(conn::run(ws, proto, user, shared.clone(), rx));
    Live {
        user,
        token,
        pos,
        tx,
        task,
    }
}

async fn read_line<T: DeserializeOwned, R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
) -> anyhow::Result<T> {
    let Some(line) = lines.next_line().await? else {
        bail!("the other side closed the pipe");
    };
    serde_json::from_str(&line).with_context(|| format!("unexpected line: {line:.200}"))
}

struct Proc {
    /// Killed on drop.
    _child: Child,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
    /// Global indices of this worker's users, ascending.
    users: Vec<usize>,
}

/// The parent's side: the worker processes of a run, killed on drop.
pub struct Workers {
    procs: Vec<Proc>,
}

impl Workers {
    /// Starts `n` workers; user `i` goes to worker `i % n` (and, through the dialer's rule,
    /// to node `i % nodes`).
    pub async fn start(n: usize, dialer: &Dialer, tokens: &[String]) -> anyhow::Result<Workers> {
        let exe = std::env::current_exe().context("the generator's own path")?;
        let mut procs = Vec::with_capacity(n);
        for w in 0..n {
            let users: Vec<(usize, String)> = tokens
                .iter()
                .enumerate()
                .skip(w)
                .step_by(n)
                .map(|(i, t)| (i, t.clone()))
                .collect();
            let mut child = tokio::process::Command::new(&exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a worker")?;
            let mut stdin = child.stdin.take().expect("piped stdin");
            let out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
            let job = Job {
                addrs: dialer.addrs.clone(),
                engine_io: dialer.proto == Proto::EngineIo,
                supports_sync: dialer.supports_sync,
                sources: dialer.sources(),
                users: users.clone(),
            };
            let mut line = serde_json::to_vec(&job)?;
            line.push(b'\n');
            stdin.write_all(&line).await?;
            procs.push(Proc {
                _child: child,
                stdin,
                out,
                users: users.into_iter().map(|(i, _)| i).collect(),
            });
        }
        Ok(Workers { procs })
    }

    /// Sends each worker its command, then reads every answer (the workers work in parallel).
    async fn all<T: DeserializeOwned>(
        &mut self,
        cmd: impl Fn(&Proc) -> Command,
    ) -> anyhow::Result<Vec<T>> {
        for p in &mut self.procs {
            let mut line = serde_json::to_vec(&cmd(p))?;
            line.push(b'\n');
            p.stdin.write_all(&line).await?;
            p.stdin.flush().await?;
        }
        let mut out = Vec::with_capacity(self.procs.len());
        for p in &mut self.procs {
            out.push(read_line(&mut p.out).await.context("a worker's answer")?);
        }
        Ok(out)
    }

    /// Connects users `0..total` (`per_sec` new sockets a second in all).
    pub async fn connect_upto(
        &mut self,
        total: usize,
        per_sec: u32,
    ) -> anyhow::Result<Vec<Connected>> {
        let share = (per_sec as usize / self.procs.len()).max(1) as u32;
        self.all(|p| Command::Connect {
            upto: p.users.partition_point(|&i| i < total),
            per_sec: share,
        })
        .await
    }

    /// Every worker drops its sockets and reconnects them at once.
    pub async fn storm(&mut self) -> anyhow::Result<Vec<StormReport>> {
        self.all(|_| Command::Storm).await
    }

    /// Every worker closes its sockets politely; returns how many were closed.
    pub async fn close(&mut self) -> anyhow::Result<usize> {
        let closed: Vec<Closed> = self.all(|_| Command::Close).await?;
        Ok(closed.iter().map(|c| c.closed).sum())
    }
}
