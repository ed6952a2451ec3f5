//! PostgreSQL's send path for a whole batch: one statement per kind of write, not one
//! round trip per message per write.
//!
//! The general path (`SqlStore::send_batch_once`) checks and writes each message of a batch
//! in turn: the check, the `seq`, the event, the row, the sender's read marker. On PostgreSQL each is a round trip to another process, so a message
//! of ten words cost some thirty. Here a batch of plain messages (what nearly all traffic is)
//! costs a fixed number of statements whatever its size:
//!
//! 1. one check of every send (`UNNEST … WITH ORDINALITY` joined to what `SEND_CHECK_SQL`
//!    reads), plus one read of the members of the groups in the batch;
//! 2. the batch's conversations locked in `id` order (so two nodes' batches over the same
//!    conversations cannot deadlock) and their `last_seq` advanced in one `UPDATE … FROM
//!    UNNEST`;
//! 3. the events, the message rows and the senders' read markers, one
//!    `INSERT … SELECT FROM UNNEST` / `UPDATE … FROM UNNEST` each.
//!
//! New messages are indexed for search afterwards, in bigger batches, by one node at a time
//! ([`SqlStore::pg_index_search`]; see `search.rs`).
//!
//! The rules are `send_rules::decide`, as on every path. A batch with anything else in it (an
//! attachment, a reply, an `@mention`, a retried `client_id`) takes the general path whole,
//! so a conversation's messages are still written in the order they came.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chatnode_protocol::{self as p, ServerFrame};

use super::{SendResults, SqlStore, WriteTx};
use crate::crypto::column;
use crate::error::{Error, Result};
use crate::events::{Durable, EventKind};
use crate::store::postgres::PostgresBackend;
use crate::store::send_rules::{self, SendFacts};
use crate::store::{NewMessage, SendOutcome};
use crate::time::{now_ms, rfc3339};

use super::messages::{SendCheckRow, conversation_facts};

/// Every send's check in one statement: the columns of `SEND_CHECK_SQL` (a [`SendCheckRow`]),
/// per input row, in input order.
const BATCH_CHECK_SQL: &str = "SELECT
        (SELECT id FROM messages WHERE sender_id = t.sender AND client_id = t.client),
        c.kind,
        mm.role,
        p.id,
        EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = t.sender AND b.blocked_id = p.id)
                                         OR (b.blocker_id = p.id AND b.blocked_id = t.sender)),
        EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = t.sender AND f.friend_id = p.id),
        EXISTS (SELECT 1 FROM users u WHERE u.bot_owner_id IS NOT NULL AND (u.id = t.sender OR u.id = p.id)),
        c.last_seq
   FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(conv, sender, client, i)
   LEFT JOIN conversations c ON c.id = t.conv
   LEFT JOIN members mm ON mm.conversation_id = t.conv AND mm.user_id = t.sender
   LEFT JOIN LATERAL (SELECT user_id AS id FROM members
                       WHERE conversation_id = t.conv AND user_id <> t.sender LIMIT 1) p ON TRUE
  ORDER BY t.i";

/// Whether a send can go in a batch written by this path (see the module comment).
fn plain(m: &NewMessage) -> bool {
    m.attachment_ids.is_empty()
        && m.reply_to_seq.is_none()
        && m.kind == p::MessageKind::Text
        && !m.body.contains('@')
}

impl SqlStore<PostgresBackend> {
    /// Checks and writes `batch` in one transaction, a statement per kind of write; `None`
    /// (nothing written) when the batch is not one this path takes.
    pub(in crate::store) async fn pg_send_batch(
        &self,
        batch: &[NewMessage],
    ) -> Result<Option<SendResults>> {
        if batch.is_empty() || !batch.iter().all(plain) {
            return Ok(None);
        }
        let mut w = self.write_tx().await?;
        let Some(decided) = self.pg_check_batch(&mut w, batch).await? else {
            // A retried client_id: the general path answers it with the original message
            // (the transaction rolls back when `w` is dropped; nothing was written).
            return Ok(None);
        };
        let results = self.pg_write_batch(&mut w, batch, decided).await;
        if results.is_ok() && crate::failpoints::hit("batch-hold") {
            sqlx::query("SELECT pg_sleep(0.5) -- chatnode failpoint batch-hold")
                .execute(w.conn())
                .await?;
        }
        w.finish(results).await.map(Some)
    }

