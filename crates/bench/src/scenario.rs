//! The scenarios. Each starts from a fresh server (see `target.rs`), opens its connections,
//! drives load open-loop (messages leave on a fixed schedule whether or not earlier ones were
//! answered; latency is measured from the *scheduled* time, so a stalled server cannot hide
//! its stall) and returns one report row per step.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{self, Cmd, Dialer, Proto, Shared, Ws};
use crate::report::Row;
use crate::target::{Fixture, Target};

const MIB: f64 = 1024.0 * 1024.0;

/// Live connections of a run: a command channel per user (dead for those that failed).
pub struct Fleet {
    pub txs: Vec<mpsc::UnboundedSender<Cmd>>,
    pub positions: Vec<i64>,
    pub failed: usize,
    pub shared: Arc<Shared>,
    pub proto: Proto,
}

/// Connects `users` (index, token) (at most `per_sec` new sockets a second, if given; 512
/// handshakes in flight at most) and returns the connected sockets in order, `None` for
/// failures.
pub async fn connect_raw(
    dialer: &Arc<Dialer>,
    users: &[(usize, String)],
    per_sec: Option<u32>,
) -> Vec<Option<(Ws, i64)>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(512));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(users.len());
    for (i, (user, token)) in users.iter().enumerate() {
        if let Some(rate) = per_sec {
            let at = start + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
            tokio::time::sleep_until(at.into()).await;
        }
        let permit = gate.clone().acquire_owned().await.expect("semaphore open");
        let dialer = dialer.clone();
        let (user, token) = (*user, token.clone());
        tasks.push(tokio::spawn(async move {
            let r = dialer.connect(user, &token).await;
            drop(permit);
            r
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for t in tasks {
        match t.await.expect("connect task") {
            Ok(v) => out.push(Some(v)),
            Err(e) => {
                first_error.get_or_insert(e);
                out.push(None);
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!("  first connection error: {e:#}");
    }
    out
}

/// Users numbered from 0.
pub fn numbered(tokens: &[String]) -> Vec<(usize, String)> {
    tokens.iter().cloned().enumerate().collect()
}

pub async fn open_fleet(dialer: &Arc<Dialer>, tokens: &[String], per_sec: Option<u32>) -> Fleet {
    let shared = Arc::new(Shared::new());
    let socks = connect_raw(dialer, &numbered(tokens), per_sec).await;
    let mut fleet = Fleet {
        txs: Vec::with_capacity(socks.len()),
        positions: Vec::with_capacity(socks.len()),
        failed: 0,
        shared: shared.clone(),
        proto: dialer.proto,
    };
    for (i, s) in socks.into_iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        match s {
            Some((ws, pos)) => {
                tokio::spawn(conn::run(ws, dialer.proto, i, shared.clone(), rx));
                fleet.positions.push(pos);
            }
            None => {
                fleet.failed += 1;
                fleet.positions.push(0);
            }
        }
        fleet.txs.push(tx);
    }
    fleet
}

/// Samples the summed resident memory of processes every 100 ms; `stop` returns the peak.
struct PeakRss {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(u64, Vec<u64>)>,
}

impl PeakRss {
    fn start(pids: Vec<u32>) -> PeakRss {
        let (stop, mut rx) = tokio::sync::oneshot::channel();
        let paths: Vec<String> = pids.iter().map(|p| format!("/proc/{p}/status")).collect();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            let mut series = Vec::new();
            let mut n = 0u64;
            loop {
                let v: u64 = paths.iter().map(|p| crate::target::proc_rss(p)).sum();
                peak = peak.max(v);
                if n.is_multiple_of(10) {
                    series.push(v);
                }
                n += 1;
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            (peak, series)
        });
        PeakRss { stop, task }
    }

    async fn finish(self) -> (u64, Vec<u64>) {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

fn bench_cpu() -> f64 {
    crate::target::proc_cpu_secs("/proc/self/stat")
}

/// Sends `rate` messages a second for `dur`, round-robin over `slots` (connection, conversation).
async fn drive(
    fleet: &Fleet,
    slots: &[(usize, String)],
    rate: f64,
    dur: Duration,
    tag: &str,
) -> u64 {
    let total = (rate * dur.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let start_us = fleet.shared.now_us();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        while sent < due {
            let scheduled = start_us + (sent as f64 * 1e6 / rate) as u64;
            let (conn, conv) = &slots[sent as usize % slots.len()];
            let body = conn::make_body(scheduled, *conn);
            let frame = conn::send_frame(fleet.proto, conv, &format!("{tag}-{sent}"), &body);
            let _ = fleet.txs[*conn].send(Cmd::Send(frame));
            sent += 1;
        }
    }
    sent
}

/// One load step: drive, wait for every ack and delivery (10 s at most), report.
#[allow(clippy::too_many_arguments)]
async fn step(
    target: &Target,
    fleet: &Fleet,
    slots: &[(usize, String)],
    scenario: &str,
    rate: f64,
    dur: Duration,
    recipients: u64,
    tag: &str,
) -> Row {
    let sh = &fleet.shared;
    sh.reset();
    let (d0, a0, e0) = (
        sh.delivered.load(Ordering::Relaxed),
        sh.acked.load(Ordering::Relaxed),
        sh.errors.load(Ordering::Relaxed),
    );
    let cpu0 = target.cpu_secs();
    let nats0 = target.nats_cpu_secs();
    let bcpu0 = bench_cpu();
    let batches0 = target.metric("chatnode_message_batches_total").await;
    let rss = PeakRss::start(target.pids());
    let start = Instant::now();
    let sent = drive(fleet, slots, rate, dur, tag).await;
    let expected = sent * recipients;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut done_at = start.elapsed();
    loop {
        let acked = sh.acked.load(Ordering::Relaxed) - a0;
        let delivered = sh.delivered.load(Ordering::Relaxed) - d0;
        if acked >= sent && delivered >= expected {
            done_at = start.elapsed();
            break;
        }
        if Instant::now() > deadline {
            done_at = done_at.max(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu = target.cpu_secs() - cpu0;
    let nats_cpu = target.nats_cpu_secs().zip(nats0).map(|(b, a)| b - a);
    let bcpu = bench_cpu() - bcpu0;
    let batches = target.metric("chatnode_message_batches_total").await - batches0;
    let (peak, _) = rss.finish().await;
    let acked = sh.acked.load(Ordering::Relaxed) - a0;
    let delivered = sh.delivered.load(Ordering::Relaxed) - d0;
    let errors = sh.errors.load(Ordering::Relaxed) - e0;
    let lat = sh.delivery_histogram();
    let ack = sh.ack_histogram();
    let secs = done_at.as_secs_f64();
    let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mut row = Row::new(target.kind.name(), scenario);
    row.num("offered_msg_s", rate)
        .int("sent", sent)
        .int("acked", acked)
        .int("delivered", delivered)
        .int("expected", expected)
        .int("errors", errors)
        .num("msg_s", acked as f64 / secs)
        .num("deliveries_s", delivered as f64 / secs)
        .num("p50_ms", ms(&lat, 0.5))
        .num("p90_ms", ms(&lat, 0.9))
        .num("p99_ms", ms(&lat, 0.99))
        .num("p999_ms", ms(&lat, 0.999))
        .num("max_ms", lat.max() as f64 / 1000.0)
        .num("ack_p50_ms", ms(&ack, 0.5))
        .num("ack_p99_ms", ms(&ack, 0.99))
        .num("server_cpu_s", cpu)
        .num("server_cores", cpu / secs)
        .num(
            "msg_per_cpu_s",
            if cpu > 0.0 { acked as f64 / cpu } else { 0.0 },
        )
        .num("server_rss_mib", peak as f64 / MIB)
        .num("bench_cores", bcpu / secs);
    if let Some(nats) = nats_cpu {
        // The cluster's nats-server, not included in server_cpu_s.
        row.num("nats_cpu_s", nats);
    }
    if batches > 0.0 {
        // Group commit: messages per transaction (ChatNode only).
        row.num("msgs_per_commit", acked as f64 / batches);
    }
    if acked < sent {
        row.problem(format!("{} of {sent} sends not acked", sent - acked));
    }
    if delivered < expected {
        row.problem(format!(
            "{} of {expected} deliveries missing",
            expected - delivered
        ));
    }
    if errors > 0 {
        row.problem(format!("{errors} error frames"));
    }
    row
}

fn tokens(fx: &Fixture) -> Vec<String> {
    fx.users.iter().map(|u| u.token.clone()).collect()
}

/// Idle connections: memory per authenticated socket.
pub async fn idle(
    target: &Target,
    fx: &Fixture,
    dialer: &Arc<Dialer>,
    ramp: u32,
    hold: u64,
) -> Row {
    // One request first, so lazily built server state is not counted per connection.
    let warm = dialer.connect(0, &fx.users[0].token).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = target.rss();
    let bench0 = crate::target::proc_rss("/proc/self/status");
    let start = Instant::now();
    let fleet = open_fleet(dialer, &tokens(fx), Some(ramp)).await;
    let ramp_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(hold)).await;
    let rss1 = target.rss();
    let bench1 = crate::target::proc_rss("/proc/self/status");
    let connected = fx.users.len() - fleet.failed;
    let closed: u64 = fleet.shared.closes.lock().expect("lock").values().sum();
    let mut row = Row::new(target.kind.name(), "idle");
    row.int("connections", connected as u64)
        .int("failed", fleet.failed as u64)
        .int("closed_while_idle", closed)
        .num("ramp_s", ramp_s)
        .num("server_rss_before_mib", rss0 as f64 / MIB)
        .num("server_rss_after_mib", rss1 as f64 / MIB)
        .num(
            "server_bytes_per_conn",
            rss1.saturating_sub(rss0) as f64 / connected.max(1) as f64,
        )
        .num(
            "bench_bytes_per_conn",
            bench1.saturating_sub(bench0) as f64 / connected.max(1) as f64,
        );
    if fleet.failed > 0 {
        row.problem(format!("{} connections failed", fleet.failed));
    }
    if closed > 0 {
        row.problem(format!("{closed} idle connections were closed"));
    }
    drop(fleet);
    row
}

/// Fixture: `pairs` direct conversations between users 2i and 2i+1.
pub fn pairs_spec(pairs: usize) -> crate::target::Spec {
    crate::target::Spec {
        users: pairs * 2,
        conversations: (0..pairs).map(|i| vec![2 * i, 2 * i + 1]).collect(),
    }
}

/// Fixture: `groups` groups of `size` members.
pub fn groups_spec(size: usize, groups: usize) -> crate::target::Spec {
    crate::target::Spec {
        users: size * groups,
        conversations: (0..groups)
            .map(|g| (g * size..(g + 1) * size).collect())
            .collect(),
    }
}

/// Every member of every conversation takes turns sending; consecutive messages go to
/// different conversations.
fn slots(fx: &Fixture) -> Vec<(usize, String)> {
    let longest = fx
        .conversations
        .iter()
        .map(|c| c.members.len())
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for m in 0..longest {
        for c in &fx.conversations {
            if let Some(&u) = c.members.get(m) {
                out.push((u, c.id.clone()));
            }
        }
    }
    out
}

/// A ladder of rates over the fixture's conversations (one-to-one or groups).
#[allow(clippy::too_many_arguments)]
pub async fn ladder(
    target: &Target,
    fx: &Fixture,
    dialer: &Arc<Dialer>,
    scenario: &str,
    rates: &[u64],
    step_secs: u64,
    stop_p99_ms: f64,
) -> Vec<Row> {
    let fleet = open_fleet(dialer, &tokens(fx), None).await;
    let recipients = fx.conversations[0].members.len() as u64 - 1;
    let slots = slots(fx);
    let mut rows = Vec::new();
    if fleet.failed > 0 {
        let mut row = Row::new(target.kind.name(), scenario);
        row.problem(format!("{} connections failed", fleet.failed));
        rows.push(row);
        return rows;
    }
    for (i, &rate) in rates.iter().enumerate() {
        let tag = format!("s{i}r{rate}");
        // Progress on stderr, for tools that measure beside a step (scripts/cpu-split).
        eprintln!("bench: step {tag} ({rate} msg/s for {step_secs} s) starts");
        let mut row = step(
            target,
            &fleet,
            &slots,
            scenario,
            rate as f64,
            Duration::from_secs(step_secs),
            recipients,
            &tag,
        )
        .await;
        row.int("members", recipients + 1)
            .int("conversations", fx.conversations.len() as u64);
        let p99 = row.get("p99_ms");
        let failed = !row.problems.is_empty();
        println!("{}", row.one_line());
        rows.push(row);
        if failed || p99 > stop_p99_ms {
            println!(
                "  (stopping the ladder: this step failed or its p99 passed {stop_p99_ms} ms)"
            );
            break;
        }
        // Let queues drain and the WAL checkpoint between steps.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    rows
}

/// N clients drop at once and come back: reconnect, authenticate, resume with `sync`.
pub async fn reconnect(target: &Target, fx: &Fixture, dialer: &Arc<Dialer>) -> Row {
    let fleet = open_fleet(dialer, &tokens(fx), Some(5000)).await;
    let n = fx.users.len();
    let mut row = Row::new(target.kind.name(), "reconnect");
    if fleet.failed > 0 {
        row.problem(format!("{} initial connections failed", fleet.failed));
        return row;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for tx in &fleet.txs {
        let _ = tx.send(Cmd::Drop);
    }
    let users: Vec<(usize, String, i64)> = fx
        .users
        .iter()
        .zip(&fleet.positions)
        .enumerate()
        .map(|(i, (u, &pos))| (i, u.token.clone(), pos))
        .collect();
    drop(fleet);
    let start = Instant::now();
    eprintln!("bench: storm of {n} starts");
    let (report, back) = storm(dialer, users).await;
    let total = start.elapsed().as_secs_f64();
    eprintln!("bench: storm ends ({total:.2} s)");
    storm_row(&mut row, n, &[report], total, dialer.supports_sync);
    drop(back);
    row
}

/// What one storm (in this process or a worker) measured.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub struct StormReport {
    /// Each resumed client's time from the storm's start to `synced` (or `ready`), in µs.
    pub lat_us: Vec<u64>,
    pub failed: u64,
    pub retried: u64,
    pub first_error: Option<String>,
}

/// The storm: every user (index, token, stream position) reconnects at once, no pacing, and
/// resumes, retrying as a real client does: up to 8 attempts, backing off 0.1, 0.2, 0.4 …
/// 6.4 s plus a spread of up to half that (by index) between them; returns the measurements
/// and the new sockets.
pub async fn storm(
    dialer: &Arc<Dialer>,
    users: Vec<(usize, String, i64)>,
) -> (StormReport, Vec<(usize, Ws)>) {
    let mut tasks = Vec::with_capacity(users.len());
    for (i, token, pos) in users {
        let dialer = dialer.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let mut attempts = 0;
            loop {
                attempts += 1;
                match resume(&dialer, i, &token, pos).await {
                    Ok(ws) => return Ok((t0.elapsed(), attempts, i, ws)),
                    Err(e) if attempts >= 8 => return Err(e),
                    Err(_) => {
                        let backoff = 100u64 << (attempts - 1).min(6);
                        let spread = (i as u64).wrapping_mul(7919) % (backoff / 2 + 1);
                        tokio::time::sleep(Duration::from_millis(backoff + spread)).await
                    }
                }
            }
        }));
    }
    let mut report = StormReport::default();
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await.expect("resume task") {
            Ok((d, attempts, i, ws)) => {
                report.lat_us.push(d.as_micros().max(1) as u64);
                if attempts > 1 {
                    report.retried += 1;
                }
                back.push((i, ws));
            }
            Err(e) => {
                report.failed += 1;
                report.first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    (report, back)
}

/// Fills a reconnect row from the storms' reports (one per worker); `total_s` is the time
/// until the last client was back.
pub fn storm_row(row: &mut Row, n: usize, reports: &[StormReport], total_s: f64, sync: bool) {
    let mut hist =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let (mut failed, mut retried) = (0, 0);
    for r in reports {
        for &v in &r.lat_us {
            let _ = hist.record(v.min(600_000_000));
        }
        failed += r.failed;
        retried += r.retried;
        if let Some(e) = &r.first_error {
            eprintln!("  first resume error: {e}");
        }
    }
    row.int("clients", n as u64)
        .int("resumed", n as u64 - failed)
        .int("failed", failed)
        .int("needed_retry", retried)
        .num("all_resumed_s", total_s)
        .num("p50_ms", hist.value_at_quantile(0.5) as f64 / 1000.0)
        .num("p99_ms", hist.value_at_quantile(0.99) as f64 / 1000.0)
        .num("max_ms", hist.max() as f64 / 1000.0)
        .int("with_sync", sync as u64);
    if failed > 0 {
        row.problem(format!("{failed} clients could not resume"));
    }
}

async fn resume(dialer: &Dialer, user: usize, token: &str, pos: i64) -> anyhow::Result<Ws> {
    use futures_util::SinkExt;
    let (mut ws, _) = dialer.connect(user, token).await?;
    if dialer.supports_sync {
        ws.send(Message::text(conn::sync_frame(pos))).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    if t.contains(r#""type":"synced""#) {
                        return Ok(ws);
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => anyhow::bail!("no `synced` after sync"),
            }
        }
    }
    Ok(ws)
}

/// Clients that never read while one sender floods their group; a healthy member keeps
/// reading. Reports the server's memory over time and how the slow ones were closed.
pub async fn slow(
    target: &Target,
    fx: &Fixture,
    dialer: &Arc<Dialer>,
    rate: u64,
    secs: u64,
) -> Row {
    let conv = fx.conversations[0].id.clone();
    let all = tokens(fx);
    // Users 0 (sender) and 1 (healthy reader) are driven normally.
    let fleet = open_fleet(dialer, &all[..2], None).await;
    let slow_socks = connect_raw(dialer, &numbered(&all)[2..], None).await;
    let slow_n = slow_socks.iter().filter(|s| s.is_some()).count();
    let mut row = Row::new(target.kind.name(), "slow");
    if fleet.failed > 0 || slow_n < all.len() - 2 {
        row.problem("connections failed".into());
        return row;
    }
    let rss0 = target.rss();
    let rss = PeakRss::start(target.pids());
    let slots = vec![(0usize, conv)];
    let sh = fleet.shared.clone();
    let start = Instant::now();
    let sent = drive(
        &fleet,
        &slots,
        rate as f64,
        Duration::from_secs(secs),
        "slow",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sh.delivered.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (peak, series) = rss.finish().await;
    let rss_end = target.rss();
    let slow_closed = target.metric("chatnode_ws_slow_closed_total").await;
    // Now the slow clients read what is waiting for them, to see how they were closed.
    let mut readers = Vec::new();
    for (ws, _) in slow_socks.into_iter().flatten() {
        readers.push(tokio::spawn(async move {
            let mut ws = ws;
            let mut frames = 0u64;
            loop {
                match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                    Ok(Some(Ok(Message::Close(f)))) => {
                        return (frames, f.map_or(1005, |f| u16::from(f.code)));
                    }
                    Ok(Some(Ok(_))) => frames += 1,
                    Ok(Some(Err(_))) | Ok(None) => return (frames, 1006),
                    // Still open and nothing more to read: never closed.
                    Err(_) => return (frames, 0),
                }
            }
        }));
    }
    let mut closed_4008 = 0;
    let mut still_open = 0;
    let mut frames_buffered = 0;
    for r in readers {
        let (frames, code) = r.await.unwrap_or((0, 0));
        frames_buffered += frames;
        match code {
            4008 => closed_4008 += 1,
            0 => still_open += 1,
            _ => {}
        }
    }
    let delivered = sh.delivered.load(Ordering::Relaxed);
    let lat = sh.delivery_histogram();
    row.int("slow_clients", slow_n as u64)
        .num("offered_msg_s", rate as f64)
        .int("sent", sent)
        .int("healthy_delivered", delivered)
        .num(
            "healthy_p99_ms",
            lat.value_at_quantile(0.99) as f64 / 1000.0,
        )
        .num("secs", elapsed)
        .num("server_rss_start_mib", rss0 as f64 / MIB)
        .num("server_rss_peak_mib", peak as f64 / MIB)
        .num("server_rss_end_mib", rss_end as f64 / MIB)
        .int("slow_closed_metric", slow_closed as u64)
        .int("slow_saw_4008", closed_4008)
        .int("slow_still_open", still_open)
        .int("slow_frames_buffered", frames_buffered)
        .text(
            "rss_series_mib",
            series
                .iter()
                .map(|v| format!("{:.0}", *v as f64 / MIB))
                .collect::<Vec<_>>()
                .join(" "),
        );
    if delivered < sent {
        row.problem(format!(
            "the healthy member missed {} of {sent} messages",
            sent - delivered
        ));
    }
    if target.kind == crate::target::Kind::Chatnode && (slow_closed as usize) < slow_n {
        row.problem(format!(
            "only {slow_closed} of {slow_n} slow clients were closed"
        ));
    }
    drop(fleet);
    row
}

pub fn slow_spec(slow: usize) -> crate::target::Spec {
    crate::target::Spec {
        users: slow + 2,
        conversations: vec![(0..slow + 2).collect()],
    }
}

pub fn users_spec(n: usize) -> crate::target::Spec {
    crate::target::Spec {
        users: n,
        conversations: Vec::new(),
    }
}
