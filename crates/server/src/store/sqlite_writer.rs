//! The SQLite message writer: one OS thread that owns a connection and commits batches of
//! messages with cached prepared statements, synchronously.
//!
//! Why a thread of its own: sqlx runs every SQLite connection on a worker thread and each
//! query is a round trip between it and the async runtime (a channel send, a wake-up, a
//! context switch). A group commit of a few hundred messages made thousands of them, and the
//! profile of the old path showed more time in switching threads than in SQLite. Here the
//! whole batch — checks, writes, commit — is straight-line code on one thread; the async side
//! hands over a batch once and gets all the answers once.
//!
//! Only messages go through here. Every other write uses the sqlx write connection; both
//! take the store's write gate (`gate`) for their whole transaction and the publishing of its
//! events, so commits — and stream positions, and live delivery — stay in one order.
//!
//! Durability is unchanged: WAL with `synchronous = FULL`, one fsync per batch, answers only
//! after `COMMIT` returned.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chatnode_protocol::{self as p, ServerFrame};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::send_rules::{self, Accepted, SendFacts, mentions_column, parse_mentions};
use super::sql::{
    IndexRow, MEMBER_BY_NAME_SQL, SEND_CHECK_SQL, SendCheckRow, conversation_facts, index_rows,
};
use super::{BlockingWriter, EventSink, MediaRecord, NewMessage, SendOutcome};
use crate::crypto::{Keyring, column};
use crate::error::{Error, Result};
use crate::events::{Durable, EventKind};
use crate::time::{now_ms, rfc3339};

/// What the store's async side shares with the writer.
pub struct WriterParts {
    pub keys: Arc<Keyring>,
    pub sink: Arc<dyn EventSink>,
    pub gate: Arc<tokio::sync::Mutex<()>>,
}

pub struct SqliteWriter {
    conn: Connection,
    parts: WriterParts,
    /// Messages (more exactly: events) past the search index's horizon, as far as this
    /// writer knows.
    unindexed: u64,
    /// After a failed indexing pass: not before this.
    index_retry_at: Option<std::time::Instant>,
}

/// Messages indexed per pass when no send is queued. A pass cannot be interrupted, so a
/// send arriving during one waits for it: 32 messages take a few milliseconds.
const INDEX_CHUNK: i64 = 32;

/// Behind by this many messages, the writer also indexes between batches under load, with
/// bigger passes, so the unindexed tail that every search scans stays bounded. Below it,
/// sends come first: a burst is indexed after it, not during it. (200,000 messages of
/// tail cost a search on SQLite about a tenth of a second to scan.)
const INDEX_URGENT: u64 = 200_000;
const INDEX_URGENT_CHUNK: i64 = 256;

fn db(e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::DiskFull
    {
        tracing::warn!(error = %e, "message batch refused: disk full");
        return crate::error::disk_full();
    }
    Error::Internal(e.into())
}

/// The general path's check query (`sql/messages.rs`), in rusqlite's placeholders.
fn check_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| numbered(SEND_CHECK_SQL));
    SQL.as_str()
}

fn member_by_name_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| numbered(MEMBER_BY_NAME_SQL));
    SQL.as_str()
}

/// `$N` → `?N` (the general path's SQL for rusqlite).
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

const MSG_COLS: &str = "id, conversation_id, seq, sender_id, client_id, kind, body, reply_to_seq, created_at, edited_at, deleted, mentions, webhook_id, webhook_name";

const MEDIA_COLS: &str = "id, owner_id, kind, mime, size, name, storage_key, sha256, width, height, thumb_key, thumb_size, thumb_mime, thumb_sha256, avatar, attached_at, created_at, duration_ms";

fn media_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MediaRecord> {
    Ok(MediaRecord {
        id: r.get(0)?,
        owner_id: r.get(1)?,
        kind: r.get(2)?,
        mime: r.get(3)?,
        size: r.get(4)?,
        name: r.get(5)?,
        storage_key: r.get(6)?,
        sha256: r.get(7)?,
        width: r.get(8)?,
        height: r.get(9)?,
        thumb_key: r.get(10)?,
        thumb_size: r.get(11)?,
        thumb_mime: r.get(12)?,
        thumb_sha256: r.get(13)?,
        avatar: r.get(14)?,
        attached_at: r.get(15)?,
        created_at: r.get(16)?,
        duration_ms: r.get(17)?,
    })
}