    /// The rules' answer for every send; `None` when one of them reuses a `client_id`.
    async fn pg_check_batch(
        &self,
        w: &mut WriteTx<'_, PostgresBackend>,
        batch: &[NewMessage],
    ) -> Result<Option<Vec<Result<send_rules::Accepted>>>> {
        let convs: Vec<&str> = batch.iter().map(|m| m.conversation_id.as_str()).collect();
        let senders: Vec<&str> = batch.iter().map(|m| m.sender_id.as_str()).collect();
        let clients: Vec<&str> = batch.iter().map(|m| m.client_id.as_str()).collect();
        let rows: Vec<SendCheckRow> = sqlx::query_as(BATCH_CHECK_SQL)
            .bind(&convs)
            .bind(&senders)
            .bind(&clients)
            .fetch_all(w.conn())
            .await?;
        if rows.len() != batch.len() || rows.iter().any(|r| r.0.is_some()) {
            return Ok(None);
        }
        // Two sends with the same client_id in one batch: the second is a retry of the
        // first, which the general path answers with the first's message.
        let mut seen = std::collections::HashSet::new();
        if !batch
            .iter()
            .all(|m| seen.insert((m.sender_id.as_str(), m.client_id.as_str())))
        {
            return Ok(None);
        }
        // The member lists of the groups the senders belong to, in one read.
        let groups: Vec<&str> = {
            let mut g: Vec<&str> = rows
                .iter()
                .zip(batch)
                .filter(|(r, _)| r.1.as_deref() == Some("group") && r.2.is_some())
                .map(|(_, m)| m.conversation_id.as_str())
                .collect();
            g.sort_unstable();
            g.dedup();
            g
        };
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        if !groups.is_empty() {
            let list: Vec<(String, String)> = sqlx::query_as(
                "SELECT conversation_id, user_id FROM members WHERE conversation_id = ANY($1)",
            )
            .bind(&groups)
            .fetch_all(w.conn())
            .await?;
            for (conv, user) in list {
                members.entry(conv).or_default().push(user);
            }
        }
        let members: HashMap<String, Arc<[String]>> =
            members.into_iter().map(|(k, v)| (k, v.into())).collect();
        let mut out = Vec::with_capacity(batch.len());
        for (row, m) in rows.into_iter().zip(batch) {
            let decided = conversation_facts(m.sender_id.as_str(), &row, || {
                Ok(members
                    .get(m.conversation_id.as_str())
                    .cloned()
                    .unwrap_or_else(|| Arc::from(Vec::new())))
            })
            .and_then(|conversation| {
                send_rules::decide(
                    m,
                    SendFacts {
                        conversation,
                        ..SendFacts::default()
                    },
                )
            });
            match decided {
                Err(e @ Error::Internal(_)) => return Err(e),
                other => out.push(other),
            }
        }
        Ok(Some(out))
    }

    /// Writes the accepted sends of a checked batch: a statement per kind of write.
    async fn pg_write_batch(
        &self,
        w: &mut WriteTx<'_, PostgresBackend>,
        batch: &[NewMessage],
        decided: Vec<Result<send_rules::Accepted>>,
    ) -> Result<SendResults> {
        let now = now_ms();
        let created_at = rfc3339(now);
        // How many messages each conversation gets, locked in id order, then numbered.
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for (m, d) in batch.iter().zip(&decided) {
            if d.is_ok() {
                *counts.entry(m.conversation_id.as_str()).or_default() += 1;
            }
        }
        if counts.is_empty() {
            // Every send was refused by a rule: nothing to write.
            return Ok(decided
                .into_iter()
                .filter_map(Result::err)
                .map(Err)
                .collect());
        }
        let ids: Vec<&str> = counts.keys().copied().collect();
        let ns: Vec<i64> = counts.values().copied().collect();
        // Locked first, in `id` order, and only then updated: an `UPDATE … FROM UNNEST` alone
        // locks rows in whatever order its plan visits them, and two nodes' batches over the
        // same conversations could deadlock.
        let locked: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(w.conn())
        .await?;
        if locked.len() != ids.len() {
            return Err(Error::Internal(anyhow::anyhow!(
                "a conversation of the batch is gone"
            )));
        }
        let heads: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE conversations c SET last_seq = c.last_seq + t.n, last_activity_at = $3
               FROM UNNEST($1::text[], $2::bigint[]) AS t(id, n)
              WHERE c.id = t.id
          RETURNING c.id, c.last_seq",
        )
        .bind(&ids)
        .bind(&ns)
        .bind(now)
        .fetch_all(w.conn())
        .await?;
        // The next seq of each conversation, in batch order.
        let mut next: HashMap<String, i64> = heads
            .into_iter()
            .map(|(id, last)| {
                let n = counts.get(id.as_str()).copied().unwrap_or(0);
                (id, last - n + 1)
            })
            .collect();

