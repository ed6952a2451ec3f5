//! Reactions: one row per (message, emoji, user), the durable `reaction` event, and the
//! `reactions` of the message views answered to a caller (`fill_reactions`).
//!
//! Putting a reaction that is there already, or taking back one that is not, changes nothing
//! and writes no event (the REST calls are idempotent). The emoji arrives checked
//! (`domain::emoji`).

use async_trait::async_trait;
use chatnode_protocol::{self as p, ErrorCode, ServerFrame};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, Conn, SqlStore};
use crate::domain::{ConversationId, UserId};
use crate::error::{Error, Result};
use crate::store::Reactions;

/// Different emoji one user may put on one message.
pub const MAX_REACTIONS_PER_USER: i64 = 20;

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
    /// Sets the `reactions` of messages as `viewer` sees them (`me` false for everyone when
    /// there is no viewer: a frame sent to many). One query per conversation among them.
    pub(super) async fn fill_reactions(
        c: &mut Conn<B>,
        viewer: Option<&str>,
        messages: &mut [p::Message],
    ) -> Result<()> {
        let mut convs: Vec<&str> = Vec::new();
        for m in messages.iter() {
            if !convs.contains(&m.conversation_id.as_str()) {
                convs.push(m.conversation_id.as_str());
            }
        }
        let mut rows: Vec<(String, i64, String, i64, i64, i64)> = Vec::new();
        for conv in convs {
            let in_conv = messages.iter().filter(|m| m.conversation_id == conv);
            let (lo, hi) = in_conv.fold((i64::MAX, i64::MIN), |(lo, hi), m| {
                (lo.min(m.seq), hi.max(m.seq))
            });
            let part: Vec<(String, i64, String, i64, i64, i64)> = sqlx::query_as(
                "SELECT conversation_id, seq, emoji, COUNT(*), MIN(pos),
                        CAST(SUM(CASE WHEN user_id = $4 THEN 1 ELSE 0 END) AS BIGINT)
                 FROM reactions WHERE conversation_id = $1 AND seq >= $2 AND seq <= $3
                 GROUP BY conversation_id, seq, emoji",
            )
            .bind(conv)
            .bind(lo)
            .bind(hi)
            .bind(viewer.unwrap_or(""))
            .fetch_all(&mut *c)
            .await?;
            rows.extend(part);
        }
        // Ordered by the first time each emoji was used on the message.
        rows.sort_by_key(|r| r.4);
        for m in messages.iter_mut() {
            m.reactions = rows
                .iter()
                .filter(|r| r.1 == m.seq && r.0 == m.conversation_id)
                .map(|r| p::Reaction {
                    emoji: r.2.clone(),
                    count: r.3,
                    me: r.5 > 0,
                })
                .collect();
        }
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> Reactions for SqlStore<B>
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
    async fn set_reaction(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
        emoji: &str,
        on: bool,
    ) -> Result<()> {
        let user = user_id.as_str();
        let conv = conversation_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<()> = async {
            if Self::role_of(w.conn(), conv, user).await?.is_none() {
                return Err(Error::not_found("conversation"));
            }
            let row = Self::message_by_seq(w.conn(), conv, seq)
                .await?
                .ok_or_else(|| Error::not_found("message"))?;
            if row.deleted || row.kind == "system" {
                return Err(Error::bad_request(
                    "deleted and system messages take no reactions",
                ));
            }
            let mine: Vec<String> = sqlx::query_scalar(
                "SELECT emoji FROM reactions WHERE conversation_id = $1 AND seq = $2 AND user_id = $3",
            )
            .bind(conv)
            .bind(seq)
            .bind(user)
            .fetch_all(w.conn())
            .await?;
            let has = mine.iter().any(|e| e == emoji);
            if has == on {
                return Ok(());
            }
            if on && mine.len() as i64 >= MAX_REACTIONS_PER_USER {
                return Err(Error::new(
                    ErrorCode::TooManyReactions,
                    format!("at most {MAX_REACTIONS_PER_USER} different reactions per message"),
                ));
            }
            let frame = ServerFrame::Reaction {
                conversation_id: conv.to_owned(),
                seq,
                user_id: user.to_owned(),
                emoji: emoji.to_owned(),
                added: on,
                stream_pos: None,
            };
            let pos = w.emit_conv(conv, &frame).await?;
            if on {
                sqlx::query(
                    "INSERT INTO reactions (conversation_id, seq, emoji, user_id, pos) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(conv)
                .bind(seq)
                .bind(emoji)
                .bind(user)
                .bind(pos)
                .execute(w.conn())
                .await?;
            } else {
                sqlx::query(
                    "DELETE FROM reactions WHERE conversation_id = $1 AND seq = $2 AND emoji = $3 AND user_id = $4",
                )
                .bind(conv)
                .bind(seq)
                .bind(emoji)
                .bind(user)
                .execute(w.conn())
                .await?;
            }
            Ok(())
        }
        .await;
        w.finish(out).await
    }

    async fn reactors(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
    ) -> Result<Vec<(String, Vec<p::User>)>> {
        let user = user_id.as_str();
        let conv = conversation_id.as_str();
        let mut c = self.read.acquire().await?;
        if Self::role_of(&mut c, conv, user).await?.is_none() {
            return Err(Error::not_found("conversation"));
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT emoji, user_id FROM reactions WHERE conversation_id = $1 AND seq = $2 ORDER BY pos",
        )
        .bind(conv)
        .bind(seq)
        .fetch_all(&mut *c)
        .await?;
        let mut out: Vec<(String, Vec<p::User>)> = Vec::new();
        for (emoji, who) in rows {
            let u = self.public_user(&mut c, user, &who).await?;
            match out.iter_mut().find(|(e, _)| *e == emoji) {
                Some((_, list)) => list.push(u),
                None => out.push((emoji, vec![u])),
            }
        }
        Ok(out)
    }
}
