//! The SQL store: every store trait implemented once, over sqlx, generic over the database
//! [`Backend`] (`super::sqlite`, `super::postgres`).
//!
//! One module per area, each an `impl` of its store trait on [`SqlStore`] plus the queries
//! only it needs: `users` (accounts, sessions, account safety), `social` (friends, blocks),
//! `conversations` (direct chats, groups, members, invites, the directory), `messages` (the
//! group-commit send, history, edits, deletions, read markers), `media`, `push`, `events`
//! (writing durable events and reading the stream back), `encryption` (the canary and the
//! re-encrypting sweep) and `seed` (benchmark fixtures). This module holds what they share:
//! the store, the [`Backend`] trait and the write transaction ([`WriteTx`]).
//!
//! Rules for every query here:
//! - Portable SQL only: `$N` placeholders, TRUE/FALSE and boolean expressions (never `= 1`),
//!   `RETURNING`, `ON CONFLICT DO NOTHING`. What cannot be written once for both databases
//!   is a method of [`Backend`]; this code never asks which backend it runs on.
//! - Encryption at rest (`crate::crypto`): message bodies, event payloads, attachment names,
//!   emails and phone numbers are sealed right before they are bound and opened right after
//!   they are read; emails and phones are found by their keyed hashes (`email_hash`,
//!   `phone_hash`). Nothing outside the store sees a sealed value.
//! - Writes that emit events go through [`WriteTx`], so events reach the [`EventSink`] only
//!   after their commit and in commit order.
//!
//! Every generic `impl` block here states the same where-clause: "sqlx can run our queries
//! on `B::Db`" (execute on a connection, bind and read `&str`, `String`, `i64` and `bool`,
//! read columns by index and by name). Rust does not carry such bounds from a trait to its
//! users, so each block repeats them; both backends meet them.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type,
};
use tokio::sync::{Mutex, MutexGuard};

use super::{
    BlockingCommitter, EventSink, Maintenance, NewMessage, Presence, ReencryptReport,
    SeedConversation, SendOutcome,
};
use crate::crypto::Keyring;
use crate::domain::{SessionId, UserId};
use crate::error::Result;
use crate::events::Durable;

mod bots;
mod conversations;
mod encryption;
mod events;
mod media;
mod messages;
mod moderation;
mod notifications;
mod pg_batch;
mod push;
mod reactions;
mod search;
mod seed;
mod social;
mod sso;
mod users;

pub(crate) use messages::{MEMBER_BY_NAME_SQL, SEND_CHECK_SQL, SendCheckRow, conversation_facts};
pub(crate) use search::{IndexRow, index_rows};

/// A connection of the backend's database (what a pool hands out, and what a transaction
/// derefs to).
pub(super) type Conn<B> = <<B as Backend>::Db as Database>::Connection;

/// The answers of one group-commit batch, one per message, in order.
pub type SendResults = Vec<Result<SendOutcome>>;

