//! `chatnode-bench`: an open-loop load generator for ChatNode and the Node.js peers in
//! `bench/peers/`, speaking each server's real protocol over real sockets. Every scenario
//! starts a fresh server process (so its memory and CPU can be read from `/proc`), creates
//! its users in bulk, runs, prints a table and optionally writes JSON. See
//! `docs/benchmarks.md` and `docs/bench-scale.md` for the commands and the figures.

mod conn;
mod report;
mod scale;
mod scenario;
mod search;
mod target;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::conn::Dialer;
use crate::report::Row;
use crate::target::{Kind, Options, Spec, Target};

#[derive(Parser)]
#[command(
    name = "chatnode-bench",
    about = "Load generator for ChatNode and its Node.js peers"
)]
struct Cli {
    /// Servers to measure, one after the other, each fresh
    #[arg(long, value_delimiter = ',', default_value = "chatnode")]
    targets: Vec<Kind>,
    /// The chatnode binary
    #[arg(long, default_value = "target/release/chatnode")]
    server_bin: PathBuf,
    /// The Node.js peers (after `npm ci` there)
    #[arg(long, default_value = "bench/peers")]
    peers_dir: PathBuf,
    /// Extra environment for chatnode serve, e.g. CHATNODE_WS_QUEUE=256 (repeatable)
    #[arg(long = "server-env", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
    /// Spread client sockets over source addresses 127.0.0.1..=127.0.0.N
    #[arg(long, default_value_t = 16)]
    sources: u8,
    /// Also write the rows as a JSON array to this file
    #[arg(long)]
    json: Option<PathBuf>,
    /// Exit non-zero when any step lost a message or a connection
    #[arg(long)]
    strict: bool,
    /// Run ChatNode on PostgreSQL (postgres://…/db): each run gets a fresh schema, dropped after
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// ChatNode processes sharing the database and a private NATS (needs --database-url)
    #[arg(long, global = true, default_value_t = 1)]
    nodes: usize,
    /// Hold the sockets in this many worker processes (idle and reconnect; 0 = this process)
    #[arg(long, global = true, default_value_t = 0)]
    workers: usize,
    /// Hold each ChatNode process to this fraction of one core (a cgroup v1 cpu quota under
    /// /sys/fs/cgroup/cpu, made for the run and removed after it; needs root). PostgreSQL,
    /// NATS and the generator stay unconstrained.
    #[arg(long, global = true)]
    node_cpu: Option<f64>,
    /// The nats-server binary, for --nodes
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    nats_server: PathBuf,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// Ramp up idle authenticated connections; report memory per connection
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// New connections per second
        #[arg(long, default_value_t = 5_000)]
        ramp: u32,
        /// Seconds to hold before measuring
        #[arg(long, default_value_t = 5)]
        hold: u64,
        /// Measure at each of these counts, fit a line, then close all and measure again
        /// (sockets held by worker processes; --connections is then the last checkpoint)
        #[arg(long, value_delimiter = ',')]
        checkpoints: Vec<usize>,
        /// Seconds after closing every socket before measuring the memory given back
        #[arg(long, default_value_t = 5)]
        settle: u64,
    },
    /// One-to-one messages at a ladder of rates (messages per second)
    OneToOne {
        #[arg(long, default_value_t = 1_000)]
        pairs: usize,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1000,2000,5000,10000,20000,30000"
        )]
        rates: Vec<u64>,
        #[arg(long, default_value_t = 10)]
        step_secs: u64,
        /// Stop climbing once a step's p99 passes this
        #[arg(long, default_value_t = 2000.0)]
        stop_p99_ms: f64,
        /// Messages `chatnode bench-seed` stores in the conversations before the run
        #[arg(long, default_value_t = 0)]
        history: u64,
    },
    /// Group messages at a ladder of rates (messages per second; deliveries = rate × (size − 1))
    Fanout {
        #[arg(long, default_value_t = 100)]
        group_size: usize,
        #[arg(long, default_value_t = 10)]
        groups: usize,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "100,200,500,1000,1500,2000"
        )]
        rates: Vec<u64>,
        #[arg(long, default_value_t = 10)]
        step_secs: u64,
        #[arg(long, default_value_t = 2000.0)]
        stop_p99_ms: f64,
    },
    /// N connected clients drop at once and reconnect (and `sync`, on ChatNode)
    Reconnect {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
    },
    /// Clients that never read, in a group flooded by one sender
    Slow {
        #[arg(long, default_value_t = 20)]
        slow_clients: usize,
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        #[arg(long, default_value_t = 15)]
        secs: u64,
    },
    /// Search latency over a stored history (ChatNode only): one user in many conversations
    /// runs queries of every kind, one after the other
    Search {
        /// Two-person conversations
        #[arg(long, default_value_t = 1_000)]
        pairs: usize,
        /// More conversations of the searching user's (it is in extra + 1)
        #[arg(long, default_value_t = 49)]
        extra: usize,
        /// Messages `chatnode bench-seed` stores before the run
        #[arg(long, default_value_t = 1_000_000)]
        history: u64,
        /// Times every query is run
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// A few seconds of every scenario, failing on any loss (run by CI)
    Smoke,
    /// (internal) Hold sockets for a parent generator; see worker.rs
    #[command(hide = true)]
    Worker,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((k.into(), v.into()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest is built with rustls but no provider of its own (the workspace picks ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Every socket is a file: take the whole allowance the machine gives.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => eprintln!("chatnode-bench: open-file limit {n}"),
        Err(e) => eprintln!("chatnode-bench: cannot raise the open-file limit: {e}"),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = if matches!(cli.scenario, Scenario::Worker) {
        rt.block_on(worker::run()).map(|()| true)
    } else {
        rt.block_on(run(cli))
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chatnode-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let base_opts = Options {
        server_bin: cli.server_bin.clone(),
        peers_dir: cli.peers_dir.clone(),
        server_env: cli.server_env.clone(),
        database_url: cli.database_url.clone(),
        nodes: cli.nodes.max(1),
        nats_bin: cli.nats_server.clone(),
        history: 0,
        node_cpu: cli.node_cpu,
    };
    let plan: Vec<Scenario> = match &cli.scenario {
        Scenario::Smoke => vec![
            Scenario::Idle {
                connections: 300,
                ramp: 2000,
                hold: 1,
                checkpoints: Vec::new(),
                settle: 0,
            },
            Scenario::OneToOne {
                pairs: 50,
                rates: vec![500],
                step_secs: 2,
                stop_p99_ms: f64::MAX,
                history: 0,
            },
            Scenario::Fanout {
                group_size: 10,
                groups: 5,
                rates: vec![200],
                step_secs: 2,
                stop_p99_ms: f64::MAX,
            },
            Scenario::Reconnect { clients: 300 },
            Scenario::Slow {
                slow_clients: 3,
                rate: 5000,
                secs: 4,
            },
        ],
        other => vec![other.clone()],
    };
    let strict = cli.strict || matches!(cli.scenario, Scenario::Smoke);
    let mut rows: Vec<Row> = Vec::new();
    for sc in &plan {
        for &kind in &cli.targets {
            let name = scenario_name(sc);
            println!("-- {} / {name}", kind.name());
            let spec = spec_for(sc);
            let opts = Options {
                history: match sc {
                    Scenario::OneToOne { history, .. } | Scenario::Search { history, .. } => {
                        *history
                    }
                    _ => 0,
                },
                ..base_opts.clone()
            };
            let (target, fixture) = Target::start(kind, &opts, &spec).await?;
            let dialer = Arc::new(Dialer::new(
                target.addrs.clone(),
                kind.proto(),
                kind == Kind::Chatnode,
                cli.sources,
            ));
            let new_rows = match sc.clone() {
                Scenario::Idle {
                    connections,
                    ramp,
                    hold,
                    checkpoints,
                    settle,
                } if cli.workers > 0 || !checkpoints.is_empty() => {
                    let checkpoints = if checkpoints.is_empty() {
                        vec![connections]
                    } else {
                        checkpoints
                    };
                    scale::idle(
                        &target,
                        &fixture,
                        &dialer,
                        cli.workers.max(1),
                        &checkpoints,
                        ramp,
                        hold,
                        settle,
                    )
                    .await?
                }
                Scenario::Idle { ramp, hold, .. } => {
                    vec![scenario::idle(&target, &fixture, &dialer, ramp, hold).await]
                }
                Scenario::OneToOne {
                    rates,
                    step_secs,
                    stop_p99_ms,
                    ..
                } => {
                    scenario::ladder(
                        &target,
                        &fixture,
                        &dialer,
                        "one-to-one",
                        &rates,
                        step_secs,
                        stop_p99_ms,
                    )
                    .await
                }
                Scenario::Fanout {
                    group_size,
                    rates,
                    step_secs,
                    stop_p99_ms,
                    ..
                } => {
                    let name = format!("fanout-{group_size}");
                    scenario::ladder(
                        &target,
                        &fixture,
                        &dialer,
                        &name,
                        &rates,
                        step_secs,
                        stop_p99_ms,
                    )
                    .await
                }
                Scenario::Reconnect { .. } if cli.workers > 0 => {
                    vec![scale::reconnect(&target, &fixture, &dialer, cli.workers).await?]
                }
                Scenario::Reconnect { .. } => {
                    vec![scenario::reconnect(&target, &fixture, &dialer).await]
                }
                Scenario::Slow { rate, secs, .. } => {
                    vec![scenario::slow(&target, &fixture, &dialer, rate, secs).await]
                }
                Scenario::Search { rounds, .. } => {
                    anyhow::ensure!(kind == Kind::Chatnode, "search runs against chatnode only");
                    vec![search::run(&target, &fixture, rounds).await?]
                }
                Scenario::Smoke | Scenario::Worker => unreachable!("handled above"),
            };
            // Anything else running on the machine shares its 2 cores: record how busy it was.
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let load1: f64 = load
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            let mut new_rows = new_rows;
            for r in &mut new_rows {
                r.num("loadavg_1m_after", load1);
                r.num("seed_s", target.seed_secs);
                if kind == Kind::Chatnode && opts.database_url.is_some() {
                    r.text("db", "postgres".into())
                        .int("nodes", target.addrs.len() as u64);
                }
                if opts.history > 0 {
                    r.int("history", opts.history);
                }
                if let Some(q) = opts.node_cpu {
                    r.num("node_cpu_quota", q);
                }
            }
            for r in &new_rows {
                let scaled = r.scenario.starts_with("idle-scale");
                if !scaled && !matches!(sc, Scenario::OneToOne { .. } | Scenario::Fanout { .. }) {
                    println!("{}", r.one_line());
                }
            }
            rows.extend(new_rows);
            drop(target);
        }
    }
    report::print_tables(&rows);
    if let Some(path) = &cli.json {
        let v: Vec<_> = rows.iter().map(Row::to_json).collect();
        std::fs::write(path, serde_json::to_string_pretty(&v)?)?;
        println!("\nwrote {}", path.display());
    }
    let clean = rows.iter().all(|r| r.problems.is_empty());
    if strict && !clean {
        println!("\nFAILED: some steps lost messages or connections (see PROBLEM lines)");
        return Ok(false);
    }
    Ok(true)
}

fn scenario_name(sc: &Scenario) -> &'static str {
    match sc {
        Scenario::Idle { .. } => "idle",
        Scenario::OneToOne { .. } => "one-to-one",
        Scenario::Fanout { .. } => "fanout",
        Scenario::Reconnect { .. } => "reconnect",
        Scenario::Slow { .. } => "slow",
        Scenario::Search { .. } => "search",
        Scenario::Smoke => "smoke",
        Scenario::Worker => "worker",
    }
}

fn spec_for(sc: &Scenario) -> Spec {
    match sc {
        Scenario::Idle {
            connections,
            checkpoints,
            ..
        } => scenario::users_spec(checkpoints.iter().copied().max().unwrap_or(*connections)),
        Scenario::OneToOne { pairs, .. } => scenario::pairs_spec(*pairs),
        Scenario::Fanout {
            group_size, groups, ..
        } => scenario::groups_spec(*group_size, *groups),
        Scenario::Reconnect { clients } => scenario::users_spec(*clients),
        Scenario::Slow { slow_clients, .. } => scenario::slow_spec(*slow_clients),
        Scenario::Search { pairs, extra, .. } => search::spec(*pairs, *extra),
        Scenario::Smoke | Scenario::Worker => Spec::default(),
    }
}
