//! Message search: the index of keyed word-prefix hashes (`search_terms`, see
//! `crate::search` for what a term is) and the queries over it.
//!
//! New messages are indexed off the send path, by an indexer that follows the stream past a
//! horizon (`search_state.indexed_through`, a stream position) in batches: on SQLite the
//! message writer between its batches (`sqlite_writer.rs`), on PostgreSQL one node at a time
//! ([`Backend::index_search`], `pg_batch.rs`). A search also takes every message past the
//! horizon as a candidate, so it sees exactly what is committed however far behind the
//! indexer is. Edits and deletions change a message's terms in their own transaction; an
//! indexer pass that read the old text may leave its terms behind, which only adds candidates
//! (each is checked against the text). Messages from before the index existed, or from
//! before a key rotation (terms are keyed), are indexed by a backfill that runs at start,
//! newest first ([`Search::backfill_search`]).
//!
//! A search looks up one prefix per conversation of the caller's, walks the postings (and the
//! unindexed tail) newest first across those conversations, and opens each candidate to
//! check it against the whole query (also dropping what the caller may not see: deleted, or
//! hidden for them). The work per request is bounded ([`MAX_CANDIDATES`]); a page cut short
//! by the bound still carries a cursor to go on from.

use std::sync::LazyLock;

use async_trait::async_trait;
use chatnode_protocol as p;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::messages::{MESSAGE_COLUMNS, MsgRow};
use super::{Backend, Conn, SqlStore, WriteTx};
use crate::crypto::column;
use crate::domain::{ConversationId, UserId};
use crate::error::{Error, Result};
use crate::search::{Query, index_prefixes};
use crate::store::Search;

/// Candidates opened per search request at most (each is a decryption and a row read).
pub const MAX_CANDIDATES: usize = 4_000;

/// Postings read per conversation at a time.
const POSTINGS_BATCH: i64 = 64;

impl<B: Backend> WriteTx<'_, B> {
    /// The search terms of a message's body in a conversation (current key).
    pub(super) fn search_terms(&self, conversation_id: &str, body: &str) -> Vec<i64> {
        terms(&self.store.keys, conversation_id, body)
    }
}

/// A message as the indexers read it: `(pos, conversation_id, seq, kind, deleted, body)`,
/// the body sealed.
pub(crate) type IndexRow = (i64, String, i64, String, bool, String);

/// The index rows `(term, pos, seq)` of a batch of messages, in term order (neighbouring
/// terms share index pages). Deleted and system messages have none; one that cannot be
/// opened is left out with a warning (a search opening it would fail the same way).
pub(crate) fn index_rows(keys: &crate::crypto::Keyring, rows: &[IndexRow]) -> Vec<(i64, i64, i64)> {
    let mut out: Vec<(i64, i64, i64)> = Vec::with_capacity(rows.len() * 40);
    for (pos, conversation_id, seq, kind, deleted, body) in rows {
        if *deleted || kind == "system" {
            continue;
        }
        match keys.decrypt(column::MESSAGE_BODY, body) {
            Ok(body) => out.extend(
                terms(keys, conversation_id, &body)
                    .into_iter()
                    .map(|t| (t, *pos, *seq)),
            ),
            Err(e) => tracing::warn!(pos, error = %e, "a message could not be indexed"),
        }
    }
    out.sort_unstable();
    out
}