/// What differs between the databases, and nothing else: how to open one lives beside each
/// implementation (`SqliteStore::open`, `PostgresStore::open`), the queries live in this
/// module's areas.
pub trait Backend: Send + Sync + Sized + 'static {
    type Db: Database;

    /// `sqlite` or `postgres` (what `/ready` reports).
    const NAME: &'static str;

    /// The `events` column clients resume from: `pos` where the writer commits in the order
    /// it writes (SQLite), `stream_pos` where positions are stamped after commit (PostgreSQL).
    const STREAM: &'static str;

    /// One row, one column: the last stream position given.
    const STREAM_HEAD_SQL: &'static str;

    /// Runs first in every write transaction (nothing, on both backends today: SQLite has one
    /// writer, PostgreSQL stamps stream positions after commit instead of ordering commits).
    fn lock_writes(c: &mut Conn<Self>) -> impl Future<Output = Result<()>> + Send;

    /// After a commit: the stream positions of the events it wrote, by their `pos`, and the
    /// events that got positions on the way although someone else wrote them (another
    /// transaction committed and left them without a position: its node died, or it is about
    /// to stamp them itself), ready to publish. SQLite: `pos` itself, and no others. PostgreSQL: stamps every committed event
    /// still waiting for a position (see `postgres.rs`).
    fn stream_positions(
        store: &SqlStore<Self>,
        written: &[i64],
    ) -> impl Future<Output = Result<(HashMap<i64, i64>, Vec<Durable>)>> + Send;

    /// Gives back the space of rewritten rows (after a re-encrypting sweep, before serving).
    fn compact(write: &Pool<Self::Db>) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// How many rows a statement changed (sqlx has no backend-neutral way to ask).
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;

    /// A committer for message batches that runs on a thread of its own, if the backend has
    /// one (SQLite: see `sqlite_writer`); `None` means batches go through
    /// [`super::Messages::send_messages`]. Whatever it does must keep that path's rules and
    /// answers (see `SqlStore::send_batch_once`).
    fn blocking_committer(_store: &SqlStore<Self>) -> Option<BlockingCommitter> {
        None
    }

    /// Appended to a `SELECT … FROM messages m` in a write transaction to lock the row until
    /// it ends (empty where there is one writer).
    const ROW_LOCK: &'static str;

    /// Every message event past the search index's horizon (`$1`, a stream position) and
    /// below `pos` `$2`, in the conversations of user `$3`: `(pos, conversation_id, seq)`.
    const SEARCH_TAIL_SQL: &'static str;

    /// Indexes up to `batch` new messages past the search index's horizon (see
    /// [`super::Search::index_search`]); `None`: not this way on this backend.
    fn index_search(
        _store: &SqlStore<Self>,
        _batch: i64,
    ) -> impl Future<Output = Result<Option<usize>>> + Send {
        std::future::ready(Ok(None))
    }

    /// Checks and writes a batch of sends the backend's own faster way, if it has one for
    /// this batch (PostgreSQL: one statement per kind of write, see `pg_batch.rs`); `None`
    /// (nothing written) sends it down the general path. Same rules, same answers.
    fn send_batch_fast(
        _store: &SqlStore<Self>,
        _batch: &[NewMessage],
    ) -> impl Future<Output = Result<Option<SendResults>>> + Send {
        std::future::ready(Ok(None))
    }
}

/// The store over one SQL database.
pub struct SqlStore<B: Backend> {
    /// Reads that need no transaction (SQLite: read-only connections beside the writer).
    pub(super) read: Pool<B::Db>,
    /// Writes (SQLite: the single write connection).
    pub(super) write: Pool<B::Db>,
    /// Where committed durable events go.
    sink: Arc<dyn EventSink>,
    /// Who is online, for the user views.
    presence: Arc<dyn Presence>,
    /// Seals and opens the encrypted columns (see `crate::crypto`).
    keys: Arc<Keyring>,
    /// Held across a write transaction and the publishing of its events on this node (and
    /// shared with the SQLite message writer's thread).
    gate: Arc<Mutex<()>>,
    /// The database file, for a backend that opens more connections of its own (SQLite).
    db_path: Option<std::path::PathBuf>,
    backend: PhantomData<B>,
}

impl<B: Backend> SqlStore<B> {
    /// A store over opened (and migrated) pools; `read` and `write` may be the same pool.
    pub(super) fn new(
        read: Pool<B::Db>,
        write: Pool<B::Db>,
        sink: Arc<dyn EventSink>,
        presence: Arc<dyn Presence>,
        keys: Arc<Keyring>,
    ) -> SqlStore<B> {
        SqlStore {
            read,
            write,
            sink,
            presence,
            keys,
            gate: Arc::new(Mutex::new(())),
            db_path: None,
            backend: PhantomData,
        }
    }

    /// The database file, for a backend that opens connections of its own.
    pub(super) fn with_db_path(mut self, path: std::path::PathBuf) -> SqlStore<B> {
        self.db_path = Some(path);
        self
    }

    pub(super) fn db_path(&self) -> Option<&std::path::Path> {
        self.db_path.as_deref()
    }

    pub(super) fn keys(&self) -> &Arc<Keyring> {
        &self.keys
    }

    pub(super) fn sink(&self) -> &Arc<dyn EventSink> {
        &self.sink
    }

    /// The node's write gate (see [`SqlStore::write_tx`]).
    pub(super) fn gate(&self) -> &Arc<Mutex<()>> {
        &self.gate
    }

    /// Begins a write transaction: takes this node's write gate, then a connection, then the
    /// backend's write lock.
    pub(super) async fn write_tx(&self) -> Result<WriteTx<'_, B>> {
        let gate = self.gate.lock().await;
        let mut tx = self.write.begin().await?;
        B::lock_writes(&mut tx).await?;
        Ok(WriteTx {
            tx,
            events: Vec::new(),
            store: self,
            _gate: gate,
        })
    }
}

