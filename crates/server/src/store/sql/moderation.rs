//! Running the server: system admins, suspensions, reports, moderators' deletions, the audit
//! log, statistics, registration invites and upload usage.
//!
//! Every admin action writes its `audit_log` row in the transaction that does it, so the log
//! cannot miss an action that happened (nor record one that did not). Authorization (who is
//! a system admin) is checked by the HTTP layer before any of this runs; this module trusts
//! its `actor`.

use std::sync::LazyLock;

use async_trait::async_trait;
use chatnode_protocol as p;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::messages::{MESSAGE_COLUMNS, MsgRow};
use super::users::{USER_COLUMNS, UserRow};
use super::{Backend, Conn, SqlStore, WriteTx, like_prefix};
use crate::crypto::column;
use crate::domain::{ConversationId, SessionId, UserId};
use crate::error::{Error, Result};
use crate::store::{AdminTarget, Moderation, NewReport, StoreStats};
use crate::time::{new_id, now_ms, rfc3339};

/// A suspension "until lifted" is stored as this far-future time (year 9999).
pub const SUSPENDED_FOREVER_MS: i64 = 253_402_300_799_000;

/// Messages shown around a reported one, on each side.
const REPORT_CONTEXT: i64 = 3;

#[derive(FromRow)]
struct ReportRow {
    id: String,
    reporter_id: String,
    user_id: Option<String>,
    conversation_id: Option<String>,
    seq: Option<i64>,
    reason: String,
    created_at: i64,
    resolved_by: Option<String>,
    resolved_at: Option<i64>,
    note: Option<String>,
}

#[derive(FromRow)]
struct AuditRow {
    id: String,
    actor_id: Option<String>,
    action: String,
    target_user_id: Option<String>,
    conversation_id: Option<String>,
    seq: Option<i64>,
    details: Option<String>,
    created_at: i64,
}

/// One entry of the audit log, written by [`SqlStore::audit`].
pub(super) struct Audit<'a> {
    pub actor: Option<&'a str>,
    pub action: &'a str,
    pub target_user: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub seq: Option<i64>,
    pub details: Option<String>,
}

impl<'a> Audit<'a> {
    pub(super) fn new(actor: Option<&'a str>, action: &'a str) -> Audit<'a> {
        Audit {
            actor,
            action,
            target_user: None,
            conversation_id: None,
            seq: None,
            details: None,
        }
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
    /// Writes an audit log entry in the transaction of the action.
    pub(super) async fn audit(w: &mut WriteTx<'_, B>, a: Audit<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, actor_id, action, target_user_id, conversation_id, seq, details, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id())
        .bind(a.actor)
        .bind(a.action)
        .bind(a.target_user)
        .bind(a.conversation_id)
        .bind(a.seq)
        .bind(a.details)
        .bind(now_ms())
        .execute(w.conn())
        .await?;
        Ok(())
    }

    /// An audit entry for something done on the server's command line (no actor).
    pub(super) async fn audit_cli(&self, action: &str, details: &str) -> Result<()> {
        let mut w = self.write_tx().await?;
        let mut a = Audit::new(None, action);
        a.details = Some(details.to_owned());
        let out = Self::audit(&mut w, a).await;
        w.finish(out).await
    }

    /// A user as admins see them (no presence: an admin is not everyone's friend).
    fn plain_user(&self, r: &UserRow) -> p::User {
        self.user_from_row(r, false)
    }

    async fn plain_user_by_id(&self, c: &mut Conn<B>, id: Option<&str>) -> Result<Option<p::User>> {
        let Some(id) = id else { return Ok(None) };
        Ok(Self::user_row(c, id).await?.map(|r| self.plain_user(&r)))
    }

