//! SQLite's fast send path: a group-commit batch of simple messages (no reply, no
//! attachments) checked and written with two multi-statement queries per chunk of
//! `FAST_CHUNK`, instead of a few statements per message. sqlx runs SQLite on a worker
//! thread, so every query is a cross-thread round trip; this path makes a batch cost a few.
//!
//! It decides each message with the shared `SqlStore::decide_send`, so its rules and answers
//! are the general path's; only the SQL differs (and is SQLite's: several statements in one
//! query, two-argument `MAX`). It is compiled into the SQLite backend only.

use std::collections::HashMap;

use chatnode_protocol::{self as p, ServerFrame};

use super::SqliteBackend;
use crate::crypto::column;
use crate::error::{Error, Result};
use crate::events::{Durable, EventKind};
use crate::store::sql::{SendCheck, SendResults, SqlStore, WriteTx, with_pos};
use crate::store::{NewMessage, SendOutcome};
use crate::time::{new_id, now_ms, rfc3339};

impl SqlStore<SqliteBackend> {
    /// The group-commit transaction with two round trips to the database per chunk of
    /// `FAST_CHUNK` messages (SQLite runs several statements of one query in one call, `$N`
    /// numbering the query's arguments across all of them): one query checks every message
    /// of the chunk (the same checks as `check_send`, plus the conversation's `last_seq`),
    /// Rust decides, one query writes every message, read marker, `last_seq` and event and
    /// returns the stream positions. The SQL text depends only on the chunk's size, so it is
    /// prepared once and cached. Messages with a reply or attachments take the general path
    /// (`send_batch_once`; see `SqliteBackend::send_batch_fast`).
    pub(super) async fn send_batch_fast(&self, batch: &[NewMessage]) -> Result<SendResults> {
        let mut w = self.write_tx().await?;
        let mut results: SendResults = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(FAST_CHUNK) {
            self.send_chunk(&mut w, chunk, &mut results).await?;
        }
        w.finish(Ok(results)).await
    }

    async fn send_chunk(
        &self,
        w: &mut WriteTx<'_, SqliteBackend>,
        chunk: &[NewMessage],
        results: &mut SendResults,
    ) -> Result<()> {
        // 1. Every check in one query: one result row per message, in order.
        let mut q = sqlx::query_as::<
            _,
            (
                Option<String>,
                Option<String>,
                Option<String>,
                bool,
                bool,
                Option<i64>,
            ),
        >(sqlx::AssertSqlSafe(fast_check_sql(chunk.len())));
        for m in chunk {
            q = q
                .bind(m.conversation_id.as_str())
                .bind(m.sender_id.as_str())
                .bind(&m.client_id);
        }
        let checks = q.fetch_all(w.conn()).await?;
        if checks.len() != chunk.len() {
            return Err(Error::Internal(anyhow::anyhow!(
                "batch check returned {} rows for {} messages",
                checks.len(),
                chunk.len()
            )));
        }

        // 2. Decide in memory.
        enum Plan {
            Done(Result<SendOutcome>),
            /// Same sender and client_id as an earlier message of this chunk (index into
            /// `results`).
            SameAs(usize),
            Write {
                message: p::Message,
                members: Vec<String>,
                payload: String,
            },
        }
        let now = now_ms();
        let base = results.len();
        let mut seqs: HashMap<&str, i64> = HashMap::new();
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut group_members: HashMap<String, Vec<String>> = HashMap::new();
        let mut plans = Vec::with_capacity(chunk.len());
        for (i, (m, (existing, kind, peer, blocked, friends, last_seq))) in
            chunk.iter().zip(checks).enumerate()
        {
            if let Some(&j) = first_of.get(&(m.sender_id.as_str(), m.client_id.as_str())) {
                plans.push(Plan::SameAs(base + j));
                continue;
            }
            first_of.insert((m.sender_id.as_str(), &m.client_id), i);
            let members = match self
                .decide_send(
                    w.conn(),
                    m,
                    (existing, kind, peer, blocked, friends),
                    &mut group_members,
                )
                .await
            {
                Ok(SendCheck::New { members, .. }) => members,
                Ok(SendCheck::Existing(message)) => {
                    plans.push(Plan::Done(Ok(SendOutcome {
                        message,
                        created: false,
                    })));
                    continue;
                }
                Err(e @ Error::Internal(_)) => return Err(e),
                Err(e) => {
                    plans.push(Plan::Done(Err(e)));
                    continue;
                }
            };
            let seq = seqs
                .entry(m.conversation_id.as_str())
                .or_insert(last_seq.unwrap_or(0));
            *seq += 1;
            let message = p::Message {
                id: new_id(),
                conversation_id: m.conversation_id.to_string(),
                seq: *seq,
                sender_id: m.sender_id.to_string(),
                client_id: m.client_id.clone(),
                kind: m.kind,
                body: m.body.clone(),
                attachments: Vec::new(),
                reply_to_seq: None,
                created_at: rfc3339(now),
                edited_at: None,
                deleted: false,
            };
            let frame = ServerFrame::Message {
                message,
                stream_pos: None,
            };
            let payload = serde_json::to_string(&frame).map_err(|e| Error::Internal(e.into()))?;
            let ServerFrame::Message { message, .. } = frame else {
                unreachable!("built above")
            };
            plans.push(Plan::Write {
                message,
                members,
                payload,
            });
        }

        // 3. Every write in one query; the events' RETURNING rows come back in order.
        let writes = plans
            .iter()
            .filter(|p| matches!(p, Plan::Write { .. }))
            .count();
        let mut positions = Vec::new();
        if writes > 0 {
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(fast_write_sql(writes)));
            for plan in &plans {
                if let Plan::Write {
                    message, payload, ..
                } = plan
                {
                    q = q
                        .bind(&message.id)
                        .bind(&message.conversation_id)
                        .bind(message.seq)
                        .bind(&message.sender_id)
                        .bind(&message.client_id)
                        .bind(message.kind.as_str())
                        .bind(w.seal(column::MESSAGE_BODY, &message.body))
                        .bind(now)
                        .bind(w.seal(column::EVENT_PAYLOAD, payload));
                }
            }
            positions = q.fetch_all(w.conn()).await?;
            if positions.len() != writes {
                return Err(Error::Internal(anyhow::anyhow!(
                    "batch write returned {} positions for {writes} messages",
                    positions.len()
                )));
            }
        }