/// What checking one send found.
enum Decision {
    /// The `client_id` was used before: this is the original message.
    Existing(Box<p::Message>),
    Write(Accepted),
}

impl SqliteWriter {
    /// Opens the writer's own connection to the database at `path` (already migrated).
    pub fn open(path: &Path, parts: WriterParts) -> anyhow::Result<SqliteWriter> {
        let conn = Connection::open(path)?;
        // The same settings as the sqlx write connection (see `sqlite.rs`).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;
             PRAGMA cache_size = -8192;
             PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        // The backlog a previous run left (at least 1, so that a first pass looks).
        let unindexed: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(pos), 0) - COALESCE((SELECT indexed_through FROM search_state WHERE id = 1), 0) FROM events",
                [],
                |r| r.get(0),
            )
            .unwrap_or(1);
        Ok(SqliteWriter {
            conn,
            parts,
            unindexed: unindexed.max(1) as u64,
            index_retry_at: None,
        })
    }

    /// Commits a batch in one transaction; one answer per message, in order. Rule failures
    /// answer just their message (they wrote nothing); if a write fails, everything is rolled
    /// back and each message gets its own transaction, so only the culprit fails.
    pub fn commit(&mut self, batch: &[NewMessage]) -> Vec<Result<SendOutcome>> {
        match self.commit_once(batch) {
            Ok(r) => r,
            Err(e) if batch.len() == 1 => vec![Err(public(e))],
            Err(_) => batch
                .iter()
                .map(|m| match self.commit_once(std::slice::from_ref(m)) {
                    Ok(mut r) => r.pop().unwrap_or_else(|| Err(Error::not_found("message"))),
                    Err(e) => Err(public(e)),
                })
                .collect(),
        }
    }

    /// One pass of the search indexer: the next `chunk` messages after the index's horizon
    /// (`search_state.indexed_through`), their terms written in term order and the horizon
    /// moved past them, in one transaction. Answers how many messages it looked at.
    ///
    /// Messages are indexed here, off the send path, because the terms are most of what a
    /// message costs to store (36 rows for a 70-byte message, in random places of one
    /// B-tree); a search scans what is past the horizon itself, so it stays exact (see
    /// `sql/search.rs`). The index can be rebuilt, so its commits skip the fsync: a commit
    /// lost in a power cut loses its horizon too and is redone, and the next send's fsync
    /// makes it durable anyway (the WAL is written in order).
    fn index_pass(&mut self, chunk: i64) -> Result<usize> {
        let gate = self.parts.gate.clone();
        let _gate = gate.blocking_lock();
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(db)?;
        let out = self.index_pass_tx(chunk);
        // Sends must never commit without their fsync: a connection that cannot be put back
        // is dropped with the writer (which is restarted on a fresh one).
        if let Err(e) = self.conn.execute_batch("PRAGMA synchronous = FULL") {
            panic!("cannot restore synchronous = FULL on the message writer: {e}");
        }
        out
    }

    fn index_pass_tx(&mut self, chunk: i64) -> Result<usize> {
        let keys = self.parts.keys.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let through: Option<i64> = tx
            .prepare_cached("SELECT indexed_through FROM search_state WHERE id = 1")
            .map_err(db)?
            .query_row([], |r| r.get(0))
            .optional()
            .map_err(db)?;
        // No index yet (it is prepared before the server takes sends).
        let Some(through) = through else {
            return Ok(0);
        };
        let rows: Vec<IndexRow> = tx
            .prepare_cached(
                "SELECT e.pos, m.conversation_id, m.seq, m.kind, m.deleted, m.body FROM events e
                 JOIN messages m ON m.conversation_id = e.conversation_id AND m.seq = e.seq
                 WHERE e.pos > ?1 AND e.seq IS NOT NULL ORDER BY e.pos LIMIT ?2",
            )
            .map_err(db)?
            .query_map(params![through, chunk], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(db)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db)?;
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(0);
        };
        let terms = index_rows(&keys, &rows);
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO search_terms (term, pos, seq) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .map_err(db)?;
            for (t, pos, seq) in terms {
                insert.execute(params![t, pos, seq]).map_err(db)?;
            }
        }
        tx.prepare_cached("UPDATE search_state SET indexed_through = ?1 WHERE id = 1")
            .map_err(db)?
            .execute([last])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(rows.len())
    }

    fn commit_once(&mut self, batch: &[NewMessage]) -> Result<Vec<Result<SendOutcome>>> {
        // Held across the transaction and the publishing of its events (see the module doc).
        let _gate = self.parts.gate.blocking_lock();
        let keys = self.parts.keys.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut results: Vec<Result<SendOutcome>> = Vec::with_capacity(batch.len());
        let mut events: Vec<Durable> = Vec::with_capacity(batch.len());
        let mut seqs: HashMap<&str, i64> = HashMap::new();
        let mut groups: HashMap<&str, Arc<[String]>> = HashMap::new();
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let now = now_ms();
        let created_at = rfc3339(now);
        for (i, m) in batch.iter().enumerate() {
            // A retry inside the same batch: the first one's answer.
            if let Some(&j) = first_of.get(&(m.sender_id.as_str(), m.client_id.as_str())) {
                results.push(match &results[j] {
                    Ok(o) => Ok(SendOutcome {
                        message: o.message.clone(),
                        created: false,
                    }),
                    Err(e) => {
                        let (code, msg) = e.public();
                        Err(Error::new(code, msg))
                    }
                });
                continue;
            }
            first_of.insert((m.sender_id.as_str(), m.client_id.as_str()), i);
            let (decision, last_seq) = match decide(&tx, &keys, m, &mut groups) {
                Ok(d) => d,
                Err(e @ Error::Internal(_)) => return Err(e),
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let Accepted {
                members,
                media,
                mentions,
            } = match decision {
                Decision::Existing(message) => {
                    results.push(Ok(SendOutcome {
                        message: *message,
                        created: false,
                    }));
                    continue;
                }
                Decision::Write(accepted) => accepted,
            };
            let seq = seqs.entry(m.conversation_id.as_str()).or_insert(last_seq);
            *seq += 1;
            let message = m.committed(*seq, &media, mentions, created_at.clone());
            let (pos, payload) = write(&tx, &keys, &message, &media, now)?;
            events.push(Durable {
                pos,
                kind: EventKind::Message,
                conversation_id: Some(message.conversation_id.clone()),
                user_id: None,
                seq: Some(message.seq),
                recipients: members,
                json: with_pos(&payload, pos).into(),
            });
            results.push(Ok(SendOutcome {
                message,
                created: true,
            }));
        }
        tx.commit().map_err(db)?;
        self.unindexed += events.len() as u64;
        // Committed and durable: now (and only now) the world may see it.
        self.parts.sink.publish(events);
        Ok(results)
    }
}