/// The distinct search terms of `body` in a conversation, sorted.
pub(crate) fn terms(keys: &crate::crypto::Keyring, conversation_id: &str, body: &str) -> Vec<i64> {
    let mut out: Vec<i64> = index_prefixes(body)
        .iter()
        .map(|p| keys.search_term(conversation_id, p))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl<B: Backend> SqlStore<B>
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
    pub(super) async fn add_search_terms(
        c: &mut Conn<B>,
        terms: &[i64],
        pos: i64,
        seq: i64,
    ) -> Result<()> {
        for t in terms {
            sqlx::query(
                "INSERT INTO search_terms (term, pos, seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(*t)
            .bind(pos)
            .bind(seq)
            .execute(&mut *c)
            .await?;
        }
        Ok(())
    }

    pub(super) async fn remove_search_terms(
        c: &mut Conn<B>,
        terms: &[i64],
        pos: i64,
    ) -> Result<()> {
        for t in terms {
            sqlx::query("DELETE FROM search_terms WHERE term = $1 AND pos = $2")
                .bind(*t)
                .bind(pos)
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    }

    /// Makes sure the index is under the current key: at the first start with search, or
    /// after a key rotation, every term goes and the backfill starts from the newest message.
    /// Runs before the server takes sends.
    pub(super) async fn prepare_search_index(&self) -> Result<()> {
        let mut w = self.write_tx().await?;
        let out: Result<()> = async {
            let key = self.keys.current_id().to_owned();
            let stored: Option<String> =
                sqlx::query_scalar("SELECT key_id FROM search_state WHERE id = 1")
                    .fetch_optional(w.conn())
                    .await?;
            if stored.as_deref() == Some(key.as_str()) {
                return Ok(());
            }
            // The indexer starts at the stream's head, the backfill below `MAX(pos)`. The head
            // is read first: an event stamped at or below it committed before, so its `pos`
            // is at most the `MAX(pos)` read next (the backfill's); one stamped later is the
            // indexer's. (Indexed twice is harmless; never indexed would not be.)
            let stream_head: i64 = sqlx::query_scalar(B::STREAM_HEAD_SQL)
                .fetch_optional(w.conn())
                .await?
                .unwrap_or(0);
            let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(pos), 0) FROM events")
                .fetch_one(w.conn())
                .await?;
            if stored.is_some() {
                tracing::info!("the encryption key changed: the search index is rebuilt");
                sqlx::query("DELETE FROM search_terms")
                    .execute(w.conn())
                    .await?;
                sqlx::query(
                    "UPDATE search_state SET key_id = $1, unindexed_below = $2, indexed_through = $3 WHERE id = 1",
                )
                .bind(&key)
                .bind(head + 1)
                .bind(stream_head)
                .execute(w.conn())
                .await?;
            } else {
                sqlx::query(
                    "INSERT INTO search_state (id, key_id, unindexed_below, indexed_through) VALUES (1, $1, $2, $3)",
                )
                .bind(&key)
                .bind(head + 1)
                .bind(stream_head)
                .execute(w.conn())
                .await?;
            }
            Ok(())
        }
        .await;
        w.finish(out).await
    }

    /// The next page of postings of one term, newest first, below `before`.
    async fn postings(&self, c: &mut Conn<B>, term: i64, before: i64) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT pos, seq FROM search_terms WHERE term = $1 AND pos < $2 ORDER BY pos DESC LIMIT $3",
        )
        .bind(term)
        .bind(before)
        .bind(POSTINGS_BATCH)
        .fetch_all(&mut *c)
        .await?)
    }
}

/// One conversation's postings being walked, with its messages past the index's horizon.
struct Walk {
    conversation_id: String,
    term: i64,
    buffered: std::collections::VecDeque<(i64, i64)>,
    /// Everything below this has not been read yet (None: no more postings).
    next_below: Option<i64>,
    /// `(pos, seq)` of its messages not indexed yet, newest first: every one is a candidate.
    tail: std::collections::VecDeque<(i64, i64)>,
}

impl Walk {
    /// The position of the next candidate.
    fn front(&self) -> Option<i64> {
        let a = self.buffered.front().map(|(pos, _)| *pos);
        let b = self.tail.front().map(|(pos, _)| *pos);
        a.max(b)
    }

    /// The next candidate, and whether it came from the tail.
    fn pop(&mut self) -> Option<((i64, i64), bool)> {
        let a = self.buffered.front().map(|(pos, _)| *pos);
        let b = self.tail.front().map(|(pos, _)| *pos);
        if b.is_some() && b >= a {
            self.tail.pop_front().map(|c| (c, true))
        } else {
            self.buffered.pop_front().map(|c| (c, false))
        }
    }
}

