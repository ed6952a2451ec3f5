//! Benchmark fixtures (`chatnode bench-seed`): users with a login session each, friendships,
//! direct chats and groups, written in one transaction. Not reachable over HTTP: it runs from
//! the command line against a data directory, so a load test can have 20,000 users with
//! friends and groups in seconds instead of paying an argon2 hash and a dozen requests per
//! user. It must never be wired to a route.
//!
//! History (`--history N`): N messages spread round-robin over the seeded conversations, the
//! members taking turns, stored as the send path stores them (body sealed under the current
//! key, the message's event row with an empty payload, the conversation's `last_seq`, each
//! sender's read marker) but in multi-row statements, so 10 million rows take minutes.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{Backend, Conn, SqlStore};
use crate::crypto::column;
use crate::domain::{SessionId, UserId};
use crate::error::Result;
use crate::store::SeedConversation;
use crate::time::{new_id, now_ms};

/// Messages per multi-row INSERT (10 parameters each, under both backends' limits).
const ROWS_PER_STATEMENT: usize = 500;
/// Messages per transaction: small enough to keep SQLite's WAL and PostgreSQL's transaction
/// bounded, big enough that commits cost nothing.
const ROWS_PER_TRANSACTION: usize = 100_000;

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
    /// Inserts `user_ids.len()` users (usernames `{prefix}{index}`), one login session each
    /// (ids returned, in order) and the conversations, in one transaction.
    pub(super) async fn seed_fixtures(
        &self,
        prefix: &str,
        user_ids: &[UserId],
        password_hash: &str,
        conversations: &[SeedConversation],
    ) -> Result<Vec<SessionId>> {
        let mut w = self.write_tx().await?;
        let now = now_ms();
        let mut sessions = Vec::with_capacity(user_ids.len());
        for (i, id) in user_ids.iter().enumerate() {
            let name = format!("{prefix}{i}");
            sqlx::query(
                "INSERT INTO users (id, username, username_key, display_name, display_key, password_hash, created_at)
                 VALUES ($1, $2, $2, $2, $2, $3, $4)",
            )
            .bind(id.as_str())
            .bind(&name)
            .bind(password_hash)
            .bind(now)
            .execute(w.conn())
            .await?;
            let sid = new_id();
            sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(&sid)
                .bind(id.as_str())
                .bind(now)
                .execute(w.conn())
                .await?;
            sessions.push(SessionId::trusted(sid));
        }
        for (n, conv) in conversations.iter().enumerate() {
            let ids: Vec<&str> = conv.members.iter().map(|&i| user_ids[i].as_str()).collect();
            if ids.len() == 2 {
                let (a, b) = if ids[0] < ids[1] {
                    (ids[0], ids[1])
                } else {
                    (ids[1], ids[0])
                };
                sqlx::query(
                    "INSERT INTO conversations (id, kind, direct_key, created_at, last_activity_at) VALUES ($1, 'direct', $2, $3, $3)",
                )
                .bind(conv.id.as_str())
                .bind(format!("{a}:{b}"))
                .bind(now)
                .execute(w.conn())
                .await?;
                for (x, y) in [(a, b), (b, a)] {
                    sqlx::query("INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(x)
                        .bind(y)
                        .bind(now)
                        .execute(w.conn())
                        .await?;
                }
            } else {
                let name = format!("{prefix}group{n}");
                sqlx::query(
                    "INSERT INTO conversations (id, kind, name, name_key, created_at, last_activity_at) VALUES ($1, 'group', $2, $2, $3, $3)",
                )
                .bind(conv.id.as_str())
                .bind(&name)
                .bind(now)
                .execute(w.conn())
                .await?;
            }
            for (k, user) in ids.iter().enumerate() {
                let role = if ids.len() > 2 && k == 0 {
                    "owner"
                } else {
                    "member"
                };
                sqlx::query(
                    "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_pos, last_read_seq)
                     VALUES ($1, $2, $3, $4, 0, 0)",
                )
                .bind(conv.id.as_str())
                .bind(*user)
                .bind(role)
                .bind(now)
                .execute(w.conn())
                .await?;
            }
        }
        w.finish(Ok(sessions)).await
    }

    /// Writes `count` history messages into `conversations` (member indices into
    /// `user_ids`), an equal share each, sent by the members in turn, with `seq` 1, 2, … per
    /// conversation and creation times in the past (a conversation's messages
    /// `conversations.len()` ms apart, the conversations interleaved). Each message's event
    /// row is written first (empty payload, like the send path's) and, where the schema has
    /// `messages.pos` (migration 0008), the message row records it.
    ///
    /// Rows are written one conversation after the other, so every index grows at a few
    /// places instead of everywhere (several times faster); the event stream therefore
    /// holds them grouped by conversation.
    pub(crate) async fn seed_history(
        &self,
        user_ids: &[UserId],
        conversations: &[SeedConversation],
        count: u64,
    ) -> Result<()> {
        if count == 0 || conversations.is_empty() {
            return Ok(());
        }
        // Outside any transaction, so a missing column aborts nothing (PostgreSQL).
        let with_pos = sqlx::query("SELECT pos FROM messages LIMIT 0")
            .fetch_all(&self.read)
            .await
            .is_ok();
        let n = conversations.len() as u64;
        let per = count.div_ceil(n);
        let start_ms = now_ms() - (per * n) as i64;
        let mut seqs = vec![0i64; conversations.len()];
        // The highest seq each member sent, per conversation: their read marker.
        let mut read: HashMap<(usize, usize), i64> = HashMap::new();
        let mut k = 0u64;
        while k < count {
            let tx_end = (k + ROWS_PER_TRANSACTION as u64).min(count);
            let mut w = self.write_tx().await?;
            while k < tx_end {
                let end = (k + ROWS_PER_STATEMENT as u64).min(tx_end);
                // (conversation, seq, sender, message number)
                let rows: Vec<(usize, i64, usize, u64)> = (k..end)
                    .map(|m| {
                        let c = (m / per) as usize;
                        let seq = (m % per + 1) as i64;
                        seqs[c] = seq;
                        let members = &conversations[c].members;
                        let sender = members[(seq as usize - 1) % members.len()];
                        read.insert((c, sender), seq);
                        (c, seq, sender, m)
                    })
                    .collect();
                let at = |c: usize, seq: i64| start_ms + (seq - 1) * n as i64 + c as i64;
                let mut sql = String::from(
                    "INSERT INTO events (conversation_id, user_id, payload, created_at, seq) VALUES ",
                );
                values(&mut sql, rows.len(), 3, "NULL, '', ");
                sql.push_str(" RETURNING pos, conversation_id, seq");
                // Placeholders only: every value is bound.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for &(c, seq, _, _) in &rows {
                    q = q
                        .bind(conversations[c].id.as_str())
                        .bind(at(c, seq))
                        .bind(seq);
                }
                let mut positions: HashMap<(String, i64), i64> = HashMap::new();
                for r in q.fetch_all(w.conn()).await? {
                    let (pos, conv, seq): (i64, String, i64) = (r.get(0), r.get(1), r.get(2));
                    positions.insert((conv, seq), pos);
                }
                let mut sql = String::from(
                    "INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, kind, body, created_at",
                );
                sql.push_str(if with_pos {
                    ", pos) VALUES "
                } else {
                    ") VALUES "
                });
                values(&mut sql, rows.len(), if with_pos { 9 } else { 8 }, "");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for &(c, seq, sender, m) in &rows {
                    let conv = conversations[c].id.as_str();
                    let body = format!("history {m}: the quick brown fox jumps over the lazy dog");
                    q = q
                        .bind(new_id())
                        .bind(conv)
                        .bind(seq)
                        .bind(user_ids[sender].as_str())
                        .bind(format!("history-{m}"))
                        .bind("text")
                        .bind(w.seal(column::MESSAGE_BODY, &body))
                        .bind(at(c, seq));
                    if with_pos {
                        q = q.bind(positions.get(&(conv.to_owned(), seq)).copied());
                    }
                }
                q.execute(w.conn()).await?;
                k = end;
            }
            w.finish(Ok(())).await?;
        }
        let mut w = self.write_tx().await?;
        let now = now_ms();
        for (c, conv) in conversations.iter().enumerate() {
            sqlx::query(
                "UPDATE conversations SET last_seq = $2, last_activity_at = $3 WHERE id = $1",
            )
            .bind(conv.id.as_str())
            .bind(seqs[c])
            .bind(now)
            .execute(w.conn())
            .await?;
        }
        for ((c, sender), seq) in read {
            sqlx::query(
                "UPDATE members SET last_read_seq = $3 WHERE conversation_id = $1 AND user_id = $2",
            )
            .bind(conversations[c].id.as_str())
            .bind(user_ids[sender].as_str())
            .bind(seq)
            .execute(w.conn())
            .await?;
        }
        w.finish(Ok(())).await
    }
}

/// Appends `rows` tuples of `binds` numbered parameters each (`$1`, `$2`, …), with the
/// literal SQL `fixed` after each tuple's first parameter, as in `($1, NULL, '', $2, $3)`.
fn values(sql: &mut String, rows: usize, binds: usize, fixed: &str) {
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for b in 0..binds {
            if b > 0 {
                sql.push_str(", ");
            }
            if b == 1 {
                sql.push_str(fixed);
            }
            sql.push_str(&format!("${n}"));
            n += 1;
        }
        sql.push(')');
    }
}
