//! The durable event stream: writing an event inside a write transaction (`WriteTx::emit`,
//! with its position from the `events` table) and reading the stream back: a user's events
//! since a position (`sync`), and a conversation's message events by `seq` (a cluster node
//! filling a gap in live delivery). Payloads are sealed like message bodies.
//!
//! Nothing here publishes: an event reaches the sink only through `WriteTx::finish`, after
//! its transaction committed. Recipients on replay are today's members who had joined before
//! the event (`joined_pos`), the same rule for `sync` and for the cluster.

use async_trait::async_trait;
use chatnode_protocol::ServerFrame;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, Conn, SqlStore, WriteTx};
use crate::crypto::column;
use crate::domain::{ConversationId, UserId};
use crate::error::{Error, Result};
use crate::events::{Durable, EventKind};
use crate::store::{EventLog, StoredEvent};
use crate::time::now_ms;

/// `{"type":…}` → `{"stream_pos":N,"type":…}` without reparsing.
pub(in crate::store) fn with_pos(payload: &str, pos: i64) -> String {
    format!("{{\"stream_pos\":{pos},{}", payload.get(1..).unwrap_or("}"))
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
    /// and keeps it for publishing after the commit; returns its stream position.
    pub(super) async fn emit(
        &mut self,
        conversation: Option<&str>,
        user: Option<&str>,
        frame: &ServerFrame,
        recipients: Vec<String>,
    ) -> Result<i64> {
        let payload = serde_json::to_string(frame).map_err(|e| Error::Internal(e.into()))?;
        let sealed = self.seal(column::EVENT_PAYLOAD, &payload);
        // Stored too, so a cluster node can fetch a conversation's message events by `seq`.
        let seq = match frame {
            ServerFrame::Message { message, .. } => Some(message.seq),
            _ => None,
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
            json: with_pos(&payload, pos).into(),
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
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(pos), 0) FROM events")
                .fetch_one(&self.read)
                .await?,
        )
    }

    async fn events_since(
        &self,
        user_id: &UserId,
        since: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
        let user_id = user_id.as_str();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT e.pos, e.payload FROM events e
             WHERE e.pos > $1 AND (
                 e.user_id = $2
                 OR EXISTS (SELECT 1 FROM members m
                            WHERE m.conversation_id = e.conversation_id AND m.user_id = $2 AND m.joined_pos < e.pos))
             ORDER BY e.pos LIMIT $3",
        )
        .bind(since)
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(pos, payload)| {
                let payload = self.keys.decrypt(column::EVENT_PAYLOAD, &payload)?;
                Ok(StoredEvent {
                    pos,
                    json: with_pos(&payload, pos),
                })
            })
            .collect()
    }

    async fn message_events(
        &self,
        conversation_id: &ConversationId,
        after_seq: i64,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Durable>> {
        let conversation_id = conversation_id.as_str();
        let mut c = self.read.acquire().await?;
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT pos, payload, seq FROM events
             WHERE conversation_id = $1 AND seq > $2 AND seq < $3
             ORDER BY seq LIMIT $4",
        )
        .bind(conversation_id)
        .bind(after_seq)
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // Recipients as `sync` sees them: today's members who had joined before the event.
        let members: Vec<(String, i64)> =
            sqlx::query_as("SELECT user_id, joined_pos FROM members WHERE conversation_id = $1")
                .bind(conversation_id)
                .fetch_all(&mut *c)
                .await?;
        rows.into_iter()
            .map(|(pos, payload, seq)| {
                let payload = self.keys.decrypt(column::EVENT_PAYLOAD, &payload)?;
                Ok(Durable {
                    pos,
                    kind: EventKind::Message,
                    conversation_id: Some(conversation_id.to_owned()),
                    user_id: None,
                    seq: Some(seq),
                    recipients: members
                        .iter()
                        .filter(|(_, joined)| *joined < pos)
                        .map(|(u, _)| u.clone())
                        .collect(),
                    json: with_pos(&payload, pos).into(),
                })
            })
            .collect()
    }

    async fn conversation_heads(&self, user_id: &UserId) -> Result<Vec<(ConversationId, i64)>> {
        let heads: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c.id, c.last_seq FROM conversations c
             JOIN members m ON m.conversation_id = c.id WHERE m.user_id = $1",
        )
        .bind(user_id.as_str())
        .fetch_all(&self.read)
        .await?;
        Ok(heads
            .into_iter()
            .map(|(id, last)| (ConversationId::trusted(id), last))
            .collect())
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
