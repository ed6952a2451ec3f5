//! Service notifications: the service tokens an operator makes on the command line (stored
//! as SHA-256), and the notifications services send to users through `POST /notify`, kept
//! (title and body sealed like message bodies) and delivered as the durable `notification`
//! event to every device of the user.

use async_trait::async_trait;
use chatnode_protocol::{self as p, ServerFrame};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, Conn, SqlStore};
use crate::crypto::column;
use crate::domain::UserId;
use crate::error::{Error, Result};
use crate::store::Notifications;
use crate::time::{new_id, now_ms, rfc3339};

type NotificationRow = (String, String, String, Option<String>, i64, Option<i64>);

#[async_trait]
impl<B: Backend> Notifications for SqlStore<B>
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
    async fn create_service_token(&self, name: &str, token_hash: &str) -> Result<()> {
        let mut c = self.write.acquire().await?;
        let r = sqlx::query(
            "INSERT INTO service_tokens (name, token_hash, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(token_hash)
        .bind(now_ms())
        .execute(&mut *c)
        .await?;
        if B::rows_affected(&r) == 0 {
            return Err(Error::conflict(format!(
                "a service token named {name} exists; revoke it first"
            )));
        }
        drop(c);
        self.audit_cli("create_service_token", name).await
    }

    async fn revoke_service_token(&self, name: &str) -> Result<bool> {
        let mut c = self.write.acquire().await?;
        let r = sqlx::query("DELETE FROM service_tokens WHERE name = $1")
            .bind(name)
            .execute(&mut *c)
            .await?;
        drop(c);
        let revoked = B::rows_affected(&r) > 0;
        if revoked {
            self.audit_cli("revoke_service_token", name).await?;
        }
        Ok(revoked)
    }

    async fn service_by_token(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT name FROM service_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    async fn notify(
        &self,
        service: &str,
        user_id: &UserId,
        title: &str,
        body: &str,
        url: Option<&str>,
    ) -> Result<p::Notification> {
        let user = user_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<p::Notification> = async {
            Self::require_user(w.conn(), user).await?;
            let id = new_id();
            let now = now_ms();
            sqlx::query(
                "INSERT INTO notifications (id, user_id, service, title, body, url, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(user)
            .bind(service)
            .bind(w.seal(column::NOTIFICATION_TEXT, title))
            .bind(w.seal(column::NOTIFICATION_TEXT, body))
            .bind(url)
            .bind(now)
            .execute(w.conn())
            .await?;
            let n = p::Notification {
                id,
                title: title.to_owned(),
                body: body.to_owned(),
                url: url.map(str::to_owned),
                created_at: rfc3339(now),
                read: false,
            };
            let frame = ServerFrame::Notification {
                id: n.id.clone(),
                title: n.title.clone(),
                body: n.body.clone(),
                url: n.url.clone(),
                created_at: n.created_at.clone(),
                stream_pos: None,
            };
            w.emit_user(user, &frame).await?;
            Ok(n)
        }
        .await;
        w.finish(out).await
    }

    async fn notifications(
        &self,
        user_id: &UserId,
        before: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<p::Notification>, i64)> {
        let user = user_id.as_str();
        let mut c = self.read.acquire().await?;
        // IDs are UUIDv7: their order is the order they were made in.
        let rows: Vec<NotificationRow> = sqlx::query_as(
            "SELECT id, title, body, url, created_at, read_at FROM notifications
             WHERE user_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(user)
        .bind(before.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
        let unread: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
        )
        .bind(user)
        .fetch_one(&mut *c)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, title, body, url, at, read_at) in rows {
            out.push(p::Notification {
                id,
                title: self.keys().decrypt(column::NOTIFICATION_TEXT, &title)?,
                body: self.keys().decrypt(column::NOTIFICATION_TEXT, &body)?,
                url,
                created_at: rfc3339(at),
                read: read_at.is_some(),
            });
        }
        Ok((out, unread))
    }

    async fn mark_notifications_read(&self, user_id: &UserId, up_to: Option<&str>) -> Result<()> {
        let mut c = self.write.acquire().await?;
        sqlx::query(
            "UPDATE notifications SET read_at = $3
             WHERE user_id = $1 AND read_at IS NULL AND ($2 = '' OR id <= $2)",
        )
        .bind(user_id.as_str())
        .bind(up_to.unwrap_or(""))
        .bind(now_ms())
        .execute(&mut *c)
        .await?;
        Ok(())
    }
}
