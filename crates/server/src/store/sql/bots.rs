//! Bots and incoming webhooks: what other software posts through.
//!
//! A bot is a user with an owner (`users.bot_owner_id`) and no password. Its token is stored
//! as a SHA-256 in `bot_tokens`, tied to a login session of the bot's, so a rotated or deleted
//! token ends that session like a logout (the caller closes its sockets). What a bot may not
//! do (friends, owning groups, making bots) is refused where those things happen; a direct
//! chat with a bot needs no friendship (`social::live_bot`, `send_rules`).
//!
//! A webhook belongs to a conversation and its creator; it posts as the creator through the
//! ordinary send path, so it stops working as soon as the creator may no longer post there.

use std::sync::LazyLock;

use async_trait::async_trait;
use chatnode_protocol::{self as p, ErrorCode, ServerFrame};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::users::{USER_COLUMNS, UserRow};
use super::{Backend, Conn, SqlStore};
use crate::domain::{ConversationId, SessionId, UserId, Username};
use crate::error::{Error, Result};
use crate::store::{Bots, MAX_BOTS, WebhookRecord, Webhooks};
use crate::time::{new_id, now_ms, rfc3339};

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
    /// A new login session for a bot, and its token's hash.
    async fn bot_token_session(c: &mut Conn<B>, bot: &str, token_hash: &str) -> Result<()> {
        let session = new_id();
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(&session)
            .bind(bot)
            .bind(now)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "INSERT INTO bot_tokens (token_hash, bot_id, session_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(bot)
        .bind(&session)
        .bind(now)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    /// Ends every session of a bot's and forgets its tokens; returns the sessions.
    async fn end_bot_sessions(c: &mut Conn<B>, bot: &str) -> Result<Vec<SessionId>> {
        sqlx::query("DELETE FROM bot_tokens WHERE bot_id = $1")
            .bind(bot)
            .execute(&mut *c)
            .await?;
        let ended: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
        )
        .bind(bot)
        .bind(now_ms())
        .fetch_all(&mut *c)
        .await?;
        Ok(ended.into_iter().map(SessionId::trusted).collect())
    }

    /// The bot, if `owner` owns it and it was not deleted; else 404.
    async fn owned_bot(c: &mut Conn<B>, owner: &str, bot: &str) -> Result<()> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE id = $1 AND bot_owner_id = $2 AND username_key NOT LIKE 'deleted-%'",
        )
        .bind(bot)
        .bind(owner)
        .fetch_one(&mut *c)
        .await?;
        if n == 0 {
            return Err(Error::not_found("bot"));
        }
        Ok(())
    }

    /// Who may add or remove a conversation's webhooks: in a group its admins and owner, in
    /// a direct chat either member. Non-members: 404.
    async fn may_manage_webhooks(c: &mut Conn<B>, user: &str, conv: &str) -> Result<()> {
        let role = Self::role_of(c, conv, user)
            .await?
            .ok_or_else(|| Error::not_found("conversation"))?;
        let kind: String = sqlx::query_scalar("SELECT kind FROM conversations WHERE id = $1")
            .bind(conv)
            .fetch_one(&mut *c)
            .await?;
        if kind == "group" && role < p::Role::Admin {
            return Err(Error::forbidden(
                "only the group's admins and owner manage its webhooks",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> Bots for SqlStore<B>
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
    async fn create_bot(
        &self,
        owner: &UserId,
        username: &Username,
        display_name: &str,
        token_hash: &str,
    ) -> Result<p::User> {
        let owner = owner.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<p::User> = async {
            if Self::user_is_bot(w.conn(), owner).await? {
                return Err(Error::forbidden("a bot cannot make bots"));
            }
            let owned: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM users WHERE bot_owner_id = $1 AND username_key NOT LIKE 'deleted-%'",
            )
            .bind(owner)
            .fetch_one(w.conn())
            .await?;
            if owned >= MAX_BOTS {
                return Err(Error::conflict(format!(
                    "you have {MAX_BOTS} bots already; delete one first"
                )));
            }
            let taken: Option<String> =
                sqlx::query_scalar("SELECT id FROM users WHERE username_key = $1")
                    .bind(username.key())
                    .fetch_optional(w.conn())
                    .await?;
            if taken.is_some() {
                return Err(Error::new(ErrorCode::UsernameTaken, "this username is taken"));
            }
            let id = new_id();
            // No password: '!' is no argon2 hash, so a login can never match it.
            sqlx::query(
                "INSERT INTO users (id, username, username_key, display_name, display_key, password_hash, created_at, bot_owner_id)
                 VALUES ($1, $2, $3, $4, $5, '!', $6, $7)",
            )
            .bind(&id)
            .bind(username.as_str())
            .bind(username.key())
            .bind(display_name)
            .bind(display_name.to_lowercase())
            .bind(now_ms())
            .bind(owner)
            .execute(w.conn())
            .await?;
            Self::bot_token_session(w.conn(), &id, token_hash).await?;
            let row = Self::require_user(w.conn(), &id).await?;
            Ok(self.user_from_row(&row, false))
        }
        .await;
        w.finish(out).await
    }

    async fn bots(&self, owner: &UserId) -> Result<Vec<p::User>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.bot_owner_id = $1 AND u.username_key NOT LIKE 'deleted-%'
                 ORDER BY u.username_key"
            )
        });
        let rows: Vec<UserRow> = sqlx::query_as(SQL.as_str())
            .bind(owner.as_str())
            .fetch_all(&self.read)
            .await?;
        // The owner sees their bots' presence.
        Ok(rows.iter().map(|r| self.user_from_row(r, true)).collect())
    }

    async fn rotate_bot_token(
        &self,
        owner: &UserId,
        bot: &UserId,
        token_hash: &str,
    ) -> Result<Vec<SessionId>> {
        let mut w = self.write_tx().await?;
        let out: Result<Vec<SessionId>> = async {
            Self::owned_bot(w.conn(), owner.as_str(), bot.as_str()).await?;
            let ended = Self::end_bot_sessions(w.conn(), bot.as_str()).await?;
            Self::bot_token_session(w.conn(), bot.as_str(), token_hash).await?;
            Ok(ended)
        }
        .await;
        w.finish(out).await
    }

    async fn delete_bot(&self, owner: &UserId, bot: &UserId) -> Result<Vec<SessionId>> {
        {
            let mut c = self.read.acquire().await?;
            Self::owned_bot(&mut c, owner.as_str(), bot.as_str()).await?;
        }
        // Leaves its groups (as a deleted account does), then its direct chats, then the
        // token goes.
        let mut ended = crate::store::Accounts::delete_account(self, bot).await?;
        let mut w = self.write_tx().await?;
        let out: Result<Vec<SessionId>> = async {
            let directs: Vec<String> = sqlx::query_scalar(
                "SELECT m.conversation_id FROM members m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.user_id = $1 AND c.kind = 'direct'",
            )
            .bind(bot.as_str())
            .fetch_all(w.conn())
            .await?;
            for conv in directs {
                sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
                    .bind(&conv)
                    .bind(bot.as_str())
                    .execute(w.conn())
                    .await?;
                let frame = ServerFrame::MemberRemoved {
                    conversation_id: conv.clone(),
                    user_id: bot.to_string(),
                    role: Some(p::Role::Member),
                    stream_pos: None,
                };
                w.emit_conv(&conv, &frame).await?;
            }
            Self::end_bot_sessions(w.conn(), bot.as_str()).await
        }
        .await;
        ended.extend(w.finish(out).await?);
        Ok(ended)
    }

    async fn is_bot(&self, user_id: &UserId) -> Result<bool> {
        let mut c = self.read.acquire().await?;
        Self::user_is_bot(&mut c, user_id.as_str()).await
    }
}

