//! Benchmark fixtures (`chatnode bench-seed`): users with a login session each, friendships,
//! direct chats and groups, written in one transaction. Not reachable over HTTP: it runs from
//! the command line against a data directory, so a load test can have 20,000 users with
//! friends and groups in seconds instead of paying an argon2 hash and a dozen requests per
//! user. It must never be wired to a route.
//!
//! History (`--history N`): N messages spread round-robin over the seeded conversations, the
//! members taking turns, stored as the send path stores them (body sealed under the current
//! key, the message's event row with an empty payload, the conversation's `last_seq`, each
//! sender's read marker, the message's search terms) but in multi-row statements, so 10
//! million rows take minutes. Bodies are made of words drawn from a vocabulary with a
//! long tail (a few words very common, most rare), like chat text, so search has realistic
//! work to do (see [`history_body`]).

use std::collections::HashMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::search::terms;
use super::{Backend, Conn, SqlStore};
use crate::crypto::column;
use crate::domain::{SessionId, UserId};
use crate::error::Result;
use crate::store::{Maintenance, SeedConversation};
use crate::time::{new_id, now_ms};

/// Messages per multi-row INSERT (10 parameters each). Small: sqlx's SQLite driver looks
/// every parameter up by name among all of a statement's (`sqlite3_bind_parameter_name`), so
/// binding costs grow with the square of a statement's parameters (the profile of 500-row
/// statements showed 91 % of the time there).
const ROWS_PER_STATEMENT: usize = 100;
/// Messages per transaction: small enough to keep SQLite's WAL and PostgreSQL's transaction
/// bounded, big enough that commits cost nothing.
const ROWS_PER_TRANSACTION: usize = 100_000;
/// Search-term rows per multi-row INSERT (3 parameters each; small, see above).
const TERMS_PER_STATEMENT: usize = 300;

/// Common words of chat text; the vocabulary's long tail is made of syllables.
const COMMON: &[&str] = &[
    "the", "to", "and", "you", "it", "is", "for", "that", "on", "in", "we", "can", "this", "i",
    "me", "are", "at", "be", "with", "so", "ok", "yes", "no", "what", "when", "where", "how",
    "today", "tomorrow", "meeting", "dinner", "lunch", "friday", "monday", "weekend", "call",
    "later", "now", "thanks", "great", "good", "see", "let", "know", "time", "work", "home",
    "project", "deploy", "build", "review", "release", "coffee", "office", "train", "late",
    "sorry", "question", "answer", "idea", "plan", "team", "design", "bug", "fix", "test",
    "report", "budget", "invoice", "client", "server", "chat", "message", "photo", "video",
    "party", "birthday", "holiday", "ticket", "flight", "hotel", "morning", "evening", "night",
];
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "da", "fe", "go", "hu", "ji", "ko", "la",
    "mo", "nu", "pi", "qua", "re", "si", "tu", "ve", "wo", "xa", "yo", "ze", "an", "or",
];

/// A deterministic chat-like body for history message `m`: 4 to 14 words, each drawn with
/// a log-uniform rank from the common words followed by ~27,000 made-up ones (so a word's
/// frequency falls off like Zipf's law: "the" is in a sizeable share of messages, most
/// words in a handful).
pub(crate) fn history_body(m: u64) -> String {
    // SplitMix64: good enough mixing for a fixture, and stable across runs.
    let mut state = m.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let tail = SYLLABLES.len().pow(3);
    let vocab = (COMMON.len() + tail) as f64;
    let words = 4 + (next() % 11) as usize;
    let mut out = Vec::with_capacity(words);
    for _ in 0..words {
        let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
        let rank = (vocab.powf(u) as usize).saturating_sub(1);
        if rank < COMMON.len() {
            out.push(COMMON[rank].to_owned());
        } else {
            let mut r = rank - COMMON.len();
            let mut w = String::new();
            for _ in 0..3 {
                w.push_str(SYLLABLES[r % SYLLABLES.len()]);
                r /= SYLLABLES.len();
            }
            out.push(w);
        }
    }
    out.join(" ")
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
        // The index under the current key first: the messages seeded here are indexed as
        // they are written, and the server's backfill at start is left nothing to do for
        // them.
        let with_search = with_pos
            && sqlx::query("SELECT term FROM search_terms LIMIT 0")
                .fetch_all(&self.read)
                .await
                .is_ok();
        // Where the index stood, to move its horizon past the seeded messages at the end only
        // if nothing before them was waiting for the indexer.
        let mut caught_up = false;
        if with_search {
            self.prepare_search_index().await?;
            let through: i64 =
                sqlx::query_scalar("SELECT indexed_through FROM search_state WHERE id = 1")
                    .fetch_one(&self.write)
                    .await?;
            let head: i64 = sqlx::query_scalar(B::STREAM_HEAD_SQL)
                .fetch_one(&self.write)
                .await?;
            caught_up = through >= head;
        }
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
            // (term, pos, seq) of every message of the transaction, written at its end in
            // term order: each index page is then written once, not once per message.
            let mut term_rows: Vec<(i64, i64, i64)> = Vec::new();
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
                    let body = history_body(m);
                    if with_search && let Some(&pos) = positions.get(&(conv.to_owned(), seq)) {
                        term_rows.extend(
                            terms(self.keys(), conv, &body)
                                .into_iter()
                                .map(|t| (t, pos, seq)),
                        );
                    }
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
            term_rows.sort_unstable();
            for chunk in term_rows.chunks(TERMS_PER_STATEMENT) {
                let mut sql = String::from("INSERT INTO search_terms (term, pos, seq) VALUES ");
                values(&mut sql, chunk.len(), 3, "");
                sql.push_str(" ON CONFLICT DO NOTHING");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for &(t, pos, seq) in chunk {
                    q = q.bind(t).bind(pos).bind(seq);
                }
                q.execute(w.conn()).await?;
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
        w.finish(Ok(())).await?;
        if caught_up {
            // Indexed as written: the indexer starts after them (their stream positions
            // first, on PostgreSQL).
            self.stamp_pending().await?;
            let head: i64 = sqlx::query_scalar(B::STREAM_HEAD_SQL)
                .fetch_one(&self.write)
                .await?;
            sqlx::query("UPDATE search_state SET indexed_through = $1 WHERE id = 1")
                .bind(head)
                .execute(&self.write)
                .await?;
        }
        Ok(())
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