        struct Row {
            message: p::Message,
            members: Arc<[String]>,
            json: String,
        }
        let mut rows: Vec<Option<Row>> = Vec::with_capacity(batch.len());
        let mut answers: Vec<Option<Error>> = Vec::with_capacity(batch.len());
        for (m, d) in batch.iter().zip(decided) {
            match d {
                Err(e) => {
                    rows.push(None);
                    answers.push(Some(e));
                }
                Ok(accepted) => {
                    let slot = next
                        .get_mut(m.conversation_id.as_str())
                        .ok_or_else(|| Error::Internal(anyhow::anyhow!("no seq for a send")))?;
                    let seq = *slot;
                    *slot += 1;
                    let message = m.committed(seq, &[], Vec::new(), created_at.clone());
                    let frame = ServerFrame::Message {
                        message: message.clone(),
                        stream_pos: None,
                    };
                    let json =
                        serde_json::to_string(&frame).map_err(|e| Error::Internal(e.into()))?;
                    rows.push(Some(Row {
                        message,
                        members: accepted.members,
                        json,
                    }));
                    answers.push(None);
                }
            }
        }
        let written: Vec<&Row> = rows.iter().flatten().collect();

        // The events first (a message row keeps its event's position), in batch order.
        let ev_conv: Vec<&str> = written
            .iter()
            .map(|r| r.message.conversation_id.as_str())
            .collect();
        let ev_seq: Vec<i64> = written.iter().map(|r| r.message.seq).collect();
        let positions: Vec<(String, i64, i64)> = sqlx::query_as(
            "INSERT INTO events (conversation_id, user_id, payload, created_at, seq)
             SELECT t.conv, NULL, '', $3, t.seq
               FROM UNNEST($1::text[], $2::bigint[]) WITH ORDINALITY AS t(conv, seq, i)
              ORDER BY t.i
             RETURNING conversation_id, seq, pos",
        )
        .bind(&ev_conv)
        .bind(&ev_seq)
        .bind(now)
        .fetch_all(w.conn())
        .await?;
        let pos_of: HashMap<(String, i64), i64> = positions
            .into_iter()
            .map(|(c, s, pos)| ((c, s), pos))
            .collect();
        let mut pos = Vec::with_capacity(written.len());
        for r in &written {
            let p = pos_of
                .get(&(r.message.conversation_id.clone(), r.message.seq))
                .copied()
                .ok_or_else(|| Error::Internal(anyhow::anyhow!("an event has no position")))?;
            pos.push(p);
        }

        // The message rows.
        let id: Vec<&str> = written.iter().map(|r| r.message.id.as_str()).collect();
        let sender: Vec<&str> = written
            .iter()
            .map(|r| r.message.sender_id.as_str())
            .collect();
        let client: Vec<&str> = written
            .iter()
            .map(|r| r.message.client_id.as_str())
            .collect();
        let kind: Vec<&str> = written.iter().map(|r| r.message.kind.as_str()).collect();
        let body: Vec<String> = written
            .iter()
            .map(|r| w.seal(column::MESSAGE_BODY, &r.message.body))
            .collect();
        let hook_id: Vec<Option<&str>> = written
            .iter()
            .map(|r| r.message.via_webhook.as_ref().map(|h| h.id.as_str()))
            .collect();
        let hook_name: Vec<Option<&str>> = written
            .iter()
            .map(|r| r.message.via_webhook.as_ref().map(|h| h.name.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, kind, body, reply_to_seq, created_at, pos, mentions, webhook_id, webhook_name)
             SELECT t.id, t.conv, t.seq, t.sender, t.client, t.kind, t.body, NULL, $8, t.pos, NULL, t.hook_id, t.hook_name
               FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $9::bigint[], $10::text[], $11::text[])
                 AS t(id, conv, seq, sender, client, kind, body, pos, hook_id, hook_name)",
        )
        .bind(&id)
        .bind(&ev_conv)
        .bind(&ev_seq)
        .bind(&sender)
        .bind(&client)
        .bind(&kind)
        .bind(&body)
        .bind(now)
        .bind(&pos)
        .bind(&hook_id)
        .bind(&hook_name)
        .execute(w.conn())
        .await?;

        // Whoever writes has read up to their own message (a webhook's post is not its
        // creator's writing); once per conversation and sender, at their last message.
        let mut read: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for r in written.iter().filter(|r| r.message.via_webhook.is_none()) {
            let e = read
                .entry((&r.message.conversation_id, &r.message.sender_id))
                .or_default();
            *e = (*e).max(r.message.seq);
        }
        if !read.is_empty() {
            let r_conv: Vec<&str> = read.keys().map(|k| k.0).collect();
            let r_user: Vec<&str> = read.keys().map(|k| k.1).collect();
            let r_seq: Vec<i64> = read.values().copied().collect();
            sqlx::query(
                "UPDATE members m SET last_read_seq = t.seq
                   FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS t(conv, usr, seq)
                  WHERE m.conversation_id = t.conv AND m.user_id = t.usr AND m.last_read_seq < t.seq",
            )
            .bind(&r_conv)
            .bind(&r_user)
            .bind(&r_seq)
            .execute(w.conn())
            .await?;
        }

        // The events to publish after the commit, and the answers in batch order.
        let mut pos = pos.into_iter();
        let mut out = Vec::with_capacity(batch.len());
        for (row, answer) in rows.into_iter().zip(answers) {
            match (row, answer) {
                (_, Some(e)) => out.push(Err(e)),
                (
                    Some(Row {
                        message,
                        members,
                        json,
                    }),
                    None,
                ) => {
                    let p = pos
                        .next()
                        .ok_or_else(|| Error::Internal(anyhow::anyhow!("positions ran out")))?;
                    w.push_event(Durable {
                        pos: p,
                        kind: EventKind::Message,
                        conversation_id: Some(message.conversation_id.clone()),
                        user_id: None,
                        seq: Some(message.seq),
                        recipients: members,
                        json: json.into(),
                    });
                    out.push(Ok(SendOutcome {
                        message,
                        created: true,
                    }));
                }
                (None, None) => {
                    return Err(Error::Internal(anyhow::anyhow!("a send without an answer")));
                }
            }
        }
        Ok(out)
    }
}

