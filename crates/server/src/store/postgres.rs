//! The PostgreSQL backend, for running several chatnode nodes on one database: opening it
//! (one pool, migrations) and what PostgreSQL does its own way ([`Backend`] for
//! [`PostgresBackend`]). The queries are the shared ones of [`super::sql`]. What differs from
//! SQLite:
//! - One connection pool serves reads and writes; PostgreSQL handles concurrent writers, and
//!   nodes commit concurrently: no lock is shared by all writers.
//! - Stream positions are *stamped after commit*. An event's `pos` comes from a sequence at
//!   insert, before commit, so transactions commit out of `pos` order: a reader could see 12
//!   committed while 11 is still in flight, resume after 12 and never see 11. So clients never
//!   see `pos`: after each commit, the committing node stamps every committed event still
//!   without a `stream_pos` ([`stamp`]): in one short transaction under an advisory lock that
//!   only stampers take, it gives them the next positions after `stream_head`, in `pos`
//!   order. A stamp's snapshot holds only committed rows, so an event committed later gets a
//!   later position: positions are dense and given in commit order, and a reader of stamped
//!   events (`sync`, a node filling a gap) can never skip one. Within a conversation, `seq`
//!   order is `pos` order and commit order (the conversation's row lock orders its writers),
//!   so it is stamp order too. Whichever node stamps first stamps everyone's events; a node
//!   that died between its commit and its stamp is covered by the next stamp anywhere. A
//!   node frozen mid-transaction holds no lock the others need but its conversations' rows
//!   (`idle_in_transaction_session_timeout` ends such a transaction after 10 s).
//! - Durability: PostgreSQL's default `synchronous_commit = on` flushes the WAL at commit, so
//!   an acked message survives a crash of the database server too.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult};

use super::NewMessage;
use super::sql::{Backend, SendResults, SqlStore};
use super::{EventLog, EventSink, Presence};
use crate::crypto::Keyring;
use crate::error::Result;
use crate::events::Durable;

/// The PostgreSQL side of [`SqlStore`].
pub struct PostgresBackend;

/// The store over a PostgreSQL database (several nodes may share it).
pub type PostgresStore = SqlStore<PostgresBackend>;

/// The advisory lock key only stampers take (an arbitrary constant: "chatnode" in ASCII).
const STAMP_LOCK: i64 = 0x6368_6174_6e6f_6465;

/// Events stamped per statement at most (a stamp takes every committed event waiting).
const STAMP_PAGE: i64 = 10_000;

impl Backend for PostgresBackend {
    type Db = sqlx::Postgres;

    const NAME: &'static str = "postgres";

    const STREAM: &'static str = "stream_pos";

    const STREAM_HEAD_SQL: &'static str = "SELECT pos FROM stream_head WHERE id = 1";

    /// Past the horizon, or not stamped yet (each half through its own index).
    const ROW_LOCK: &'static str = " FOR UPDATE OF m";

    const SEARCH_TAIL_SQL: &'static str = "SELECT pos, conversation_id, seq FROM events
        WHERE stream_pos > $1 AND pos < $2 AND seq IS NOT NULL
          AND conversation_id IN (SELECT conversation_id FROM members WHERE user_id = $3)
        UNION ALL
        SELECT pos, conversation_id, seq FROM events
        WHERE stream_pos IS NULL AND pos < $2 AND seq IS NOT NULL
          AND conversation_id IN (SELECT conversation_id FROM members WHERE user_id = $3)";

    /// Nothing: writers do not wait for each other (see the module comment).
    async fn lock_writes(_c: &mut PgConnection) -> Result<()> {
        Ok(())
    }

    /// Stamps what waits (see the module comment), then reads the positions of `written`
    /// that another node's stamp gave.
    async fn stream_positions(
        store: &PostgresStore,
        written: &[i64],
    ) -> Result<(HashMap<i64, i64>, Vec<Durable>)> {
        let mut out = stamp(&store.write).await?;
        let others: Vec<i64> = out
            .iter()
            .filter(|(pos, _)| !written.contains(pos))
            .map(|(_, stream)| *stream)
            .collect();
        let others = match (others.iter().min(), others.iter().max()) {
            (Some(lo), Some(hi)) => store
                .events_after(lo - 1, hi - lo + 1)
                .await?
                .into_iter()
                .filter(|e| others.contains(&e.pos))
                .collect(),
            _ => Vec::new(),
        };
        out.retain(|pos, _| written.contains(pos));
        if out.len() < written.len() {
            let missing: Vec<i64> = written
                .iter()
                .filter(|p| !out.contains_key(p))
                .copied()
                .collect();
            let rows: Vec<(i64, Option<i64>)> =
                sqlx::query_as("SELECT pos, stream_pos FROM events WHERE pos = ANY($1)")
                    .bind(&missing)
                    .fetch_all(&store.write)
                    .await?;
            for (pos, stream) in rows {
                if let Some(s) = stream {
                    out.insert(pos, s);
                }
            }
        }
        Ok((out, others))
    }

