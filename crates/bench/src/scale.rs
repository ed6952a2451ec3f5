//! The scenarios at scale, with the sockets held by worker processes (see `worker.rs`), so
//! that a run is not limited to one process's ~20,000 files:
//!
//! - idle connections ramped to a series of checkpoints, the servers' memory at each, a
//!   least-squares line through them (bytes per connection and intercept) and the memory a
//!   few seconds after every socket was closed (is it given back?);
//! - the reconnect storm: every client drops at once, reconnects and `sync`s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::Dialer;
use crate::report::Row;
use crate::scenario::storm_row;
use crate::target::{Fixture, Target};
use crate::worker::{Connected, Workers};

const MIB: f64 = 1024.0 * 1024.0;

fn tokens(fx: &Fixture) -> Vec<String> {
    fx.users.iter().map(|u| u.token.clone()).collect()
}

fn mib_list(v: &[u64]) -> String {
    v.iter()
        .map(|b| format!("{:.0}", *b as f64 / MIB))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Least squares `y = a + b·x`: returns (b, a).
pub fn linear_fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (b, my - b * mx)
}

/// Idle connections ramped to each checkpoint (`ramp` new sockets a second in all), held
/// `hold` seconds, measured; then all closed and the memory measured `settle` seconds later.
#[allow(clippy::too_many_arguments)]
pub async fn idle(
    target: &Target,
    fx: &Fixture,
    dialer: &Arc<Dialer>,
    workers: usize,
    checkpoints: &[usize],
    ramp: u32,
    hold: u64,
    settle: u64,
) -> anyhow::Result<Vec<Row>> {
    let name = target.kind.name();
    // One connection per node first, so lazily built server state is not counted per
    // connection.
    for (i, u) in fx.users.iter().enumerate().take(target.addrs.len()) {
        drop(dialer.connect(i, &u.token).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = target.rss();
    let mut w = Workers::start(workers, dialer, &tokens(fx)).await?;
    let mut points = vec![(0.0, base as f64)];
    let mut rows = Vec::new();
    let mut last = base;
    for &c in checkpoints {
        let start = Instant::now();
        let answers: Vec<Connected> = w.connect_upto(c, ramp).await?;
        let ramp_s = start.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(hold)).await;
        let nodes = target.node_rss();
        let total: u64 = nodes.iter().sum();
        last = total;
        let connected: usize = answers.iter().map(|a| a.connected).sum();
        let failed: usize = answers.iter().map(|a| a.failed).sum();
        let closed: u64 = answers.iter().map(|a| a.closed_while_idle).sum();
        let bench_rss: u64 = answers.iter().map(|a| a.rss).sum();
        for e in answers
            .iter()
            .filter_map(|a| a.first_error.as_ref())
            .take(1)
        {
            eprintln!("  first connection error: {e}");
        }
        points.push((connected as f64, total as f64));
        let mut row = Row::new(name, "idle-scale");
        row.int("connections", connected as u64)
            .int("failed", failed as u64)
            .int("closed_while_idle", closed)
            .int("workers", workers as u64)
            .num("ramp_s", ramp_s)
            .num("server_rss_base_mib", base as f64 / MIB)
            .num("server_rss_mib", total as f64 / MIB)
            .text("node_rss_mib", mib_list(&nodes))
            .num(
                "server_bytes_per_conn",
                total.saturating_sub(base) as f64 / connected.max(1) as f64,
            )
            .num("workers_rss_mib", bench_rss as f64 / MIB);
        if failed > 0 {
            row.problem(format!("{failed} connections failed"));
        }
        if closed > 0 {
            row.problem(format!("{closed} idle connections were closed"));
        }
        println!("{}", row.one_line());
        rows.push(row);
    }
    let (slope, intercept) = linear_fit(&points);
    let closed = w.close().await?;
    tokio::time::sleep(Duration::from_secs(settle)).await;
    let after = target.node_rss();
    let after_total: u64 = after.iter().sum();
    let grown = last.saturating_sub(base) as f64;
    let mut row = Row::new(name, "idle-scale-fit");
    row.int("points", points.len() as u64)
        .num("fit_bytes_per_conn", slope)
        .num("fit_intercept_mib", intercept / MIB)
        .int("closed", closed as u64)
        .int("settle_s", settle)
        .num("server_rss_before_close_mib", last as f64 / MIB)
        .num("server_rss_after_close_mib", after_total as f64 / MIB)
        .text("node_rss_after_close_mib", mib_list(&after))
        .num(
            "returned_pct",
            if grown > 0.0 {
                100.0 * last.saturating_sub(after_total) as f64 / grown
            } else {
                0.0
            },
        );
    println!("{}", row.one_line());
    rows.push(row);
    Ok(rows)
}

/// The reconnect storm with the clients spread over worker processes: all connected and
/// authenticated, all dropped at once, all back and resynced.
pub async fn reconnect(
    target: &Target,
    fx: &Fixture,
    dialer: &Arc<Dialer>,
    workers: usize,
) -> anyhow::Result<Row> {
    let n = fx.users.len();
    let mut row = Row::new(target.kind.name(), "reconnect");
    let mut w = Workers::start(workers, dialer, &tokens(fx)).await?;
    let answers = w.connect_upto(n, 5000).await?;
    let failed: usize = answers.iter().map(|a| a.failed).sum();
    if failed > 0 {
        for e in answers
            .iter()
            .filter_map(|a| a.first_error.as_ref())
            .take(1)
        {
            eprintln!("  first connection error: {e}");
        }
        row.problem(format!("{failed} initial connections failed"));
        return Ok(row);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = target.cpu_secs();
    let rss0 = target.rss();
    let start = Instant::now();
    eprintln!("bench: storm of {n} starts");
    let reports = w.storm().await?;
    let total = start.elapsed().as_secs_f64();
    eprintln!("bench: storm ends ({total:.2} s)");
    let cpu = target.cpu_secs() - cpu0;
    storm_row(&mut row, n, &reports, total, dialer.supports_sync);
    row.int("workers", workers as u64)
        .num("server_cpu_s", cpu)
        .num("server_rss_before_mib", rss0 as f64 / MIB)
        .num("server_rss_after_mib", target.rss() as f64 / MIB);
    w.close().await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::linear_fit;

    #[test]
    fn fits_a_line() {
        let (b, a) = linear_fit(&[(0.0, 10.0), (1.0, 12.0), (2.0, 14.0), (3.0, 16.0)]);
        assert!((b - 2.0).abs() < 1e-9 && (a - 10.0).abs() < 1e-9);
    }
}
