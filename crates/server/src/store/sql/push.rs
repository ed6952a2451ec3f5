//! Web Push: subscriptions (a bounded number per user, one per endpoint), per-conversation
//! mutes, and the context the notifier needs to decide on and word the pushes for one
//! message. Sending pushes is `crate::push`'s, not this module's.

use async_trait::async_trait;
use chatnode_protocol as p;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, Conn, SqlStore};
use crate::crypto::column;
use crate::domain::{ConversationId, UserId};
use crate::error::{Error, Result};
use crate::store::send_rules::parse_mentions;
use crate::store::{MAX_PUSH_SUBSCRIPTIONS, PushContext, PushRecipient, PushStore, PushTarget};
use crate::time::{new_id, now_ms, rfc3339};

#[async_trait]
impl<B: Backend> PushStore for SqlStore<B>
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
    async fn add_push_subscription(
        &self,
        user_id: &UserId,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<p::PushSubscription> {
        let user_id = user_id.as_str();
        let mut c = self.write.begin().await?;
        // Ordered with other nodes' writes, so two subscribes at once cannot both keep an
        // eleventh subscription.
        B::lock_writes(&mut c).await?;
        let id = new_id();
        let now = now_ms();
        // One subscription per endpoint: a browser re-subscribing (or another account logging
        // in on that browser) takes the endpoint over, and counts once, as the newest.
        sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
            .bind(endpoint)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(endpoint)
        .bind(p256dh)
        .bind(auth)
        .bind(now)
        .execute(&mut *c)
        .await?;
        // Keep the newest few; UUIDv7 ids break ties within a millisecond in creation order.
        sqlx::query(
            "DELETE FROM push_subscriptions WHERE user_id = $1 AND id NOT IN
               (SELECT id FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
        )
        .bind(user_id)
        .bind(MAX_PUSH_SUBSCRIPTIONS)
        .execute(&mut *c)
        .await?;
        c.commit().await?;
        Ok(p::PushSubscription {
            id,
            endpoint: endpoint.to_owned(),
            created_at: rfc3339(now),
        })
    }

    async fn remove_push_subscription(&self, user_id: &UserId, endpoint: &str) -> Result<bool> {
        let user_id = user_id.as_str();
        let mut c = self.write.acquire().await?;
        let r = sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
            .bind(user_id)
            .bind(endpoint)
            .execute(&mut *c)
            .await?;
        Ok(B::rows_affected(&r) > 0)
    }

    async fn push_subscriptions(&self, user_id: &UserId) -> Result<Vec<p::PushSubscription>> {
        let user_id = user_id.as_str();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, endpoint, created_at FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, endpoint, at)| p::PushSubscription {
                id,
                endpoint,
                created_at: rfc3339(at),
            })
            .collect())
    }

    async fn push_targets(&self, user_id: &UserId) -> Result<Vec<PushTarget>> {
        let user_id = user_id.as_str();
        Ok(sqlx::query_as::<_, PushTarget>(
            "SELECT user_id, endpoint, p256dh, auth FROM push_subscriptions WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn drop_push_endpoint(&self, endpoint: &str) -> Result<()> {
        let mut c = self.write.acquire().await?;
        sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
            .bind(endpoint)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn any_push_subscriptions(&self) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM push_subscriptions LIMIT 1) x")
                .fetch_one(&self.read)
                .await?;
        Ok(n > 0)
    }

    async fn set_mute(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        until: Option<i64>,
        mentions: bool,
    ) -> Result<p::MuteState> {
        let user_id = user_id.as_str();
        let conversation_id = conversation_id.as_str();
        let mut c = self.write.acquire().await?;
        let r = sqlx::query(
            "UPDATE members SET muted_until = $3, mute_mentions = $4 WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(until)
        .bind(until.is_some() && !mentions)
        .execute(&mut *c)
        .await?;
        if B::rows_affected(&r) == 0 {
            return Err(Error::not_found("conversation"));
        }
        Ok(p::MuteState {
            conversation_id: conversation_id.to_owned(),
            muted_until: until.map(rfc3339),
            mentions: until.is_none() || mentions,
        })
    }

    async fn push_context(
        &self,
        conversation_id: &ConversationId,
        seq: i64,
    ) -> Result<Option<PushContext>> {
        let conversation_id = conversation_id.as_str();
        let mut c = self.read.acquire().await?;
        let Some(msg) = Self::message_by_seq(&mut c, conversation_id, seq).await? else {
            return Ok(None);
        };
        let (kind, name): (String, Option<String>) =
            sqlx::query_as("SELECT kind, name FROM conversations WHERE id = $1")
                .bind(conversation_id)
                .fetch_one(&mut *c)
                .await?;
        let sender_name = Self::display_name(&mut c, &msg.sender_id).await?;
        let rows: Vec<(String, i64, Option<i64>, bool, bool, String, String, String)> = sqlx::query_as(
            "SELECT m.user_id, m.last_read_seq, m.muted_until, m.mute_mentions, u.notification_previews, s.endpoint, s.p256dh, s.auth
             FROM members m JOIN users u ON u.id = m.user_id JOIN push_subscriptions s ON s.user_id = m.user_id
             WHERE m.conversation_id = $1 AND m.user_id <> $2
             ORDER BY m.user_id",
        )
        .bind(conversation_id)
        .bind(&msg.sender_id)
        .fetch_all(&mut *c)
        .await?;
        let mut recipients: Vec<PushRecipient> = Vec::new();
        for (
            user_id,
            last_read_seq,
            muted_until,
            mute_mentions,
            previews,
            endpoint,
            p256dh,
            auth,
        ) in rows
        {
            let target = PushTarget {
                user_id: user_id.clone(),
                endpoint,
                p256dh,
                auth,
            };
            match recipients.last_mut() {
                Some(r) if r.user_id == user_id => r.targets.push(target),
                _ => recipients.push(PushRecipient {
                    user_id,
                    last_read_seq,
                    muted_until,
                    mute_mentions,
                    previews,
                    targets: vec![target],
                }),
            }
        }
        Ok(Some(PushContext {
            conversation_id: conversation_id.to_owned(),
            group_name: if kind == "group" { name } else { None },
            sender_id: msg.sender_id.clone(),
            sender_name,
            body: if msg.deleted {
                String::new()
            } else {
                self.keys.decrypt(column::MESSAGE_BODY, &msg.body)?
            },
            kind: p::MessageKind::parse(&msg.kind).unwrap_or(p::MessageKind::Text),
            deleted: msg.deleted,
            mentions: parse_mentions(msg.mentions.as_deref()),
            recipients,
        }))
    }
}
