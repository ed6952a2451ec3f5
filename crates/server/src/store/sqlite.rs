//! The embedded SQLite backend: opening the database (pragmas, pools, migrations), the WAL
//! checkpointer, and what SQLite does its own way ([`Backend`] for [`SqliteBackend`]). The
//! queries are the shared ones of [`super::sql`]; messages are committed by a thread of
//! their own, [`super::sqlite_writer`].
//!
//! Durability: WAL journal with `synchronous = FULL`. In WAL mode FULL syncs the WAL on every
//! commit, so a transaction that returned from COMMIT is on disk and survives `kill -9` (and
//! a power cut); `NORMAL` would survive a process crash but could lose the last commits on
//! power loss. The cost of that fsync is paid once per *batch* of messages, not per message:
//! see [`crate::messages::Batcher`] (group commit).
//!
//! Concurrency: SQLite allows one writer at a time. Messages are written by the message
//! writer's connection, everything else by one sqlx connection (`write`, a pool of size 1);
//! both hold the node's write gate for their whole transaction, so they never meet a
//! `SQLITE_BUSY` from each other. Durable events are published (to the hub) while the node's write gate is still
//! held, so live delivery happens in stream order. Reads use a separate pool and never block
//! the writer (WAL).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};

use super::sql::{Backend, SqlStore};
use super::sqlite_writer::{SqliteWriter, WriterParts};
use super::{BlockingCommitter, EventSink, Presence};
use crate::crypto::Keyring;
use crate::error::Result;

/// The SQLite side of [`SqlStore`].
pub struct SqliteBackend;

/// The store over an embedded SQLite database.
pub type SqliteStore = SqlStore<SqliteBackend>;

impl Backend for SqliteBackend {
    type Db = sqlx::Sqlite;

    const NAME: &'static str = "sqlite";

    const STREAM: &'static str = "pos";

    const STREAM_HEAD_SQL: &'static str = "SELECT COALESCE(MAX(pos), 0) FROM events";

    const ROW_LOCK: &'static str = "";

    const SEARCH_TAIL_SQL: &'static str = "SELECT pos, conversation_id, seq FROM events
        WHERE pos > $1 AND pos < $2 AND seq IS NOT NULL
          AND conversation_id IN (SELECT conversation_id FROM members WHERE user_id = $3)";

    /// The single write connection already serializes writers: nothing to do.
    async fn lock_writes(_c: &mut SqliteConnection) -> Result<()> {
        Ok(())
    }

    /// One writer, committing in the order it writes: an event's `pos` is its position.
    async fn stream_positions(
        _store: &SqliteStore,
        written: &[i64],
    ) -> Result<(
        std::collections::HashMap<i64, i64>,
        Vec<crate::events::Durable>,
    )> {
        Ok((written.iter().map(|p| (*p, *p)).collect(), Vec::new()))
    }

    /// Removes the bytes of rewritten rows from the file: a VACUUM rebuilds the database
    /// without its free pages, and the checkpoints leave the WAL empty. (Run before serving.)
    async fn compact(write: &SqlitePool) -> anyhow::Result<()> {
        let mut c = write.acquire().await?;
        for sql in [
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "VACUUM",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ] {
            sqlx::raw_sql(sql)
                .execute(&mut *c)
                .await
                .with_context(|| format!("{sql} after re-encrypting"))?;
        }
        Ok(())
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// Message batches commit on a thread of their own, over a connection of their own
    /// (see `sqlite_writer`).
    fn blocking_committer(store: &SqliteStore) -> Option<BlockingCommitter> {
        let path = store.db_path()?;
        let parts = WriterParts {
            keys: store.keys().clone(),
            sink: store.sink().clone(),
            gate: store.gate().clone(),
        };
        match SqliteWriter::open(path, parts) {
            Ok(w) => Some(Box::new(w)),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot open the message writer; sends use the shared connection, and new messages are not indexed for search (searches scan them)");
                None
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and runs the embedded migrations.
    pub async fn open(
        url: &str,
        events: Arc<dyn EventSink>,
        presence: Arc<dyn Presence>,
        keys: Arc<Keyring>,
    ) -> anyhow::Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| "invalid sqlite database URL".to_string())?
            .create_if_missing(true)
            // Small pages for a new database: a message dirties a few index leaves in random
            // places (its conversation's seq, its sender's client_id, read marker,
            // conversation head), and every dirty page is written whole to the WAL at commit.
            // 1 KiB pages write a quarter of the bytes of SQLite's default 4 KiB for the same
            // rows. (An existing database keeps its page size.)
            .page_size(1024)
            .journal_mode(SqliteJournalMode::Wal)
            // See the module comment: FULL makes every commit durable before we ack.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // No checkpoints inside COMMIT: copying WAL pages into the database file would
            // stall the single writer (and every ack behind it). A background connection
            // checkpoints instead (below).
            .pragma("wal_autocheckpoint", "0");
        // No memory-mapped reads (SQLite's default): mapped pages of the database count in
        // the process's resident memory for as long as they stay mapped, so authenticating
        // 10,000 sockets (a session and a user row each) cost ~4 KB of RSS per socket. Reads
        // go through each connection's page cache instead, which is bounded.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // A group commit dirties pages all over the message, event and member indexes; with
            // SQLite's default 2 MB cache they spill to the WAL mid-transaction. 64 MB (only
            // what is used is allocated).
            .connect_with(opts.clone().pragma("cache_size", "-65536"))
            .await
            .context("cannot open the SQLite database")?;
        sqlx::migrate!("migrations/sqlite")
            .run(&write)
            .await
            .context("database migration failed")?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .context("cannot open the SQLite database")?;
        let writer = write.clone();
        tokio::spawn(async move {
            // PASSIVE never waits for (or blocks) the writer or readers; a WAL that a
            // checkpoint fully caught up with is restarted from its beginning by the next
            // write, so it stays small. It stops with the store (`Store::close`).
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                every.tick().await;
                if writer.is_closed() {
                    checkpointer.close().await;
                    return;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&checkpointer)
                    .await
                {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        });
        // Readers keep a small page cache each (SQLite's default is 2 MB per connection, 16 MB
        // for the pool, filled by any busy period and never given back): reads are short
        // index lookups, and pages not cached come from the OS page cache at the cost of a
        // pread. 1 MB each.
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone().read_only(true).pragma("cache_size", "-1024"))
            .await
            .context("cannot open the SQLite database for reading")?;
        Ok(SqlStore::new(read, write, events, presence, keys)
            .with_db_path(opts.get_filename().to_owned()))
    }
}