    async fn report_view(&self, c: &mut Conn<B>, r: ReportRow) -> Result<p::Report> {
        let reporter = self
            .plain_user_by_id(c, Some(&r.reporter_id))
            .await?
            .ok_or_else(|| Error::not_found("user"))?;
        let user = self.plain_user_by_id(c, r.user_id.as_deref()).await?;
        let (message, context) = match (&r.conversation_id, r.seq) {
            (Some(conv), Some(seq)) => {
                static AROUND: LazyLock<String> = LazyLock::new(|| {
                    format!(
                        "SELECT {MESSAGE_COLUMNS} FROM messages m
                         WHERE m.conversation_id = $1 AND m.seq >= $2 AND m.seq <= $3 ORDER BY m.seq"
                    )
                });
                let rows: Vec<MsgRow> = sqlx::query_as(AROUND.as_str())
                    .bind(conv)
                    .bind(seq - REPORT_CONTEXT)
                    .bind(seq + REPORT_CONTEXT)
                    .fetch_all(&mut *c)
                    .await?;
                let mut message = None;
                let mut context = Vec::with_capacity(rows.len());
                for row in rows {
                    let m = self.message_view(c, row).await?;
                    if m.seq == seq {
                        message = Some(m.clone());
                    }
                    context.push(m);
                }
                (message, context)
            }
            _ => (None, Vec::new()),
        };
        Ok(p::Report {
            id: r.id,
            reporter,
            user,
            message,
            reason: r.reason,
            created_at: rfc3339(r.created_at),
            status: if r.resolved_at.is_some() {
                p::ReportStatus::Resolved
            } else {
                p::ReportStatus::Open
            },
            resolved_by: r.resolved_by,
            resolved_at: r.resolved_at.map(rfc3339),
            note: r.note,
            context,
        })
    }

    /// The bytes of a user's uploads (thumbnails included) since `since_ms`, and in all.
    pub(super) async fn usage_of(c: &mut Conn<B>, user: &str, since_ms: i64) -> Result<(i64, i64)> {
        let (today, total): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN created_at >= $2 THEN size + COALESCE(thumb_size, 0) ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(size + COALESCE(thumb_size, 0)), 0) AS BIGINT)
             FROM media WHERE owner_id = $1",
        )
        .bind(user)
        .bind(since_ms)
        .fetch_one(&mut *c)
        .await?;
        Ok((today, total))
    }
}

/// "until lifted" or the time.
fn until_text(until_ms: i64) -> String {
    if until_ms >= SUSPENDED_FOREVER_MS {
        "until lifted".into()
    } else {
        format!("until {}", rfc3339(until_ms))
    }
}