        // 4. Answers and events, in order.
        let mut k = 0;
        for plan in plans {
            let r = match plan {
                Plan::Done(r) => r,
                Plan::SameAs(j) => match &results[j] {
                    Ok(o) => Ok(SendOutcome {
                        message: o.message.clone(),
                        created: false,
                    }),
                    Err(e) => {
                        let (code, msg) = e.public();
                        Err(Error::new(code, msg))
                    }
                },
                Plan::Write {
                    message,
                    members,
                    payload,
                } => {
                    w.push_event(Durable {
                        pos: positions[k],
                        kind: EventKind::Message,
                        conversation_id: Some(message.conversation_id.clone()),
                        user_id: None,
                        seq: Some(message.seq),
                        recipients: members.into(),
                        json: with_pos(&payload, positions[k]).into(),
                    });
                    k += 1;
                    Ok(SendOutcome {
                        message,
                        created: true,
                    })
                }
            };
            results.push(r);
        }
        Ok(())
    }
}

/// Messages per multi-statement query on the fast send path: large enough to amortize the
/// round trip, small enough that the few distinct query texts (one per size) stay prepared.
const FAST_CHUNK: usize = 16;

/// The checks of `n` sends, one row each; arguments per send: conversation, sender, client_id.
fn fast_check_sql(n: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(n * 700);
    for i in 0..n {
        let (cv, sd, cl) = (3 * i + 1, 3 * i + 2, 3 * i + 3);
        let _ = write!(
            sql,
            "WITH p AS (SELECT user_id AS id FROM members WHERE conversation_id = ${cv} AND user_id <> ${sd} LIMIT 1)
             SELECT (SELECT id FROM messages WHERE sender_id = ${sd} AND client_id = ${cl}),
                    (SELECT c.kind FROM conversations c JOIN members m ON m.conversation_id = c.id
                      WHERE c.id = ${cv} AND m.user_id = ${sd}),
                    (SELECT id FROM p),
                    EXISTS (SELECT 1 FROM blocks b JOIN p
                             ON (b.blocker_id = ${sd} AND b.blocked_id = p.id) OR (b.blocker_id = p.id AND b.blocked_id = ${sd})),
                    EXISTS (SELECT 1 FROM friendships f JOIN p ON f.user_id = ${sd} AND f.friend_id = p.id),
                    (SELECT last_seq FROM conversations WHERE id = ${cv});
"
        );
    }
    sql
}

/// The writes of `n` new messages, returning each event's stream position. Arguments per
/// message: id, conversation, seq, sender, client_id, kind, body, now, event payload.
/// (`MAX(…)` with two arguments is SQLite's; this path runs only there.)
fn fast_write_sql(n: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(n * 800);
    for i in 0..n {
        let b = 9 * i;
        let _ = write!(
            sql,
            "INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, kind, body, reply_to_seq, created_at)
             VALUES (${id}, ${cv}, ${sq}, ${sd}, ${cl}, ${kd}, ${bd}, NULL, ${now});
             UPDATE members SET last_read_seq = ${sq} WHERE conversation_id = ${cv} AND user_id = ${sd} AND last_read_seq < ${sq};
             UPDATE conversations SET last_seq = MAX(last_seq, ${sq}), last_activity_at = ${now} WHERE id = ${cv};
             INSERT INTO events (conversation_id, user_id, payload, created_at, seq) VALUES (${cv}, NULL, ${pl}, ${now}, ${sq}) RETURNING pos;
",
            id = b + 1,
            cv = b + 2,
            sq = b + 3,
            sd = b + 4,
            cl = b + 5,
            kd = b + 6,
            bd = b + 7,
            now = b + 8,
            pl = b + 9,
        );
    }
    sql
}
