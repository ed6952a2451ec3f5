//! The PostgreSQL backend of [`Store`], for running several chatnode nodes on one database.
//!
//! The queries are the shared ones of `sql.rs`. What differs from SQLite:
//! - One connection pool serves reads and writes; PostgreSQL handles concurrent writers.
//! - Ordering: `stream_pos` comes from a sequence, and a sequence value is taken at insert, not
//!   at commit. If two transactions could interleave, a reader could see position 12 committed
//!   while 11 is still in flight, resume after 12 and never see 11. So every write
//!   transaction first takes one transaction-scoped advisory lock: writers commit one at a time
//!   across the whole cluster and positions become visible in order. Group commit keeps this
//!   cheap: one lock and one commit per batch of messages, not per message.
//! - Durability: PostgreSQL's default `synchronous_commit = on` flushes the WAL at commit, so
//!   an acked message survives a crash of the database server too.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chatnode_protocol::{self as p, ErrorCode, ServerFrame};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, FromRow, PgPool};

use super::*;
use crate::crypto::{Keyring, column};
use crate::error::Error;
use crate::events::Durable;
use crate::time::{new_id, now_ms, rfc3339};

/// The PostgreSQL instantiation of the shared SQL backend (`sql.rs`).
pub type PostgresStore = SqlStore;

type Conn = sqlx::PgConnection;

/// The advisory lock key that orders writers (an arbitrary constant: "chatnode" in ASCII).
const WRITE_LOCK: i64 = 0x6368_6174_6e6f_6465;

pub struct SqlStore {
    read: PgPool,
    write: PgPool,
    events: Arc<dyn EventSink>,
    presence: Arc<dyn Presence>,
    /// Seals and opens the encrypted columns (see `crate::crypto`).
    keys: Arc<Keyring>,
    /// Held across a write transaction and the publishing of its events on this node.
    gate: tokio::sync::Mutex<()>,
}

impl SqlStore {
    /// Connects, and runs the embedded migrations (sqlx serializes concurrent migrators with
    /// an advisory lock, so several nodes may start at once).
    pub async fn open(
        url: &str,
        events: Arc<dyn EventSink>,
        presence: Arc<dyn Presence>,
        keys: Arc<Keyring>,
    ) -> anyhow::Result<SqlStore> {
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
        Ok(SqlStore {
            read: pool.clone(),
            write: pool,
            events,
            presence,
            keys,
            gate: Default::default(),
        })
    }

    const BACKEND: &'static str = "postgres";

    /// PostgreSQL prepares one statement per query: batches write message by message.
    const MULTI_STATEMENT: bool = false;

    async fn lock_writes(c: &mut Conn) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// Rewrites the tables whose rows were sealed anew, so the old row versions (plaintext,
    /// or under the old key) leave the table files instead of waiting for space reuse.
    /// (Run before serving: VACUUM FULL locks each table while it runs.)
    async fn compact(&self) -> anyhow::Result<()> {
        sqlx::raw_sql("VACUUM FULL users, media, messages, events, encryption")
            .execute(&self.write)
            .await
            .context("VACUUM FULL after re-encrypting")?;
        Ok(())
    }
}

include!("sql.rs");
include!("seed.rs");
include!("sql_encryption.rs");