#[async_trait]
impl<B: Backend> Webhooks for SqlStore<B>
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
    async fn create_webhook(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        id: &str,
        name: &str,
        secret_hash: &str,
    ) -> Result<p::Webhook> {
        let mut w = self.write_tx().await?;
        let out: Result<p::Webhook> = async {
            Self::may_manage_webhooks(w.conn(), user.as_str(), conversation_id.as_str()).await?;
            let now = now_ms();
            sqlx::query(
                "INSERT INTO webhooks (id, conversation_id, creator_id, name, secret_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(conversation_id.as_str())
            .bind(user.as_str())
            .bind(name)
            .bind(secret_hash)
            .bind(now)
            .execute(w.conn())
            .await?;
            Ok(p::Webhook {
                id: id.to_owned(),
                name: name.to_owned(),
                created_at: rfc3339(now),
                created_by: Some(user.to_string()),
            })
        }
        .await;
        w.finish(out).await
    }

    async fn webhooks(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<Vec<p::Webhook>> {
        let mut c = self.read.acquire().await?;
        if Self::role_of(&mut c, conversation_id.as_str(), user.as_str())
            .await?
            .is_none()
        {
            return Err(Error::not_found("conversation"));
        }
        let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
            "SELECT id, name, created_at, creator_id FROM webhooks
             WHERE conversation_id = $1 AND deleted_at IS NULL ORDER BY created_at",
        )
        .bind(conversation_id.as_str())
        .fetch_all(&mut *c)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, at, by)| p::Webhook {
                id,
                name,
                created_at: rfc3339(at),
                created_by: Some(by),
            })
            .collect())
    }

    async fn delete_webhook(
        &self,
        user: &UserId,
        conversation_id: &ConversationId,
        id: &str,
    ) -> Result<()> {
        let mut w = self.write_tx().await?;
        let out: Result<()> = async {
            Self::may_manage_webhooks(w.conn(), user.as_str(), conversation_id.as_str()).await?;
            let r = sqlx::query(
                "UPDATE webhooks SET deleted_at = $3 WHERE id = $1 AND conversation_id = $2 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(conversation_id.as_str())
            .bind(now_ms())
            .execute(w.conn())
            .await?;
            if B::rows_affected(&r) == 0 {
                return Err(Error::not_found("webhook"));
            }
            Ok(())
        }
        .await;
        w.finish(out).await
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>> {
        let row: Option<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT id, conversation_id, creator_id, name, secret_hash FROM webhooks WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        Ok(
            row.map(|(id, conv, creator, name, secret_hash)| WebhookRecord {
                id,
                conversation_id: ConversationId::trusted(conv),
                creator_id: UserId::trusted(creator),
                name,
                secret_hash,
            }),
        )
    }
}
