//! Accounts, login sessions and account safety: registration, profiles and user search,
//! refresh-token rotation, password changes, session revocation, account deletion and
//! export. Also the user views every area builds ([`UserRow`], `public_user`), which are
//! where presence is shown or hidden.
//!
//! Passwords arrive hashed and refresh tokens as their hashes: this module never sees a
//! secret, and must not log what it stores.

use std::collections::HashSet;
use std::sync::LazyLock;

use async_trait::async_trait;
use chatnode_protocol::{self as p, ErrorCode, ServerFrame};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::messages::{MESSAGE_COLUMNS, MsgRow};
use super::{Backend, Conn, SqlStore, avatar_url, like_prefix};
use crate::crypto::column;
use crate::domain::{MediaId, SessionId, UserId};
use crate::error::{Error, Result};
use crate::store::{
    Accounts, Conversations, Credentials, MediaRecord, NewUser, ProfilePatch, RefreshOutcome,
    Social,
};
use crate::time::{new_id, now_ms, rfc3339};

/// The columns of a [`UserRow`], for `SELECT {USER_COLUMNS} FROM users u …`.
pub(super) const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.bio, u.avatar_media_id, u.email, u.phone, u.created_at, u.last_seen_at, u.notification_previews, u.bot_owner_id, u.system_admin";

/// A user as stored (email and phone sealed).
#[derive(FromRow)]
pub(super) struct UserRow {
    pub(super) id: String,
    username: String,
    display_name: String,
    bio: Option<String>,
    avatar_media_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    created_at: i64,
    last_seen_at: Option<i64>,
    notification_previews: bool,
    pub(super) bot_owner_id: Option<String>,
    pub(super) system_admin: bool,
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
    pub(super) fn user_from_row(&self, r: &UserRow, show_presence: bool) -> p::User {
        let online = show_presence && self.presence.is_online(&r.id);
        p::User {
            id: r.id.clone(),
            username: r.username.clone(),
            display_name: r.display_name.clone(),
            avatar_url: avatar_url(r.avatar_media_id.as_deref()),
            bio: r.bio.clone(),
            online,
            last_seen_at: if show_presence {
                r.last_seen_at.map(rfc3339)
            } else {
                None
            },
            bot: r.bot_owner_id.is_some(),
        }
    }

    pub(super) fn me_from_row(&self, r: &UserRow) -> Result<p::Me> {
        Ok(p::Me {
            user: self.user_from_row(r, true),
            email: self
                .keys
                .decrypt_opt(column::USER_EMAIL, r.email.as_deref())?,
            phone: self
                .keys
                .decrypt_opt(column::USER_PHONE, r.phone.as_deref())?,
            created_at: rfc3339(r.created_at),
            notification_previews: r.notification_previews,
            system_admin: r.system_admin,
        })
    }