#[async_trait]
impl<B: Backend> Moderation for SqlStore<B>
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
    async fn is_system_admin(&self, user_id: &UserId) -> Result<bool> {
        let v: Option<bool> = sqlx::query_scalar("SELECT system_admin FROM users WHERE id = $1")
            .bind(user_id.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(v.unwrap_or(false))
    }

    async fn set_system_admin(
        &self,
        actor: Option<&UserId>,
        target: AdminTarget,
        admin: bool,
    ) -> Result<UserId> {
        let mut w = self.write_tx().await?;
        let out: Result<UserId> = async {
            let id: Option<String> = match &target {
                AdminTarget::Id(id) => {
                    sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(w.conn())
                        .await?
                }
                AdminTarget::Username(name) => {
                    sqlx::query_scalar("SELECT id FROM users WHERE username_key = $1")
                        .bind(name.to_ascii_lowercase())
                        .fetch_optional(w.conn())
                        .await?
                }
            };
            let id = id.ok_or_else(|| Error::not_found("user"))?;
            let bot: Option<String> =
                sqlx::query_scalar("SELECT bot_owner_id FROM users WHERE id = $1")
                    .bind(&id)
                    .fetch_one(w.conn())
                    .await?;
            if bot.is_some() && admin {
                return Err(Error::bad_request("a bot cannot be a system admin"));
            }
            sqlx::query("UPDATE users SET system_admin = $2 WHERE id = $1")
                .bind(&id)
                .bind(admin)
                .execute(w.conn())
                .await?;
            let mut a = Audit::new(
                actor.map(UserId::as_str),
                if admin { "grant_admin" } else { "revoke_admin" },
            );
            a.target_user = Some(&id);
            Self::audit(&mut w, a).await?;
            Ok(UserId::trusted(id))
        }
        .await;
        w.finish(out).await
    }

    async fn admin_users(
        &self,
        q: &str,
        limit: i64,
        offset: i64,
        since_ms: i64,
    ) -> Result<Vec<p::AdminUser>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {USER_COLUMNS}, u.suspended_until, u.suspension_reason FROM users u
                 WHERE $1 = '' OR u.username_key LIKE $2 ESCAPE '\\' OR u.display_key LIKE $2 ESCAPE '\\'
                    OR u.email_hash = $3 OR u.phone_hash = $4
                 ORDER BY u.username_key LIMIT $5 OFFSET $6"
            )
        });
        let q = q.trim();
        let lower = q.to_lowercase();
        let mut c = self.read.acquire().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(SQL.as_str()))
            .bind(q)
            .bind(like_prefix(&lower))
            .bind(self.keys.lookup_hash(column::USER_EMAIL, &lower))
            .bind(self.keys.lookup_hash(column::USER_PHONE, q))
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *c)
            .await?;
        let now = now_ms();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            use sqlx::Row;
            let u = <UserRow as FromRow<_>>::from_row(r)?;
            let suspended_until: Option<i64> = r.try_get("suspended_until")?;
            let reason: Option<String> = r.try_get("suspension_reason")?;
            let active = suspended_until.filter(|t| *t > now);
            let me = self.me_from_row(&u)?;
            let (today, total) = Self::usage_of(&mut c, &u.id, since_ms).await?;
            out.push(p::AdminUser {
                user: self.plain_user(&u),
                email: me.email,
                phone: me.phone,
                created_at: me.created_at,
                suspended_until: active.map(rfc3339),
                system_admin: me.system_admin,
                suspension_reason: active.and(reason),
                upload_bytes_today: today,
                upload_bytes_total: total,
            });
        }
        Ok(out)
    }

    async fn suspend(
        &self,
        actor: &UserId,
        target: &UserId,
        reason: &str,
        until_ms: i64,
    ) -> Result<Vec<SessionId>> {
        let mut w = self.write_tx().await?;
        let out: Result<Vec<SessionId>> = async {
            Self::require_user(w.conn(), target.as_str()).await?;
            sqlx::query("UPDATE users SET suspended_until = $2, suspension_reason = $3 WHERE id = $1")
                .bind(target.as_str())
                .bind(until_ms)
                .bind(reason)
                .execute(w.conn())
                .await?;
            // Every login session ends now: refresh tokens stop working, sockets close.
            let mut revoked: Vec<String> = sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
            )
            .bind(target.as_str())
            .bind(now_ms())
            .fetch_all(w.conn())
            .await?;
            // The user's bots stop too: their tokens are refused while the owner is suspended
            // (`bot_session`), and their sockets close now (their sessions are kept, so the
            // bots work again once the suspension is lifted).
            let bots: Vec<String> = sqlx::query_scalar(
                "SELECT t.session_id FROM bot_tokens t JOIN users b ON b.id = t.bot_id WHERE b.bot_owner_id = $1",
            )
            .bind(target.as_str())
            .fetch_all(w.conn())
            .await?;
            revoked.extend(bots);
            let mut a = Audit::new(Some(actor.as_str()), "suspend");
            a.target_user = Some(target.as_str());
            a.details = Some(format!("{} ({reason})", until_text(until_ms)));
            Self::audit(&mut w, a).await?;
            Ok(revoked.into_iter().map(SessionId::trusted).collect())
        }
        .await;
        w.finish(out).await
    }

    async fn unsuspend(&self, actor: &UserId, target: &UserId) -> Result<()> {
        let mut w = self.write_tx().await?;
        let out: Result<()> = async {
            Self::require_user(w.conn(), target.as_str()).await?;
            sqlx::query(
                "UPDATE users SET suspended_until = NULL, suspension_reason = NULL WHERE id = $1",
            )
            .bind(target.as_str())
            .execute(w.conn())
            .await?;
            let mut a = Audit::new(Some(actor.as_str()), "unsuspend");
            a.target_user = Some(target.as_str());
            Self::audit(&mut w, a).await
        }
        .await;
        w.finish(out).await
    }

    async fn suspension(&self, user_id: &UserId) -> Result<Option<(i64, String)>> {
        let row: Option<(Option<i64>, Option<String>)> =
            sqlx::query_as("SELECT suspended_until, suspension_reason FROM users WHERE id = $1")
                .bind(user_id.as_str())
                .fetch_optional(&self.read)
                .await?;
        Ok(match row {
            Some((Some(until), reason)) if until > now_ms() => {
                Some((until, reason.unwrap_or_default()))
            }
            _ => None,
        })
    }

    async fn moderate_delete(
        &self,
        actor: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
    ) -> Result<()> {
        let conv = conversation_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<()> = async {
            let row = Self::message_by_seq(w.conn(), conv, seq)
                .await?
                .ok_or_else(|| Error::not_found("message"))?;
            let author = row.sender_id.clone();
            self.erase_message(&mut w, row).await?;
            let mut a = Audit::new(Some(actor.as_str()), "delete_message");
            a.target_user = Some(&author);
            a.conversation_id = Some(conv);
            a.seq = Some(seq);
            Self::audit(&mut w, a).await
        }
        .await;
        w.finish(out).await
    }

    async fn create_report(&self, reporter: &UserId, report: NewReport) -> Result<String> {
        let mut w = self.write_tx().await?;
        let out: Result<String> = async {
            let id = new_id();
            let (user, conv, seq, reason) = match &report {
                NewReport::User { user_id, reason } => {
                    Self::require_user(w.conn(), user_id.as_str()).await?;
                    (Some(user_id.to_string()), None, None, reason)
                }
                NewReport::Message {
                    conversation_id,
                    seq,
                    reason,
                } => {
                    // Only what the reporter can read: a member, and not hidden for them.
                    if Self::role_of(w.conn(), conversation_id.as_str(), reporter.as_str())
                        .await?
                        .is_none()
                    {
                        return Err(Error::not_found("conversation"));
                    }
                    let row = Self::message_by_seq(w.conn(), conversation_id.as_str(), *seq)
                        .await?
                        .ok_or_else(|| Error::not_found("message"))?;
                    let hidden: Option<i64> = sqlx::query_scalar(
                        "SELECT 1 FROM hidden_messages WHERE user_id = $1 AND message_id = $2",
                    )
                    .bind(reporter.as_str())
                    .bind(&row.id)
                    .fetch_optional(w.conn())
                    .await?;
                    if hidden.is_some() {
                        return Err(Error::not_found("message"));
                    }
                    (
                        Some(row.sender_id.clone()),
                        Some(conversation_id.to_string()),
                        Some(*seq),
                        reason,
                    )
                }
            };
            sqlx::query(
                "INSERT INTO reports (id, reporter_id, user_id, conversation_id, seq, reason, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(reporter.as_str())
            .bind(user)
            .bind(conv)
            .bind(seq)
            .bind(reason)
            .bind(now_ms())
            .execute(w.conn())
            .await?;
            Ok(id)
        }
        .await;
        w.finish(out).await
    }

    async fn reports(&self, resolved: bool, limit: i64) -> Result<Vec<p::Report>> {
        let mut c = self.read.acquire().await?;
        let sql = if resolved {
            "SELECT * FROM reports WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC LIMIT $1"
        } else {
            "SELECT * FROM reports WHERE resolved_at IS NULL ORDER BY created_at LIMIT $1"
        };
        let rows: Vec<ReportRow> = sqlx::query_as(sql).bind(limit).fetch_all(&mut *c).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.report_view(&mut c, r).await?);
        }
        Ok(out)
    }

    async fn resolve_report(&self, actor: &UserId, id: &str, note: Option<String>) -> Result<()> {
        let mut w = self.write_tx().await?;
        let out: Result<()> = async {
            let row: Option<(Option<String>, Option<String>, Option<i64>, Option<i64>)> =
                sqlx::query_as(
                    "SELECT user_id, conversation_id, seq, resolved_at FROM reports WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(w.conn())
                .await?;
            let (user, conv, seq, resolved_at) = row.ok_or_else(|| Error::not_found("report"))?;
            if resolved_at.is_some() {
                return Err(Error::conflict("this report is resolved already"));
            }
            sqlx::query(
                "UPDATE reports SET resolved_by = $2, resolved_at = $3, note = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(actor.as_str())
            .bind(now_ms())
            .bind(&note)
            .execute(w.conn())
            .await?;
            let mut a = Audit::new(Some(actor.as_str()), "resolve_report");
            a.target_user = user.as_deref();
            a.conversation_id = conv.as_deref();
            a.seq = seq;
            a.details = note;
            Self::audit(&mut w, a).await
        }
        .await;
        w.finish(out).await
    }

    async fn audit_log(&self, before: Option<&str>, limit: i64) -> Result<Vec<p::AuditEntry>> {
        let mut c = self.read.acquire().await?;
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT * FROM audit_log WHERE $1 = '' OR id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(""))
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(p::AuditEntry {
                actor: self.plain_user_by_id(&mut c, r.actor_id.as_deref()).await?,
                target_user: self
                    .plain_user_by_id(&mut c, r.target_user_id.as_deref())
                    .await?,
                id: r.id,
                action: r.action,
                conversation_id: r.conversation_id,
                seq: r.seq,
                details: r.details,
                created_at: rfc3339(r.created_at),
            });
        }
        Ok(out)
    }

    async fn stats(&self, now: i64) -> Result<StoreStats> {
        const HOUR: i64 = 3_600_000;
        let mut c = self.read.acquire().await?;
        let day_ago = now - 24 * HOUR;
        let (users, active): (i64, i64) = sqlx::query_as(
            // Active: connected (last_seen_at), or signed in or refreshed a session (every
            // login and every refresh writes a refresh token), so REST-only use counts too.
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN last_seen_at >= $1 OR EXISTS (
                 SELECT 1 FROM sessions s JOIN refresh_tokens r ON r.session_id = s.id
                 WHERE s.user_id = users.id AND r.created_at >= $1) THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM users WHERE bot_owner_id IS NULL AND password_hash <> '!'",
        )
        .bind(day_ago)
        .fetch_one(&mut *c)
        .await?;
        let (conversations, groups): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN kind = 'group' THEN 1 ELSE 0 END), 0) AS BIGINT) FROM conversations",
        )
        .fetch_one(&mut *c)
        .await?;
        // The first event of the last 24 hours, found by bisecting the stream (its positions
        // grow with time): the day's messages are then a range of the primary key, with no
        // index on time needed.
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(pos), 0) FROM events")
            .fetch_one(&mut *c)
            .await?;
        let (mut lo, mut hi) = (1i64, head + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at: Option<i64> = sqlx::query_scalar(
                "SELECT created_at FROM events WHERE pos >= $1 ORDER BY pos LIMIT 1",
            )
            .bind(mid)
            .fetch_optional(&mut *c)
            .await?;
            match at {
                Some(t) if t < day_ago => lo = mid + 1,
                _ => hi = mid,
            }
        }
        let hours: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT (created_at - $2) / 3600000 AS h, COUNT(*) FROM events
             WHERE pos >= $1 AND seq IS NOT NULL AND created_at >= $2 GROUP BY h",
        )
        .bind(lo)
        .bind(day_ago)
        .fetch_all(&mut *c)
        .await?;
        let mut per_hour = vec![0i64; 24];
        for (h, n) in hours {
            if let Some(slot) = usize::try_from(h).ok().and_then(|h| per_hour.get_mut(h)) {
                *slot += n;
            }
        }
        let media_bytes: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size + COALESCE(thumb_size, 0)), 0) AS BIGINT) FROM media",
        )
        .fetch_one(&mut *c)
        .await?;
        Ok(StoreStats {
            users,
            users_active_24h: active,
            messages_24h: per_hour.iter().sum(),
            conversations,
            groups,
            messages_per_hour: per_hour,
            media_bytes,
        })
    }

    async fn create_registration_invite(
        &self,
        actor: &UserId,
        code_hash: &str,
        hint: &str,
        uses: i64,
        expires_at_ms: Option<i64>,
    ) -> Result<()> {
        let mut w = self.write_tx().await?;
        let out: Result<()> = async {
            sqlx::query(
                "INSERT INTO registration_invites (code_hash, hint, uses_left, expires_at, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(code_hash)
            .bind(hint)
            .bind(uses)
            .bind(expires_at_ms)
            .bind(actor.as_str())
            .bind(now_ms())
            .execute(w.conn())
            .await?;
            let mut a = Audit::new(Some(actor.as_str()), "create_registration_invite");
            a.details = Some(format!(
                "{hint}…: {uses} use(s), {}",
                expires_at_ms.map_or("no expiry".to_owned(), |t| format!("expires {}", rfc3339(t)))
            ));
            Self::audit(&mut w, a).await
        }
        .await;
        w.finish(out).await
    }

    async fn registration_invites(&self) -> Result<Vec<p::RegistrationInvite>> {
        let rows: Vec<(String, String, i64, Option<i64>, Option<String>, i64)> = sqlx::query_as(
            "SELECT code_hash, hint, uses_left, expires_at, created_by, created_at FROM registration_invites
             WHERE uses_left > 0 AND (expires_at IS NULL OR expires_at > $1) ORDER BY created_at DESC",
        )
        .bind(now_ms())
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, hint, uses, expires, by, at)| p::RegistrationInvite {
                code: format!("{hint}…"),
                uses,
                expires_at: expires.map(rfc3339),
                created_at: Some(rfc3339(at)),
                created_by: by,
                id: Some(id),
            })
            .collect())
    }

    async fn revoke_registration_invite(&self, actor: &UserId, id: &str) -> Result<()> {
        let mut w = self.write_tx().await?;
        let out: Result<()> = async {
            let hint: Option<String> = sqlx::query_scalar(
                "DELETE FROM registration_invites WHERE code_hash = $1 RETURNING hint",
            )
            .bind(id)
            .fetch_optional(w.conn())
            .await?;
            let hint = hint.ok_or_else(|| Error::not_found("invite"))?;
            let mut a = Audit::new(Some(actor.as_str()), "revoke_registration_invite");
            a.details = Some(format!("{hint}…"));
            Self::audit(&mut w, a).await
        }
        .await;
        w.finish(out).await
    }

    async fn upload_usage(&self, user_id: &UserId, since_ms: i64) -> Result<(i64, i64)> {
        let mut c = self.read.acquire().await?;
        Self::usage_of(&mut c, user_id.as_str(), since_ms).await
    }
}