/// A write transaction and the durable events written in it.
///
/// A write runs its body in an `async` block and hands the result to [`WriteTx::finish`],
/// which commits and then publishes on `Ok` and rolls back on `Err`:
///
/// ```ignore
/// let mut w = self.write_tx().await?;
/// let out: Result<_> = async { /* queries on w.conn(), events with w.emit_…() */ }.await;
/// w.finish(out).await
/// ```
///
/// A `return` inside the block ends the block, not the method: an early `Ok` still commits.
/// The node's write gate is held until the events are handed to the sink, so this node
/// publishes in commit order; the backend's `lock_writes` orders commits across nodes.
pub(super) struct WriteTx<'s, B: Backend> {
    tx: Transaction<'static, B::Db>,
    events: Vec<Durable>,
    store: &'s SqlStore<B>,
    _gate: MutexGuard<'s, ()>,
}

impl<B: Backend> WriteTx<'_, B> {
    /// The transaction's connection, for queries.
    pub(super) fn conn(&mut self) -> &mut Conn<B> {
        &mut self.tx
    }

    /// `text` sealed for the encrypted column `column`.
    pub(super) fn seal(&self, column: &str, text: &str) -> String {
        self.store.keys.encrypt(column, text)
    }

    /// Adds an event written by this transaction (see `events.rs` for the usual way in).
    pub(super) fn push_event(&mut self, event: Durable) {
        self.events.push(event);
    }

    /// Commits and publishes the events if `result` is `Ok`; rolls back (by dropping the
    /// transaction) if it is an `Err`.
    pub(super) async fn finish<T>(self, result: Result<T>) -> Result<T> {
        let value = result?;
        let WriteTx {
            tx,
            events,
            store,
            _gate,
        } = self;
        tx.commit().await?;
        // Committed and durable: now (and only now) the world may see it, at its stream
        // position (still under this node's write gate, so in commit order).
        if !events.is_empty() {
            let written: Vec<i64> = events.iter().map(|e| e.pos).collect();
            let (positions, others) = B::stream_positions(store, &written).await?;
            let mut events: Vec<Durable> = events
                .into_iter()
                .filter_map(|mut e| {
                    let pos = *positions.get(&e.pos)?;
                    let payload = std::str::from_utf8(&e.json).ok()?;
                    e.json = events::with_pos(payload, pos).into();
                    e.pos = pos;
                    Some(e)
                })
                .collect();
            // Events this stamp gave positions to on behalf of others are published too: a
            // node that died between its commit and its stamp publishes nothing, and nobody
            // must miss them (duplicates are dropped by position where they arrive).
            events.extend(others);
            events.sort_by_key(|e| e.pos);
            store.sink.publish(events);
        }
        Ok(value)
    }
}

#[async_trait]
impl<B: Backend> Maintenance for SqlStore<B>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> Option<bool>: Encode<'q, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'n> &'n str: ColumnIndex<<B::Db as Database>::Row>,
{
    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    async fn stamp_pending(&self) -> Result<()> {
        // Under the write gate, so this node publishes in stream order.
        let _gate = self.gate.lock().await;
        let (_, others) = B::stream_positions(self, &[]).await?;
        if !others.is_empty() {
            self.sink.publish(others);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn encryption_key_id(&self) -> anyhow::Result<Option<String>> {
        self.stored_key_id().await
    }

    async fn reencrypt(&self, all: bool) -> anyhow::Result<ReencryptReport> {
        self.seal_all_under_current_key(all).await
    }

    async fn bulk_seed(
        &self,
        prefix: &str,
        user_ids: &[UserId],
        password_hash: &str,
        conversations: &[SeedConversation],
    ) -> Result<Vec<SessionId>> {
        self.seed_fixtures(prefix, user_ids, password_hash, conversations)
            .await
    }
}

/// `/api/v1/media/{id}`, the URL of an avatar.
fn avatar_url(media_id: Option<&str>) -> Option<String> {
    media_id.map(|id| format!("/api/v1/media/{id}"))
}

/// `q` as a `LIKE … ESCAPE '\'` pattern matching what starts with it.
fn like_prefix(q: &str) -> String {
    let mut s = String::with_capacity(q.len() + 1);
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_prefix("a_b%"), "a\\_b\\%%");
    }
}