    pub(super) async fn user_row(c: &mut Conn<B>, id: &str) -> Result<Option<UserRow>> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"));
        Ok(sqlx::query_as::<_, UserRow>(SQL.as_str())
            .bind(id)
            .fetch_optional(&mut *c)
            .await?)
    }

    pub(super) async fn require_user(c: &mut Conn<B>, id: &str) -> Result<UserRow> {
        Self::user_row(c, id)
            .await?
            .ok_or_else(|| Error::not_found("user"))
    }

    /// The users whose presence `viewer` may see: their friends and themself.
    pub(super) async fn presence_set(c: &mut Conn<B>, viewer: &str) -> Result<HashSet<String>> {
        let mut set: HashSet<String> =
            sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = $1")
                .bind(viewer)
                .fetch_all(&mut *c)
                .await?
                .into_iter()
                .collect();
        set.insert(viewer.to_owned());
        Ok(set)
    }

    pub(super) async fn public_user(
        &self,
        c: &mut Conn<B>,
        viewer: &str,
        id: &str,
    ) -> Result<p::User> {
        let row = Self::require_user(c, id).await?;
        let show = viewer == id || Self::are_friends(c, viewer, id).await?;
        Ok(self.user_from_row(&row, show))
    }

    pub(super) async fn display_name(c: &mut Conn<B>, user: &str) -> Result<String> {
        let n: Option<String> = sqlx::query_scalar("SELECT display_name FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *c)
            .await?;
        Ok(n.unwrap_or_else(|| "someone".into()))
    }

    /// Stores the hash of a new refresh token of a login session.
    pub(super) async fn insert_refresh(
        c: &mut Conn<B>,
        hash: &str,
        session_id: &str,
        now: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash)
        .bind(session_id)
        .bind(now)
        .bind(expires_at_ms)
        .execute(&mut *c)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> Accounts for SqlStore<B>
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
    async fn create_user(&self, u: NewUser) -> Result<p::Me> {
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let email_hash = u.email.as_deref().map(|e| self.keys.lookup_hash(column::USER_EMAIL, e));
            let phone_hash = u.phone.as_deref().map(|p| self.keys.lookup_hash(column::USER_PHONE, p));
            let taken: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT username_key, email_hash, phone_hash FROM users
                 WHERE username_key = $1 OR email_hash = $2 OR phone_hash = $3 LIMIT 1",
            )
            .bind(&u.username_key)
            .bind(&email_hash)
            .bind(&phone_hash)
            .fetch_optional(w.conn())
            .await?;
            if let Some((key, email, phone)) = taken {
                return Err(if email_hash.is_some() && email == email_hash {
                    Error::new(ErrorCode::EmailTaken, "this email is already registered")
                } else if phone_hash.is_some() && phone == phone_hash {
                    Error::new(
                        ErrorCode::PhoneTaken,
                        "this phone number is already registered",
                    )
                } else {
                    let _ = key;
                    Error::new(ErrorCode::UsernameTaken, "this username is taken")
                });
            }
            if let Some(code_hash) = &u.invite_code_hash {
                // One use of the invite, atomically with the account it makes.
                let spent = sqlx::query(
                    "UPDATE registration_invites SET uses_left = uses_left - 1
                     WHERE code_hash = $1 AND uses_left > 0 AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(code_hash)
                .bind(now_ms())
                .execute(w.conn())
                .await?;
                if B::rows_affected(&spent) == 0 {
                    return Err(Error::new(
                        ErrorCode::RegistrationClosed,
                        "this invite code is not valid (unknown, used up or expired)",
                    ));
                }
            }
            let id = new_id();
            sqlx::query(
                "INSERT INTO users (id, username, username_key, email, phone, email_hash, phone_hash,
                                    display_name, display_key, password_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&id)
            .bind(&u.username)
            .bind(&u.username_key)
            .bind(u.email.as_deref().map(|e| self.keys.encrypt(column::USER_EMAIL, e)))
            .bind(u.phone.as_deref().map(|p| self.keys.encrypt(column::USER_PHONE, p)))
            .bind(&email_hash)
            .bind(&phone_hash)
            .bind(&u.display_name)
            .bind(u.display_name.to_lowercase())
            .bind(&u.password_hash)
            .bind(now_ms())
            .execute(w.conn())
            .await?;
            let row = Self::require_user(w.conn(), &id).await?;
            self.me_from_row(&row)
        }
        .await;
        w.finish(out).await
    }

    async fn credentials(&self, login: &str) -> Result<Option<Credentials>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT id, password_hash FROM users WHERE email_hash = $1 OR phone_hash = $2 OR username_key = $3 LIMIT 1",
        )
        .bind(self.keys.lookup_hash(column::USER_EMAIL, login))
        .bind(self.keys.lookup_hash(column::USER_PHONE, login))
        .bind(login)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(user_id, password_hash)| Credentials {
            user_id: UserId::trusted(user_id),
            password_hash,
        }))
    }

    async fn me(&self, user_id: &UserId) -> Result<p::Me> {
        let user_id = user_id.as_str();
        let mut c = self.read.acquire().await?;
        let row = Self::require_user(&mut c, user_id).await?;
        self.me_from_row(&row)
    }

    async fn user(&self, viewer: &UserId, user_id: &UserId) -> Result<p::User> {
        let viewer = viewer.as_str();
        let user_id = user_id.as_str();
        let mut c = self.read.acquire().await?;
        self.public_user(&mut c, viewer, user_id).await
    }

    async fn update_profile(&self, user_id: &UserId, patch: ProfilePatch) -> Result<p::Me> {
        let user_id = user_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let avatar = patch.avatar_media_id.as_ref().map(MediaId::as_str);
            if let Some(media_id) = avatar {
                Self::adopt_avatar(w.conn(), user_id, media_id).await?;
            }
            // One statement: absent fields keep their value; an empty bio clears it.
            let bio = patch.bio.as_deref().filter(|b| !b.is_empty());
            sqlx::query(
                "UPDATE users SET
                     display_name = COALESCE($2, display_name),
                     display_key = COALESCE($3, display_key),
                     avatar_media_id = COALESCE($4, avatar_media_id),
                     notification_previews = COALESCE($5, notification_previews),
                     bio = CASE WHEN $6 THEN $7 ELSE bio END
                 WHERE id = $1",
            )
            .bind(user_id)
            .bind(&patch.display_name)
            .bind(patch.display_name.as_ref().map(|n| n.to_lowercase()))
            .bind(avatar)
            .bind(patch.notification_previews)
            .bind(patch.bio.is_some())
            .bind(bio)
            .execute(w.conn())
            .await?;
            let row = Self::require_user(w.conn(), user_id).await?;
            self.me_from_row(&row)
        }
        .await;
        w.finish(out).await
    }

    async fn search_users(
        &self,
        viewer: &UserId,
        q: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::User>> {
        let viewer = viewer.as_str();
        let q = q.trim();
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.read.acquire().await?;
        let lower = q.to_lowercase();
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {USER_COLUMNS} FROM users u
              WHERE (u.username_key LIKE $1 ESCAPE '\\' OR u.display_key LIKE $1 ESCAPE '\\'
                     OR u.email_hash = $2 OR u.phone_hash = $3)
                AND u.id NOT IN (SELECT blocker_id FROM blocks WHERE blocked_id = $4)
              ORDER BY u.username_key LIMIT $5 OFFSET $6"
            )
        });
        let rows = sqlx::query_as::<_, UserRow>(SQL.as_str())
            .bind(like_prefix(&lower))
            .bind(self.keys.lookup_hash(column::USER_EMAIL, &lower))
            .bind(self.keys.lookup_hash(column::USER_PHONE, q))
            .bind(viewer)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *c)
            .await?;
        let visible = Self::presence_set(&mut c, viewer).await?;
        Ok(rows
            .iter()
            .map(|r| self.user_from_row(r, visible.contains(&r.id)))
            .collect())
    }

    async fn set_last_seen(&self, user_id: &UserId, at_ms: i64) -> Result<()> {
        let user_id = user_id.as_str();
        let mut c = self.write.acquire().await?;
        sqlx::query("UPDATE users SET last_seen_at = $2 WHERE id = $1")
            .bind(user_id)
            .bind(at_ms)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn create_session(
        &self,
        user_id: &UserId,
        refresh_hash: &str,
        expires_at_ms: i64,
    ) -> Result<SessionId> {
        let user_id = user_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let id = new_id();
            let now = now_ms();
            sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(user_id)
                .bind(now)
                .execute(w.conn())
                .await?;
            Self::insert_refresh(w.conn(), refresh_hash, &id, now, expires_at_ms).await?;
            Ok(SessionId::trusted(id))
        }
        .await;
        w.finish(out).await
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at_ms: i64,
    ) -> Result<RefreshOutcome> {
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let row: Option<(String, i64, Option<i64>, String, Option<i64>)> = sqlx::query_as(
                "SELECT r.session_id, r.expires_at, r.used_at, s.user_id, s.revoked_at
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
            )
            .bind(old_hash)
            .fetch_optional(w.conn())
            .await?;
            let Some((session_id, expires_at, used_at, user_id, revoked_at)) = row else {
                return Ok(RefreshOutcome::Invalid);
            };
            let now = now_ms();
            if revoked_at.is_some() {
                return Ok(RefreshOutcome::Invalid);
            }
            if used_at.is_some() {
                // A spent token came back: someone holds a copy. End the whole login session.
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1")
                    .bind(&session_id)
                    .bind(now)
                    .execute(w.conn())
                    .await?;
                return Ok(RefreshOutcome::Reused {
                    session_id: SessionId::trusted(session_id),
                });
            }
            if expires_at <= now {
                return Ok(RefreshOutcome::Invalid);
            }
            sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1")
                .bind(old_hash)
                .bind(now)
                .execute(w.conn())
                .await?;
            Self::insert_refresh(w.conn(), new_hash, &session_id, now, expires_at_ms).await?;
            Ok(RefreshOutcome::Rotated {
                user_id: UserId::trusted(user_id),
                session_id: SessionId::trusted(session_id),
            })
        }
        .await;
        w.finish(out).await
    }

    async fn refresh_session(&self, refresh_hash: &str) -> Result<Option<(SessionId, UserId)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT s.id, s.user_id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
        )
        .bind(refresh_hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(session, user)| (SessionId::trusted(session), UserId::trusted(user))))
    }

    async fn revoke_session(&self, session_id: &SessionId) -> Result<()> {
        let session_id = session_id.as_str();
        let mut c = self.write.acquire().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(session_id)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn session_active(&self, session_id: &SessionId, user_id: &UserId) -> Result<bool> {
        let session_id = session_id.as_str();
        let user_id = user_id.as_str();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .bind(user_id)
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    async fn bot_session(&self, token_hash: &str) -> Result<Option<(UserId, SessionId)>> {
        // A bot stops while its owner is suspended (and starts again when that is lifted).
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT t.bot_id, t.session_id FROM bot_tokens t
             JOIN sessions s ON s.id = t.session_id
             JOIN users b ON b.id = t.bot_id
             LEFT JOIN users o ON o.id = b.bot_owner_id
             WHERE t.token_hash = $1 AND s.revoked_at IS NULL
               AND (o.suspended_until IS NULL OR o.suspended_until <= $2)",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(bot, session)| (UserId::trusted(bot), SessionId::trusted(session))))
    }

    async fn password_hash(&self, user_id: &UserId) -> Result<String> {
        let user_id = user_id.as_str();
        let h: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        h.ok_or_else(|| Error::not_found("user"))
    }

    async fn change_password(
        &self,
        user_id: &UserId,
        new_hash: &str,
        keep_session: &SessionId,
    ) -> Result<Vec<SessionId>> {
        let user_id = user_id.as_str();
        let keep_session = keep_session.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(user_id)
                .bind(new_hash)
                .execute(w.conn())
                .await?;
            let revoked: Vec<String> = sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id",
            )
            .bind(user_id)
            .bind(keep_session)
            .bind(now_ms())
            .fetch_all(w.conn())
            .await?;
            Ok(revoked.into_iter().map(SessionId::trusted).collect())
        }
        .await;
        w.finish(out).await
    }

    async fn sessions(&self, user_id: &UserId) -> Result<Vec<(SessionId, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, created_at FROM sessions WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC",
        )
        .bind(user_id.as_str())
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, at)| (SessionId::trusted(id), at))
            .collect())
    }

    async fn revoke_user_session(&self, user_id: &UserId, session_id: &SessionId) -> Result<bool> {
        let user_id = user_id.as_str();
        let session_id = session_id.as_str();
        let mut c = self.write.acquire().await?;
        let r = sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
            .bind(session_id)
            .bind(user_id)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
        Ok(B::rows_affected(&r) > 0)
    }

    async fn delete_account(&self, user_id: &UserId) -> Result<Vec<SessionId>> {
        let user_id = user_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let now = now_ms();
            // Friendships end (both people are told), requests and blocks go.
            let friends: Vec<String> = sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(w.conn())
                .await?;
            for f in &friends {
                Self::unfriend(&mut w, user_id, f).await?;
            }
            for sql in [
                "DELETE FROM friend_requests WHERE from_id = $1 OR to_id = $1",
                "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
                "DELETE FROM push_subscriptions WHERE user_id = $1",
                // A deleted account is never signed in to again by single sign-on.
                "DELETE FROM oidc_identities WHERE user_id = $1",
            ] {
                sqlx::query(sql).bind(user_id).execute(w.conn()).await?;
            }
            // Groups: ownership passes to the longest-serving admin, else member; then leave.
            let groups: Vec<(String, String)> = sqlx::query_as(
                "SELECT m.conversation_id, m.role FROM members m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.user_id = $1 AND c.kind = 'group'",
            )
            .bind(user_id)
            .fetch_all(w.conn())
            .await?;
            for (group, role) in groups {
                if role == "owner" {
                    let heir: Option<String> = sqlx::query_scalar(
                        "SELECT m.user_id FROM members m JOIN users u ON u.id = m.user_id
                         WHERE m.conversation_id = $1 AND m.user_id <> $2 AND u.bot_owner_id IS NULL
                         ORDER BY CASE m.role WHEN 'admin' THEN 0 ELSE 1 END, m.joined_at LIMIT 1",
                    )
                    .bind(&group)
                    .bind(user_id)
                    .fetch_optional(w.conn())
                    .await?;
                    if let Some(heir) = heir {
                        Self::change_role(&mut w, &group, &heir, p::Role::Owner).await?;
                    }
                }
                sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
                    .bind(&group)
                    .bind(user_id)
                    .execute(w.conn())
                    .await?;
                let frame = ServerFrame::MemberRemoved {
                    conversation_id: group.clone(),
                    user_id: user_id.to_owned(),
                    role: p::Role::parse(&role),
                    stream_pos: None,
                };
                w.emit_conv(&group, &frame).await?;
                Self::system_message(&mut w, &group, user_id, "Deleted user left the group".into()).await?;
            }
            // The profile is erased; the row stays so old messages keep a sender.
            let tag: String = user_id.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            let name = format!("deleted-{tag}");
            sqlx::query(
                "UPDATE users SET username = $2, username_key = $2, email = NULL, phone = NULL,
                     email_hash = NULL, phone_hash = NULL,
                     display_name = 'Deleted user', display_key = 'deleted user', bio = NULL,
                     avatar_media_id = NULL, password_hash = '!', last_seen_at = NULL
                 WHERE id = $1",
            )
            .bind(user_id)
            .bind(&name)
            .execute(w.conn())
            .await?;
            let revoked: Vec<String> = sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(w.conn())
            .await?;
            sqlx::query("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)")
                .bind(user_id)
                .execute(w.conn())
                .await?;
            Ok(revoked.into_iter().map(SessionId::trusted).collect())
        }
        .await;
        w.finish(out).await
    }

    async fn export(&self, user: &UserId) -> Result<serde_json::Value> {
        let user_id = user.as_str();
        let me = self.me(user).await?;
        let friends = self.friends(user).await?;
        let blocks = self.blocks(user).await?;
        let requests = self.friend_requests(user).await?;
        let conversations = self.conversations(user).await?;
        let mut c = self.read.acquire().await?;
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.sender_id = $1 AND m.kind <> 'system' ORDER BY m.created_at, m.seq"
            )
        });
        let rows = sqlx::query_as::<_, MsgRow>(SQL.as_str())
            .bind(user_id)
            .fetch_all(&mut *c)
            .await?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            messages.push(self.message_view(&mut c, row).await?);
        }
        let media = sqlx::query_as::<_, MediaRecord>(
            "SELECT * FROM media WHERE owner_id = $1 ORDER BY created_at",
        )
        .bind(user_id)
        .fetch_all(&mut *c)
        .await?;
        let media: Vec<p::Media> = self
            .open_media_all(media)?
            .iter()
            .map(MediaRecord::to_protocol)
            .collect();
        let sessions: Vec<serde_json::Value> = self
            .sessions(user)
            .await?
            .into_iter()
            .map(|(id, at)| serde_json::json!({"id": id.as_str(), "created_at": rfc3339(at)}))
            .collect();
        Ok(serde_json::json!({
            "exported_at": rfc3339(now_ms()),
            "profile": me,
            "friends": friends,
            "friend_requests": requests,
            "blocks": blocks,
            "conversations": conversations,
            "messages_sent": messages,
            "uploads": media,
            "sessions": sessions,
        }))
    }
}
