//! Failures a test can inject into a running server, named in the `CHATNODE_FAILPOINTS`
//! environment variable (read once at start; unset in production, where every check is one
//! load of an empty list). Comma-separated `name=count` entries:
//!
//! - `writer-panic=N`: the next N message batches panic inside the writer;
//! - `writer-short=N`: the next N batches return no result at all (as a broken store would);
//! - `writer-error=N`: the next N batches fail as if the database were gone.
//! - `batch-hold=N`: each of the next N PostgreSQL send batches waits half a second inside its
//!   transaction, after its writes and before its commit (`SELECT pg_sleep(0.5)`, marked
//!   `chatnode failpoint batch-hold` in `pg_stat_activity`), so a test can freeze the node
//!   while it holds an open batch transaction and its row locks.
//! - `ws-auth-unavailable=N`: the next N WebSocket token checks fail as if the database were
//!   gone (the session lookup).
//! - `search-index-off=always`: new messages are not indexed for search (searches then find
//!   them in the unindexed tail only).
//!
//! `count` may be `always`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::{Error, Result};
use crate::store::SendOutcome;

struct Point {
    name: String,
    /// Hits left; negative: always.
    left: AtomicI64,
}

fn points() -> &'static [Point] {
    static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
    POINTS.get_or_init(|| {
        let Ok(spec) = std::env::var("CHATNODE_FAILPOINTS") else {
            return Vec::new();
        };
        let points: Vec<Point> = spec
            .split(',')
            .filter_map(|e| {
                let (name, count) = e.trim().split_once('=')?;
                let left = match count {
                    "always" => -1,
                    n => n.parse().ok()?,
                };
                Some(Point {
                    name: name.to_owned(),
                    left: AtomicI64::new(left),
                })
            })
            .collect();
        if !points.is_empty() {
            tracing::warn!(%spec, "failpoints armed (CHATNODE_FAILPOINTS): for tests only");
        }
        points
    })
}

/// Whether the failpoint `name` fires now (and counts the hit).
pub fn hit(name: &str) -> bool {
    points().iter().any(|p| {
        p.name == name
            && p.left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                    0 => None,
                    n if n < 0 => Some(n),
                    n => Some(n - 1),
                })
                .is_ok()
    })
}

/// The writer's failpoints for a batch of `n`: `Some(results)` replaces the commit.
pub fn writer(n: usize) -> Option<Vec<Result<SendOutcome>>> {
    if points().is_empty() {
        return None;
    }
    if hit("writer-panic") {
        panic!("failpoint writer-panic");
    }
    if hit("writer-short") {
        return Some(Vec::new());
    }
    if hit("writer-error") {
        let gone = || {
            Err(Error::Internal(anyhow::anyhow!(
                "database unavailable (failpoint writer-error)"
            )))
        };
        return Some((0..n).map(|_| gone()).collect());
    }
    None
}
