//! The durable event stream: writing an event inside a write transaction (`WriteTx::emit`;
//! its stream position comes at the commit, see `WriteTx::finish`) and reading the stream
//! back: a user's events since a position (`sync`), and every event after a position (a
//! cluster node filling a gap in live delivery). Payloads are sealed like message bodies; a message's
//! event has none and refers to its row (conversation, seq), which a replay shows as the
//! message was sent (its first body, kept by its first edit), or as deleted.
//!
//! Nothing here publishes: an event reaches the sink only through `WriteTx::finish`, after
//! its transaction committed. Recipients on replay are today's members who had joined before
//! the event (`joined_pos`), the same rule for `sync` and for the cluster.

use async_trait::async_trait;
use chatnode_protocol::ServerFrame;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use std::sync::LazyLock;

use sqlx::FromRow;

use super::messages::{MESSAGE_COLUMNS, MsgRow};
use super::{Backend, Conn, SqlStore, WriteTx};
use crate::crypto::column;
use crate::domain::UserId;
use crate::error::{Error, Result};
use crate::events::{Durable, EventKind};
use crate::store::{EventLog, StoredEvent};
use crate::time::now_ms;

/// `{"type":…}` → `{"stream_pos":N,"type":…}` without reparsing.
pub(crate) fn with_pos(payload: &str, pos: i64) -> String {
    format!("{{\"stream_pos\":{pos},{}", payload.get(1..).unwrap_or("}"))
}

/// A stored event and, when it refers to a message (empty payload), that message's row.
#[derive(FromRow)]
struct EventRow {
    pos: i64,
    payload: String,
    /// The event's own `seq` column (set for message events, also before migration 0007).
    event_seq: Option<i64>,
    /// The message's body as sent, if it was edited since (sealed).
    original_body: Option<String>,
    /// Whom the event is addressed to (selected by `events_after` only).
    #[sqlx(default)]
    event_conversation: Option<String>,
    #[sqlx(default)]
    event_user: Option<String>,
    #[sqlx(flatten)]
    message: OptMsgRow,
}

/// [`MsgRow`]'s columns from a LEFT JOIN: all absent when the event is not a message's.
#[derive(FromRow)]
struct OptMsgRow {
    id: Option<String>,
    conversation_id: Option<String>,
    seq: Option<i64>,
    sender_id: Option<String>,
    client_id: Option<String>,
    kind: Option<String>,
    body: Option<String>,
    reply_to_seq: Option<i64>,
    created_at: Option<i64>,
    edited_at: Option<i64>,
    deleted: Option<bool>,
    mentions: Option<String>,
    webhook_id: Option<String>,
    webhook_name: Option<String>,
}

impl OptMsgRow {
    fn into_row(self) -> Option<MsgRow> {
        Some(MsgRow {
            id: self.id?,
            conversation_id: self.conversation_id?,
            seq: self.seq?,
            sender_id: self.sender_id?,
            client_id: self.client_id?,
            kind: self.kind?,
            body: self.body?,
            reply_to_seq: self.reply_to_seq,
            created_at: self.created_at?,
            edited_at: self.edited_at,
            deleted: self.deleted?,
            mentions: self.mentions,
            webhook_id: self.webhook_id,
            webhook_name: self.webhook_name,
        })
    }
}

impl<B: Backend> WriteTx<'_, B>
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
    /// Writes a durable event for `recipients` (addressed to a conversation or to one user)
    /// and keeps it for publishing after the commit; returns its `pos` (the order it was
    /// written in; its stream position is given at the commit, see `WriteTx::finish`).
    pub(super) async fn emit(
        &mut self,
        conversation: Option<&str>,
        user: Option<&str>,
        frame: &ServerFrame,
        recipients: Vec<String>,
    ) -> Result<i64> {
        let payload = serde_json::to_string(frame).map_err(|e| Error::Internal(e.into()))?;
        // Stored too, so a cluster node can fetch a conversation's message events by `seq`.
        let seq = match frame {
            ServerFrame::Message { message, .. } => Some(message.seq),
            _ => None,
        };
        // A message's event refers to its row (empty payload, see migration 0007); other
        // events carry their frame, sealed.
        let sealed = match seq {
            Some(_) => String::new(),
            None => self.seal(column::EVENT_PAYLOAD, &payload),
        };
        let pos: i64 = sqlx::query_scalar(
            "INSERT INTO events (conversation_id, user_id, payload, created_at, seq) VALUES ($1, $2, $3, $4, $5) RETURNING pos",
        )
        .bind(conversation)
        .bind(user)
        .bind(&sealed)
        .bind(now_ms())
        .bind(seq)
        .fetch_one(self.conn())
        .await?;
        let kind = EventKind::of(frame)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("{frame:?} is not a durable event")))?;
        self.push_event(Durable {
            pos,
            kind,
            conversation_id: conversation.map(str::to_owned),
            user_id: user.map(str::to_owned),
            seq,
            recipients: recipients.into(),
            // `stream_pos` is spliced in once it is known (`WriteTx::finish`).
            json: payload.into(),
        });
        Ok(pos)
    }

    /// An event for every current member of a conversation.
    pub(super) async fn emit_conv(&mut self, conv: &str, frame: &ServerFrame) -> Result<i64> {
        let members = SqlStore::<B>::member_ids(self.conn(), conv).await?;
        self.emit(Some(conv), None, frame, members).await
    }

    /// An event for one user (all their devices).
    pub(super) async fn emit_user(&mut self, user: &str, frame: &ServerFrame) -> Result<i64> {
        self.emit(None, Some(user), frame, vec![user.to_owned()])
            .await
    }
}