#[async_trait]
impl<B: Backend> Search for SqlStore<B>
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
    async fn search_messages(
        &self,
        user_id: &UserId,
        query: &Query,
        conversation: Option<&ConversationId>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<p::Message>, Option<i64>)> {
        let user = user_id.as_str();
        let mut c = self.read.acquire().await?;
        let conversations: Vec<String> = match conversation {
            Some(id) => {
                if Self::role_of(&mut c, id.as_str(), user).await?.is_none() {
                    return Err(Error::not_found("conversation"));
                }
                vec![id.to_string()]
            }
            None => {
                sqlx::query_scalar("SELECT conversation_id FROM members WHERE user_id = $1")
                    .bind(user)
                    .fetch_all(&mut *c)
                    .await?
            }
        };
        let prefix = query.lookup_prefix();
        let start = before.unwrap_or(i64::MAX);
        let mut walks: Vec<Walk> = conversations
            .into_iter()
            .map(|conversation_id| Walk {
                term: self.keys.search_term(&conversation_id, prefix),
                conversation_id,
                buffered: Default::default(),
                next_below: Some(start),
                tail: Default::default(),
            })
            .collect();
        // The messages past the index's horizon (written since the indexer's last pass) are
        // all candidates, so a search sees every committed message. A message the indexer
        // reaches meanwhile can turn up twice: its postings are skipped.
        let through: i64 =
            sqlx::query_scalar("SELECT indexed_through FROM search_state WHERE id = 1")
                .fetch_optional(&mut *c)
                .await?
                .unwrap_or(0);
        let tail: Vec<(i64, String, i64)> = sqlx::query_as(B::SEARCH_TAIL_SQL)
            .bind(through)
            .bind(start)
            .bind(user)
            .fetch_all(&mut *c)
            .await?;
        let mut in_tail = std::collections::HashSet::new();
        if !tail.is_empty() {
            let by_id: std::collections::HashMap<&str, usize> = walks
                .iter()
                .enumerate()
                .map(|(i, w)| (w.conversation_id.as_str(), i))
                .collect();
            let mut mine: Vec<(usize, i64, i64)> = tail
                .iter()
                .filter_map(|(pos, conv, seq)| by_id.get(conv.as_str()).map(|i| (*i, *pos, *seq)))
                .collect();
            mine.sort_unstable_by_key(|m| std::cmp::Reverse(m.1));
            for (i, pos, seq) in mine {
                in_tail.insert(pos);
                walks[i].tail.push_back((pos, seq));
            }
        }
        static ONE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = $1 AND m.seq = $2
                 AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $3 AND h.message_id = m.id)"
            )
        });
        let limit = limit.max(1) as usize;
        let mut found: Vec<(i64, MsgRow)> = Vec::with_capacity(limit);
        let mut examined = 0usize;
        let mut last_examined: Option<i64> = None;
        loop {
            // Refill the walks whose buffers ran dry, then take the newest posting of all.
            for w in walks.iter_mut() {
                if w.buffered.is_empty()
                    && let Some(below) = w.next_below
                {
                    let page = self.postings(&mut c, w.term, below).await?;
                    w.next_below = if (page.len() as i64) < POSTINGS_BATCH {
                        None
                    } else {
                        page.last().map(|(pos, _)| *pos)
                    };
                    w.buffered.extend(page);
                }
            }
            let Some(best) = walks
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.front().map(|pos| (i, pos)))
                .max_by_key(|(_, pos)| *pos)
                .map(|(i, _)| i)
            else {
                // Every posting was looked at.
                return self.finish_search(&mut c, user, found, limit, None).await;
            };
            if found.len() > limit {
                break;
            }
            if examined >= MAX_CANDIDATES {
                // The bound: go on from here on the next page.
                return self
                    .finish_search(&mut c, user, found, limit, last_examined)
                    .await;
            }
            let Some(((pos, seq), from_tail)) = walks[best].pop() else {
                continue;
            };
            if !from_tail && in_tail.contains(&pos) {
                continue;
            }
            examined += 1;
            last_examined = Some(pos);
            let row: Option<MsgRow> = sqlx::query_as(ONE.as_str())
                .bind(&walks[best].conversation_id)
                .bind(seq)
                .bind(user)
                .fetch_optional(&mut *c)
                .await?;
            let Some(row) = row else { continue };
            if row.deleted || row.kind == "system" {
                continue;
            }
            let body = self.keys.decrypt(column::MESSAGE_BODY, &row.body)?;
            if query.matches(&body) {
                found.push((pos, row));
            }
        }
        self.finish_search(&mut c, user, found, limit, None).await
    }

    async fn prepare_search(&self) -> Result<()> {
        self.prepare_search_index().await
    }

    async fn index_search(&self, batch: i64) -> Result<Option<usize>> {
        B::index_search(self, batch).await
    }

    async fn backfill_search(&self, batch: i64) -> Result<bool> {
        let mut w = self.write_tx().await?;
        let out: Result<bool> = async {
            let below: Option<i64> =
                sqlx::query_scalar("SELECT unindexed_below FROM search_state WHERE id = 1")
                    .fetch_optional(w.conn())
                    .await?;
            let Some(below) = below.filter(|b| *b > 0) else {
                return Ok(false);
            };
            static SQL: LazyLock<String> = LazyLock::new(|| {
                format!(
                    "SELECT e.pos AS event_pos, {MESSAGE_COLUMNS} FROM events e
                     JOIN messages m ON m.conversation_id = e.conversation_id AND m.seq = e.seq
                     WHERE e.pos < $1 AND e.seq IS NOT NULL ORDER BY e.pos DESC LIMIT $2"
                )
            });
            let rows: Vec<(i64, MsgRow)> = {
                use sqlx::Row;
                let raw = sqlx::query(sqlx::AssertSqlSafe(SQL.as_str()))
                    .bind(below)
                    .bind(batch)
                    .fetch_all(w.conn())
                    .await?;
                let mut out = Vec::with_capacity(raw.len());
                for r in &raw {
                    let pos: i64 = r.try_get("event_pos")?;
                    out.push((pos, <MsgRow as sqlx::FromRow<_>>::from_row(r)?));
                }
                out
            };
            // Fewer than a batch: that was the last of them.
            let next = if (rows.len() as i64) < batch {
                0
            } else {
                rows.last().map_or(0, |(pos, _)| *pos)
            };
            for (pos, row) in rows {
                if row.deleted || row.kind == "system" {
                    continue;
                }
                let body = self.keys.decrypt(column::MESSAGE_BODY, &row.body)?;
                let t = terms(&self.keys, &row.conversation_id, &body);
                Self::add_search_terms(w.conn(), &t, pos, row.seq).await?;
            }
            sqlx::query("UPDATE search_state SET unindexed_below = $1 WHERE id = 1")
                .bind(next)
                .execute(w.conn())
                .await?;
            Ok(next > 0)
        }
        .await;
        w.finish(out).await
    }
}

impl<B: Backend> SqlStore<B>
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
    /// The page: at most `limit` matches (the walk looked for one more, to know whether a
    /// next page exists) as messages with reactions, and the cursor.
    async fn finish_search(
        &self,
        c: &mut Conn<B>,
        user: &str,
        mut found: Vec<(i64, MsgRow)>,
        limit: usize,
        cut_at: Option<i64>,
    ) -> Result<(Vec<p::Message>, Option<i64>)> {
        let more = found.len() > limit;
        found.truncate(limit);
        let cursor = if more {
            found.last().map(|(pos, _)| *pos)
        } else {
            cut_at
        };
        let mut messages = Vec::with_capacity(found.len());
        for (_, row) in found {
            messages.push(self.message_view(c, row).await?);
        }
        Self::fill_reactions(c, Some(user), &mut messages).await?;
        Ok((messages, cursor))
    }
}
