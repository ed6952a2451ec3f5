//! The PostgreSQL backend, for running several chatnode nodes on one database: opening it
//! (one pool, migrations) and what PostgreSQL does its own way ([`Backend`] for
//! [`PostgresBackend`]). The queries are the shared ones of [`super::sql`]. What differs from
//! SQLite:
//! - One connection pool serves reads and writes; PostgreSQL handles concurrent writers.
//! - Ordering: `stream_pos` comes from a sequence, and a sequence value is taken at insert, not
//!   at commit. If two transactions could interleave, a reader could see position 12 committed
//!   while 11 is still in flight, resume after 12 and never see 11. So every write
//!   transaction first takes one transaction-scoped advisory lock: writers commit one at a time
//!   across the whole cluster and positions become visible in order. Group commit keeps this
//!   cheap: one lock and one commit per batch of messages, not per message.
//! - Durability: PostgreSQL's default `synchronous_commit = on` flushes the WAL at commit, so
//!   an acked message survives a crash of the database server too.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult};

use super::sql::{Backend, SqlStore};
use super::{EventSink, Presence};
use crate::crypto::Keyring;
use crate::error::Result;

/// The PostgreSQL side of [`SqlStore`].
pub struct PostgresBackend;

/// The store over a PostgreSQL database (several nodes may share it).
pub type PostgresStore = SqlStore<PostgresBackend>;

/// The advisory lock key that orders writers (an arbitrary constant: "chatnode" in ASCII).
const WRITE_LOCK: i64 = 0x6368_6174_6e6f_6465;

impl Backend for PostgresBackend {
    type Db = sqlx::Postgres;

    const NAME: &'static str = "postgres";

    /// One transaction-scoped advisory lock for every writer of the cluster (see the module
    /// comment).
    async fn lock_writes(c: &mut PgConnection) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *c)
            .await?;
        Ok(())
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

    // No `send_batch_fast`: PostgreSQL prepares one statement per query, so batches take the
    // general path (one combined check per send).
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
        let opts = PgConnectOptions::from_str(url).context("invalid postgres database URL")?;
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
        Ok(SqlStore::new(pool.clone(), pool, events, presence, keys))
    }
}