/// The statement for the backend's stream column (`Backend::STREAM`): a static cannot be
/// generic, so each statement is made once for each column.
fn per_backend<B: Backend>(by_pos: &'static str, by_stream_pos: &'static str) -> &'static str {
    match B::STREAM {
        "stream_pos" => by_stream_pos,
        _ => by_pos,
    }
}

#[async_trait]
impl<B: Backend> EventLog for SqlStore<B>
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
    async fn stream_head(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(B::STREAM_HEAD_SQL)
            .fetch_one(&self.read)
            .await?)
    }

    async fn events_since(
        &self,
        user_id: &UserId,
        since: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        fn sql(s: &str) -> String {
            format!(
                "SELECT e.{s} AS pos, e.payload, e.seq AS event_seq, m.original_body, {MESSAGE_COLUMNS}
                 FROM events e LEFT JOIN messages m
                     ON e.payload = '' AND m.conversation_id = e.conversation_id AND m.seq = e.seq
                 WHERE e.{s} > $1 AND (
                     e.user_id = $2
                     OR EXISTS (SELECT 1 FROM members x
                                WHERE x.conversation_id = e.conversation_id AND x.user_id = $2 AND x.joined_pos < e.{s}))
                 ORDER BY e.{s} LIMIT $3"
            )
        }
        static BY_POS: LazyLock<String> = LazyLock::new(|| sql("pos"));
        static BY_STREAM_POS: LazyLock<String> = LazyLock::new(|| sql("stream_pos"));
        let q = per_backend::<B>(&BY_POS, &BY_STREAM_POS);
        let mut c = self.read.acquire().await?;
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(q))
            .bind(since)
            .bind(user_id.as_str())
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (pos, json) = self.event_json(&mut c, row).await?;
            if let Some(json) = json {
                out.push(StoredEvent { pos, json });
            }
        }
        Ok(out)
    }

    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Durable>> {
        fn sql(s: &str) -> String {
            format!(
                "SELECT e.{s} AS pos, e.payload, e.seq AS event_seq, e.conversation_id AS event_conversation,
                        e.user_id AS event_user, m.original_body, {MESSAGE_COLUMNS}
                 FROM events e LEFT JOIN messages m
                     ON e.payload = '' AND m.conversation_id = e.conversation_id AND m.seq = e.seq
                 WHERE e.{s} > $1 ORDER BY e.{s} LIMIT $2"
            )
        }
        static BY_POS: LazyLock<String> = LazyLock::new(|| sql("pos"));
        static BY_STREAM_POS: LazyLock<String> = LazyLock::new(|| sql("stream_pos"));
        let q = per_backend::<B>(&BY_POS, &BY_STREAM_POS);
        let mut c = self.read.acquire().await?;
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(q))
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?;
        // Recipients as `sync` sees them: today's members who had joined before the event.
        let mut members: std::collections::HashMap<String, Vec<(String, i64)>> =
            std::collections::HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (conversation_id, user_id, seq) = (
                row.event_conversation.clone(),
                row.event_user.clone(),
                row.event_seq,
            );
            let message = row.payload.is_empty();
            let (pos, json) = self.event_json(&mut c, row).await?;
            let Some(json) = json else { continue };
            let kind = if message {
                EventKind::Message
            } else {
                let ty = serde_json::from_str::<serde_json::Value>(&json)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                match EventKind::parse(&ty) {
                    Some(k) => k,
                    None => continue,
                }
            };
            let recipients: Vec<String> = match (&conversation_id, &user_id) {
                (Some(conv), _) => {
                    if !members.contains_key(conv) {
                        let list: Vec<(String, i64)> = sqlx::query_as(
                            "SELECT user_id, joined_pos FROM members WHERE conversation_id = $1",
                        )
                        .bind(conv)
                        .fetch_all(&mut *c)
                        .await?;
                        members.insert(conv.clone(), list);
                    }
                    members[conv]
                        .iter()
                        .filter(|(_, joined)| *joined < pos)
                        .map(|(u, _)| u.clone())
                        .collect()
                }
                (None, Some(u)) => vec![u.clone()],
                (None, None) => Vec::new(),
            };
            out.push(Durable {
                pos,
                kind,
                conversation_id,
                user_id,
                seq: if message { seq } else { None },
                recipients: recipients.into(),
                json: json.into(),
            });
        }
        Ok(out)
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
    /// A stored event's frame JSON with its position: the sealed payload opened, or, for a
    /// message's event, the message as it was sent (its edits follow as `message.updated`
    /// events) or, if it was deleted for everyone since, as deleted: its text is gone.
    /// `None` for a message event whose row is gone (skipped rather than failing a replay).
    async fn event_json(&self, c: &mut Conn<B>, row: EventRow) -> Result<(i64, Option<String>)> {
        if !row.payload.is_empty() {
            let payload = self.keys.decrypt(column::EVENT_PAYLOAD, &row.payload)?;
            return Ok((row.pos, Some(with_pos(&payload, row.pos))));
        }
        let Some(mut m) = row.message.into_row() else {
            return Ok((row.pos, None));
        };
        if !m.deleted {
            if let Some(original) = row.original_body {
                m.body = original;
            }
            m.edited_at = None;
        }
        let message = self.message_view(c, m).await?;
        let frame = ServerFrame::Message {
            message,
            stream_pos: None,
        };
        let payload = serde_json::to_string(&frame).map_err(|e| Error::Internal(e.into()))?;
        Ok((row.pos, Some(with_pos(&payload, row.pos))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_pos_is_spliced_into_stored_json() {
        let s = with_pos(r#"{"type":"read","seq":3}"#, 42);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["stream_pos"], 42);
        assert_eq!(v["type"], "read");
    }
}