impl BlockingWriter for SqliteWriter {
    fn commit(&mut self, batch: &[NewMessage]) -> Vec<Result<SendOutcome>> {
        SqliteWriter::commit(self, batch)
    }

    fn background_due(&self) -> Option<bool> {
        if self.unindexed == 0
            || crate::failpoints::hit("search-index-off")
            || self
                .index_retry_at
                .is_some_and(|at| std::time::Instant::now() < at)
        {
            return None;
        }
        Some(self.unindexed >= INDEX_URGENT)
    }

    fn background(&mut self) {
        let chunk = if self.unindexed >= INDEX_URGENT {
            INDEX_URGENT_CHUNK
        } else {
            INDEX_CHUNK
        };
        let started = std::time::Instant::now();
        let pass = self.index_pass(chunk);
        tracing::debug!(
            us = started.elapsed().as_micros() as u64,
            chunk,
            "search index pass"
        );
        match pass {
            // A short pass reached the end.
            Ok(n) if (n as i64) < chunk => self.unindexed = 0,
            Ok(n) => self.unindexed = self.unindexed.saturating_sub(n as u64).max(1),
            Err(e) => {
                tracing::warn!(error = %e, "search indexing failed; retrying in 5 s");
                self.index_retry_at =
                    Some(std::time::Instant::now() + std::time::Duration::from_secs(5));
            }
        }
    }
}

/// Internal errors are logged and answered as a generic failure.
fn public(e: Error) -> Error {
    if let Error::Internal(inner) = &e {
        tracing::error!(error = %format!("{inner:#}"), "message send failed");
    }
    let (code, msg) = e.public();
    Error::new(code, msg)
}