/// The search indexer's lock key (the two-key form: apart from the stamp lock's one-key
/// space), with the schema's hash as the second key like the stamp lock.
const INDEX_LOCK_CLASS: i32 = 0x5e_a4c4;

impl SqlStore<PostgresBackend> {
    /// One pass of the search indexer: the next `batch` messages after the horizon (in
    /// `stream_pos` order, which is commit order), their terms written in one sorted
    /// `INSERT … UNNEST`, the horizon moved past them. One node at a time: a node that does
    /// not get the lock at once answers 0 and tries again later.
    pub(crate) async fn pg_index_search(&self, batch: i64) -> Result<usize> {
        if crate::failpoints::hit("search-index-off") {
            return Ok(0);
        }
        let mut tx = self.write.begin().await?;
        let got: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))")
                .bind(INDEX_LOCK_CLASS)
                .fetch_one(&mut *tx)
                .await?;
        if !got {
            return Ok(0);
        }
        // A frozen indexer lets go of the lock (its session ends) instead of stopping search
        // indexing for the whole cluster.
        sqlx::query("SELECT set_config('idle_in_transaction_session_timeout', '5s', true)")
            .execute(&mut *tx)
            .await?;
        let through: Option<i64> =
            sqlx::query_scalar("SELECT indexed_through FROM search_state WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        let Some(through) = through else {
            return Ok(0);
        };
        // The rows are locked until the terms are in: an edit or a deletion of one of them
        // waits (and then replaces or removes exactly these terms), or went first (and this
        // reads its result). No stale terms are left behind either way.
        type Row = (i64, i64, String, i64, String, bool, String);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT e.stream_pos, e.pos, m.conversation_id, m.seq, m.kind, m.deleted, m.body
             FROM events e JOIN messages m ON m.conversation_id = e.conversation_id AND m.seq = e.seq
             WHERE e.stream_pos > $1 AND e.seq IS NOT NULL ORDER BY e.stream_pos LIMIT $2
             FOR SHARE OF m",
        )
        .bind(through)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(0);
        };
        let n = rows.len();
        // Opening and hashing a batch is CPU work: off the runtime's threads.
        let keys = self.keys.clone();
        let terms = tokio::task::spawn_blocking(move || {
            let rows: Vec<super::IndexRow> = rows
                .into_iter()
                .map(|(_, pos, conv, seq, kind, deleted, body)| {
                    (pos, conv, seq, kind, deleted, body)
                })
                .collect();
            super::index_rows(&keys, &rows)
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?;
        if !terms.is_empty() {
            let t_term: Vec<i64> = terms.iter().map(|t| t.0).collect();
            let t_pos: Vec<i64> = terms.iter().map(|t| t.1).collect();
            let t_seq: Vec<i64> = terms.iter().map(|t| t.2).collect();
            // An edit since may have written some of them already.
            sqlx::query(
                "INSERT INTO search_terms (term, pos, seq)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[])
                 ON CONFLICT DO NOTHING",
            )
            .bind(&t_term)
            .bind(&t_pos)
            .bind(&t_seq)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE search_state SET indexed_through = $1 WHERE id = 1")
            .bind(last)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}