    /// Rewrites the tables whose rows were sealed anew, so the old row versions (plaintext,
    /// or under the old key) leave the table files instead of waiting for space reuse.
    /// (Run before serving: VACUUM FULL locks each table while it runs.)
    async fn compact(write: &PgPool) -> anyhow::Result<()> {
        sqlx::raw_sql("VACUUM FULL users, media, messages, events, encryption")
            .execute(write)
            .await
            .context("VACUUM FULL after re-encrypting")?;
        Ok(())
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// One node at a time indexes new messages, in batches (`sql/pg_batch.rs`).
    async fn index_search(store: &PostgresStore, batch: i64) -> Result<Option<usize>> {
        store.pg_index_search(batch).await.map(Some)
    }

    /// A batch of plain messages in one statement per kind of write (`sql/pg_batch.rs`).
    async fn send_batch_fast(
        store: &PostgresStore,
        batch: &[NewMessage],
    ) -> Result<Option<SendResults>> {
        store.pg_send_batch(batch).await
    }
}

/// How long a stamp waits for the stamp lock. A stamper that froze holding it (a stopped
/// node) keeps it until PostgreSQL ends its session ([`STAMPER_IDLE_LIMIT`]); meanwhile
/// commits go on and their events wait for the next stamp that gets through (every node
/// tries again every second, see `Maintenance::stamp_pending`), which publishes them.
const STAMP_LOCK_WAIT: &str = "2s";

/// How long a stamper may sit idle inside its transaction before PostgreSQL ends its session
/// (and so frees the stamp lock): a stamp is three statements in a row, so only a stopped
/// stamper ever comes near it.
const STAMPER_IDLE_LIMIT: &str = "1s";

/// Gives every committed event without a stream position the next ones, in `pos` order;
/// answers `pos → stream_pos` of those it stamped (none when the lock did not come in time).
pub async fn stamp(pool: &PgPool) -> Result<HashMap<i64, i64>> {
    let mut out = HashMap::new();
    loop {
        let mut tx = pool.begin().await?;
        // A stamp's transaction never waits on its client between statements, so a stamper
        // that stops mid-stamp (a frozen node) loses the lock after a second, not after the
        // pool's 10 s. The lock's key is the schema's: deployments sharing a database (as
        // the test suites' do) do not wait for each other.
        sqlx::query(
            "SELECT set_config('lock_timeout', $1, true),
                    set_config('idle_in_transaction_session_timeout', $2, true)",
        )
        .bind(STAMP_LOCK_WAIT)
        .bind(STAMPER_IDLE_LIMIT)
        .execute(&mut *tx)
        .await?;
        let locked =
            sqlx::query("SELECT pg_advisory_xact_lock($1 # hashtext(current_schema())::bigint)")
                .bind(STAMP_LOCK)
                .execute(&mut *tx)
                .await;
        if let Err(e) = locked {
            // 55P03: lock_not_available (the timeout). Anything else is a real failure.
            if let sqlx::Error::Database(db) = &e
                && db.code().as_deref() == Some("55P03")
            {
                tracing::warn!(
                    "stamping waited {STAMP_LOCK_WAIT} for another stamper; left to the next stamp"
                );
                return Ok(out);
            }
            return Err(e.into());
        }
        // After the lock: this statement's snapshot holds every earlier stamp.
        let stamped: Vec<(i64, i64)> = sqlx::query_as(
            "WITH head AS (SELECT pos FROM stream_head WHERE id = 1),
                  todo AS (SELECT e.pos, row_number() OVER (ORDER BY e.pos) AS n
                           FROM (SELECT pos FROM events WHERE stream_pos IS NULL ORDER BY pos LIMIT $1) e)
             UPDATE events SET stream_pos = (SELECT pos FROM head) + todo.n
             FROM todo WHERE events.pos = todo.pos
             RETURNING events.pos, events.stream_pos",
        )
        .bind(STAMP_PAGE)
        .fetch_all(&mut *tx)
        .await?;
        let n = stamped.len() as i64;
        if n > 0 {
            sqlx::query("UPDATE stream_head SET pos = pos + $1 WHERE id = 1")
                .bind(n)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        out.extend(stamped);
        if n < STAMP_PAGE {
            return Ok(out);
        }
    }
}

impl PostgresStore {
    /// Connects, and runs the embedded migrations (sqlx serializes concurrent migrators with
    /// an advisory lock, so several nodes may start at once).
    pub async fn open(
        url: &str,
        events: Arc<dyn EventSink>,
        presence: Arc<dyn Presence>,
        keys: Arc<Keyring>,
    ) -> anyhow::Result<PostgresStore> {
        // A client frozen mid-transaction (a stopped node) must not hold rows forever.
        let opts = PgConnectOptions::from_str(url)
            .context("invalid postgres database URL")?
            .options([("idle_in_transaction_session_timeout", "10s")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .context("cannot connect to PostgreSQL")?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .context("database migration failed")?;
        // Events committed by a node that stopped before stamping them get their positions
        // now, so `sync` sees them before anyone connects.
        stamp(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("cannot stamp stream positions: {e}"))?;
        Ok(SqlStore::new(pool.clone(), pool, events, presence, keys))
    }
}