/// Gathers the facts of one send with this connection's queries and leaves the decision to
/// `send_rules::decide` (the same rules as the general path's `check_send`): the `client_id`
/// first (a retry gets its original message even if the sender lost the right to post since),
/// then membership, blocks, friendship, the reply, the attachments and the mentions. Returns
/// the decision and the conversation's `last_seq` before this batch.
fn decide<'a>(
    tx: &rusqlite::Transaction<'_>,
    keys: &Keyring,
    m: &'a NewMessage,
    groups: &mut HashMap<&'a str, Arc<[String]>>,
) -> Result<(Decision, i64)> {
    let conv = m.conversation_id.as_str();
    let row: SendCheckRow = tx
        .prepare_cached(check_sql())
        .map_err(db)?
        .query_row(params![conv, m.sender_id.as_str(), m.client_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .map_err(db)?;
    if let Some(id) = &row.0 {
        let message = load_message(tx, keys, id)?;
        if message.conversation_id != conv {
            return Err(Error::conflict(
                "client_id was already used for another conversation",
            ));
        }
        return Ok((Decision::Existing(Box::new(message)), 0));
    }
    let last_seq = row.7.unwrap_or(0);
    let conversation = conversation_facts(m.sender_id.as_str(), &row, || {
        if let Some(list) = groups.get(conv) {
            return Ok(list.clone());
        }
        let list: Arc<[String]> = tx
            .prepare_cached("SELECT user_id FROM members WHERE conversation_id = ?1")
            .map_err(db)?
            .query_map([conv], |r| r.get::<_, String>(0))
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(db)?
            .into();
        groups.insert(conv, list.clone());
        Ok(list)
    })?;
    let mut facts = SendFacts {
        conversation,
        ..SendFacts::default()
    };
    if facts.conversation.is_some() {
        if let Some(r) = m.reply_to_seq {
            let found: Option<i64> = tx
                .prepare_cached("SELECT 1 FROM messages WHERE conversation_id = ?1 AND seq = ?2")
                .map_err(db)?
                .query_row(params![conv, r], |r| r.get(0))
                .optional()
                .map_err(db)?;
            facts.reply_found = Some(found.is_some());
        }
        for id in &m.attachment_ids {
            let sql = format!("SELECT {MEDIA_COLS} FROM media WHERE id = ?1 AND owner_id = ?2");
            let rec = tx
                .prepare_cached(&sql)
                .map_err(db)?
                .query_row(params![id, m.sender_id.as_str()], media_row)
                .optional()
                .map_err(db)?;
            facts.attachments.push(match rec {
                Some(mut rec) => {
                    rec.name = keys.decrypt(column::MEDIA_NAME, &rec.name)?;
                    Some(rec)
                }
                None => None,
            });
        }
        if m.body.contains('@') {
            for name in send_rules::mentioned_names(&m.body) {
                let id: Option<String> = tx
                    .prepare_cached(member_by_name_sql())
                    .map_err(db)?
                    .query_row(params![conv, name], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                if let Some(id) = id {
                    facts.named_members.push((name, id));
                }
            }
        }
    }
    Ok((Decision::Write(send_rules::decide(m, facts)?), last_seq))
}

/// `{"type":…}` → `{"stream_pos":N,"type":…}` without reparsing.
fn with_pos(payload: &str, pos: i64) -> String {
    format!("{{\"stream_pos\":{pos},{}", payload.get(1..).unwrap_or("}"))
}

/// Writes one message: the row, its attachments, the sender's read marker, the
/// conversation's `last_seq`, and its event. Returns the event's stream position and the
/// frame's JSON (without the position).
fn write(
    tx: &rusqlite::Transaction<'_>,
    keys: &Keyring,
    m: &p::Message,
    media: &[MediaRecord],
    now: i64,
) -> Result<(i64, String)> {
    // The event refers to the message row (empty payload; see migration 0007), and the row
    // keeps the event's position (migration 0008): the event first.
    let pos: i64 = tx
        .prepare_cached(
            "INSERT INTO events (conversation_id, user_id, payload, created_at, seq) VALUES (?1, NULL, '', ?2, ?3) RETURNING pos",
        )
        .map_err(db)?
        .query_row(params![m.conversation_id, now, m.seq], |r| r.get(0))
        .map_err(db)?;
    let (webhook_id, webhook_name) = match &m.via_webhook {
        Some(h) => (Some(h.id.as_str()), Some(h.name.as_str())),
        None => (None, None),
    };
    tx.prepare_cached(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, kind, body, reply_to_seq, created_at, pos, mentions, webhook_id, webhook_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .map_err(db)?
    .execute(params![
        m.id,
        m.conversation_id,
        m.seq,
        m.sender_id,
        m.client_id,
        m.kind.as_str(),
        keys.encrypt(column::MESSAGE_BODY, &m.body),
        m.reply_to_seq,
        now,
        pos,
        mentions_column(&m.mentions),
        webhook_id,
        webhook_name
    ])
    .map_err(db)?;
    for u in &m.mentions {
        tx.prepare_cached(
            "INSERT INTO mentions (user_id, conversation_id, seq) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )
        .map_err(db)?
        .execute(params![u, m.conversation_id, m.seq])
        .map_err(db)?;
    }
    for (i, md) in media.iter().enumerate() {
        tx.prepare_cached(
            "INSERT INTO message_media (message_id, media_id, conversation_id, position) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db)?
        .execute(params![m.id, md.id, m.conversation_id, i as i64])
        .map_err(db)?;
        tx.prepare_cached("UPDATE media SET attached_at = COALESCE(attached_at, ?2) WHERE id = ?1")
            .map_err(db)?
            .execute(params![md.id, now])
            .map_err(db)?;
    }
    // Whoever writes has read everything up to their own message (a webhook's post is not
    // its creator's writing: it stays unread for them like for everyone).
    if m.via_webhook.is_none() {
        tx.prepare_cached(
            "UPDATE members SET last_read_seq = ?3 WHERE conversation_id = ?1 AND user_id = ?2 AND last_read_seq < ?3",
        )
        .map_err(db)?
        .execute(params![m.conversation_id, m.sender_id, m.seq])
        .map_err(db)?;
    }
    tx.prepare_cached(
        "UPDATE conversations SET last_seq = MAX(last_seq, ?2), last_activity_at = ?3 WHERE id = ?1",
    )
    .map_err(db)?
    .execute(params![m.conversation_id, m.seq, now])
    .map_err(db)?;
    let frame = ServerFrame::Message {
        message: m.clone(),
        stream_pos: None,
    };
    let payload = serde_json::to_string(&frame).map_err(|e| Error::Internal(e.into()))?;
    Ok((pos, payload))
}

/// A stored message as the wire shows it, attachments included.
fn load_message(tx: &rusqlite::Transaction<'_>, keys: &Keyring, id: &str) -> Result<p::Message> {
    let sql = format!("SELECT {MSG_COLS} FROM messages WHERE id = ?1");
    let mut m = tx
        .prepare_cached(&sql)
        .map_err(db)?
        .query_row([id], |r| {
            let deleted: bool = r.get(10)?;
            let body: String = r.get(6)?;
            let kind: String = r.get(5)?;
            let mentions: Option<String> = r.get(11)?;
            let webhook: (Option<String>, Option<String>) = (r.get(12)?, r.get(13)?);
            Ok((
                p::Message {
                    id: r.get(0)?,
                    conversation_id: r.get(1)?,
                    seq: r.get(2)?,
                    sender_id: r.get(3)?,
                    client_id: r.get(4)?,
                    kind: p::MessageKind::parse(&kind).unwrap_or(p::MessageKind::Text),
                    body: String::new(),
                    attachments: Vec::new(),
                    reply_to_seq: r.get(7)?,
                    created_at: rfc3339(r.get(8)?),
                    edited_at: r.get::<_, Option<i64>>(9)?.map(rfc3339),
                    deleted,
                    reactions: Vec::new(),
                    mentions: if deleted {
                        Vec::new()
                    } else {
                        parse_mentions(mentions.as_deref())
                    },
                    via_webhook: match webhook {
                        (Some(id), Some(name)) => Some(p::WebhookRef { id, name }),
                        _ => None,
                    },
                },
                body,
            ))
        })
        .map_err(db)?;
    if !m.0.deleted {
        m.0.body = keys.decrypt(column::MESSAGE_BODY, &m.1)?;
        if matches!(
            m.0.kind,
            p::MessageKind::Image
                | p::MessageKind::File
                | p::MessageKind::Video
                | p::MessageKind::Audio
        ) {
            let sql = format!(
                "SELECT {} FROM message_media mm JOIN media md ON md.id = mm.media_id WHERE mm.message_id = ?1 ORDER BY mm.position",
                MEDIA_COLS
                    .split(", ")
                    .map(|c| format!("md.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let rows = tx
                .prepare_cached(&sql)
                .map_err(db)?
                .query_map([id], media_row)
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<MediaRecord>>>()
                .map_err(db)?;
            for mut r in rows {
                r.name = keys.decrypt(column::MEDIA_NAME, &r.name)?;
                m.0.attachments.push(r.to_protocol());
            }
        }
    }
    Ok(m.0)
}
