//! Direct conversations and groups: opening and creating them, group settings, the public
//! directory, joining, invites, members and roles, and each member's view of a conversation
//! (`conv_view`). The membership helpers (`role_of`, `group_role`, `member_ids`) that every
//! area checks with live here: a non-member is told "not found", never "forbidden", so
//! outsiders cannot probe which groups exist.
//!
//! It writes messages only as `system` messages through `messages` (never rows of its own in
//! `messages`), and it must not decide who may *send*: that is `messages::decide_send`.

use std::sync::LazyLock;

use async_trait::async_trait;
use chatnode_protocol::{self as p, ErrorCode, ServerFrame};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::messages::{MESSAGE_COLUMNS, MsgRow};
use super::users::{USER_COLUMNS, UserRow};
use super::{Backend, Conn, SqlStore, WriteTx, avatar_url, like_prefix};
use crate::domain::{ConversationId, MediaId, UserId};
use crate::error::{Error, Result};
use crate::store::{Conversations, GroupPatch, NewGroup};
use crate::time::{new_id, now_ms, rfc3339};

#[derive(FromRow)]
/// A conversation as one member sees it (their role, read marker and mute).
struct ConvRow {
    id: String,
    kind: String,
    name: Option<String>,
    description: Option<String>,
    #[allow(dead_code)]
    avatar_media_id: Option<String>,
    public: bool,
    created_at: i64,
    last_seq: i64,
    role: String,
    last_read_seq: i64,
    muted_until: Option<i64>,
    mute_mentions: bool,
    member_count: i64,
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
    pub(super) async fn member_ids(c: &mut Conn<B>, conv: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM members WHERE conversation_id = $1")
                .bind(conv)
                .fetch_all(&mut *c)
                .await?,
        )
    }

    pub(super) async fn role_of(
        c: &mut Conn<B>,
        conv: &str,
        user: &str,
    ) -> Result<Option<p::Role>> {
        let r: Option<String> = sqlx::query_scalar(
            "SELECT role FROM members WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conv)
        .bind(user)
        .fetch_optional(&mut *c)
        .await?;
        Ok(r.and_then(|s| p::Role::parse(&s)))
    }

    /// The caller's role in a group; a non-member (or a direct conversation) is "not found".
    pub(super) async fn group_role(c: &mut Conn<B>, group: &str, user: &str) -> Result<p::Role> {
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM conversations WHERE id = $1")
                .bind(group)
                .fetch_optional(&mut *c)
                .await?;
        if kind.as_deref() != Some("group") {
            return Err(Error::not_found("group"));
        }
        Self::role_of(c, group, user)
            .await?
            .ok_or_else(|| Error::not_found("group"))
    }

    pub(super) async fn conv_view(
        &self,
        c: &mut Conn<B>,
        user: &str,
        conv: &str,
    ) -> Result<p::Conversation> {
        let row = sqlx::query_as::<_, ConvRow>(
            "SELECT c.id, c.kind, c.name, c.description, c.avatar_media_id, c.public, c.created_at, c.last_seq,
                    m.role, m.last_read_seq, m.muted_until, m.mute_mentions,
                    (SELECT COUNT(*) FROM members x WHERE x.conversation_id = c.id) AS member_count
             FROM conversations c JOIN members m ON m.conversation_id = c.id AND m.user_id = $2
             WHERE c.id = $1",
        )
        .bind(conv)
        .bind(user)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| Error::not_found("conversation"))?;
        self.conv_from_row(c, user, row).await
    }

    async fn conv_from_row(
        &self,
        c: &mut Conn<B>,
        user: &str,
        row: ConvRow,
    ) -> Result<p::Conversation> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = $1
              AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $2 AND h.message_id = m.id)
              ORDER BY m.seq DESC LIMIT 1")
        });
        let last = sqlx::query_as::<_, MsgRow>(SQL.as_str())
            .bind(&row.id)
            .bind(user)
            .fetch_optional(&mut *c)
            .await?;
        let last_message = match last {
            Some(row) => {
                let mut m = self.message_view(c, row).await?;
                Self::fill_reactions(c, Some(user), std::slice::from_mut(&mut m)).await?;
                Some(m)
            }
            None => None,
        };
        let unread: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND seq > $2
             AND (sender_id <> $3 OR webhook_id IS NOT NULL) AND NOT deleted AND kind <> 'system'",
        )
        .bind(&row.id)
        .bind(row.last_read_seq)
        .bind(user)
        .fetch_one(&mut *c)
        .await?;
        let unread_mentions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mentions WHERE user_id = $1 AND conversation_id = $2 AND seq > $3",
        )
        .bind(user)
        .bind(&row.id)
        .bind(row.last_read_seq)
        .fetch_one(&mut *c)
        .await?;
        let kind = if row.kind == "direct" {
            p::ConversationKind::Direct
        } else {
            p::ConversationKind::Group
        };
        let (peer, peer_last_read_seq) = if kind == p::ConversationKind::Direct {
            let peer_row: Option<(String, i64)> = sqlx::query_as(
                "SELECT user_id, last_read_seq FROM members WHERE conversation_id = $1 AND user_id <> $2",
            )
            .bind(&row.id)
            .bind(user)
            .fetch_optional(&mut *c)
            .await?;
            match peer_row {
                Some((pid, read)) => (Some(self.public_user(c, user, &pid).await?), Some(read)),
                None => (None, None),
            }
        } else {
            (None, None)
        };
        Ok(p::Conversation {
            id: row.id,
            kind,
            name: row.name,
            avatar_url: avatar_url(row.avatar_media_id.as_deref()),
            description: row.description,
            public: row.public,
            created_at: rfc3339(row.created_at),
            last_message,
            unread_count: unread,
            my_role: p::Role::parse(&row.role).unwrap_or(p::Role::Member),
            last_read_seq: row.last_read_seq,
            member_count: row.member_count,
            peer,
            last_seq: row.last_seq,
            peer_last_read_seq,
            muted_until: row.muted_until.filter(|t| *t > now_ms()).map(rfc3339),
            unread_mentions,
            mute_mentions: row
                .muted_until
                .filter(|t| *t > now_ms())
                .map(|_| row.mute_mentions),
        })
    }

    pub(super) async fn insert_member(
        c: &mut Conn<B>,
        conv: &str,
        user: &str,
        role: p::Role,
    ) -> Result<()> {
        // New members start "read up to now": history is visible, but not unread.
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_pos, last_read_seq)
             VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(pos), 0) FROM events),
                     (SELECT last_seq FROM conversations WHERE id = $1))",
        )
        .bind(conv)
        .bind(user)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    /// Sets a member's role and tells the members (`member.updated`).
    pub(super) async fn change_role(
        w: &mut WriteTx<'_, B>,
        conv: &str,
        user: &str,
        role: p::Role,
    ) -> Result<()> {
        sqlx::query("UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2")
            .bind(conv)
            .bind(user)
            .bind(role.as_str())
            .execute(w.conn())
            .await?;
        let frame = ServerFrame::MemberUpdated {
            conversation_id: conv.to_owned(),
            user_id: user.to_owned(),
            role: Some(role),
            stream_pos: None,
        };
        w.emit_conv(conv, &frame).await.map(|_| ())
    }

    /// Adds a member and tells everyone: `member.added` to the members, a system message, and
    /// the conversation itself to the newcomer.
    pub(super) async fn join(
        &self,
        w: &mut WriteTx<'_, B>,
        conv: &str,
        user: &str,
        actor: &str,
    ) -> Result<()> {
        Self::insert_member(w.conn(), conv, user, p::Role::Member).await?;
        let frame = ServerFrame::MemberAdded {
            conversation_id: conv.to_owned(),
            user_id: user.to_owned(),
            role: Some(p::Role::Member),
            stream_pos: None,
        };
        w.emit_conv(conv, &frame).await?;
        let name = Self::display_name(w.conn(), user).await?;
        let body = if actor == user {
            format!("{name} joined the group")
        } else {
            let by = Self::display_name(w.conn(), actor).await?;
            format!("{by} added {name}")
        };
        Self::system_message(w, conv, actor, body).await?;
        let view = self.conv_view(w.conn(), user, conv).await?;
        w.emit_user(
            user,
            &ServerFrame::ConversationUpdated {
                conversation: view,
                stream_pos: None,
            },
        )
        .await?;
        Ok(())
    }

    /// Sends every member their own view of the conversation.
    pub(super) async fn emit_conversation_updated(
        &self,
        w: &mut WriteTx<'_, B>,
        conv: &str,
    ) -> Result<()> {
        for m in Self::member_ids(w.conn(), conv).await? {
            let view = self.conv_view(w.conn(), &m, conv).await?;
            w.emit_user(
                &m,
                &ServerFrame::ConversationUpdated {
                    conversation: view,
                    stream_pos: None,
                },
            )
            .await?;
        }
        Ok(())
    }

    pub(super) async fn member_view(
        &self,
        c: &mut Conn<B>,
        viewer: &str,
        conv: &str,
        user: &str,
    ) -> Result<p::Member> {
        let (role, joined_at, last_read): (String, i64, i64) = sqlx::query_as(
            "SELECT role, joined_at, last_read_seq FROM members WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conv)
        .bind(user)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| Error::not_found("member"))?;
        Ok(p::Member {
            user: self.public_user(c, viewer, user).await?,
            role: p::Role::parse(&role).unwrap_or(p::Role::Member),
            joined_at: rfc3339(joined_at),
            last_read_seq: last_read,
        })
    }
}

#[async_trait]
impl<B: Backend> Conversations for SqlStore<B>
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
    async fn open_direct(&self, user_id: &UserId, peer_id: &UserId) -> Result<p::Conversation> {
        let user_id = user_id.as_str();
        let peer_id = peer_id.as_str();
        if user_id == peer_id {
            return Err(Error::invalid(
                "user_id",
                "a direct conversation needs another person",
            ));
        }
        let key = if user_id < peer_id {
            format!("{user_id}:{peer_id}")
        } else {
            format!("{peer_id}:{user_id}")
        };
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let existing: Option<String> =
                sqlx::query_scalar("SELECT id FROM conversations WHERE direct_key = $1")
                    .bind(&key)
                    .fetch_optional(w.conn())
                    .await?;
            if let Some(id) = existing {
                // Existing conversations stay readable after an unfriending.
                return self.conv_view(w.conn(), user_id, &id).await;
            }
            Self::require_user(w.conn(), peer_id).await?;
            if Self::blocked_either(w.conn(), user_id, peer_id).await? {
                return Err(Error::new(
                    ErrorCode::Blocked,
                    "you cannot message this person",
                ));
            }
            // A direct chat with a bot needs no friendship.
            if !Self::are_friends(w.conn(), user_id, peer_id).await?
                && !Self::live_bot(w.conn(), peer_id).await?
            {
                return Err(Error::new(
                    ErrorCode::NotFriends,
                    "you can only message your friends",
                ));
            }
            let id = new_id();
            let now = now_ms();
            sqlx::query(
                "INSERT INTO conversations (id, kind, direct_key, created_at, last_activity_at) VALUES ($1, 'direct', $2, $3, $3)",
            )
            .bind(&id)
            .bind(&key)
            .bind(now)
            .execute(w.conn())
            .await?;
            Self::insert_member(w.conn(), &id, user_id, p::Role::Member).await?;
            Self::insert_member(w.conn(), &id, peer_id, p::Role::Member).await?;
            let peer_view = self.conv_view(w.conn(), peer_id, &id).await?;
            w.emit_user(peer_id,
                &ServerFrame::ConversationUpdated {
                    conversation: peer_view,
                    stream_pos: None,
                },
            )
            .await?;
            let view = self.conv_view(w.conn(), user_id, &id).await?;
            w.emit_user(user_id,
                &ServerFrame::ConversationUpdated {
                    conversation: view.clone(),
                    stream_pos: None,
                },
            )
            .await?;
            Ok(view)
        }
        .await;
        w.finish(out).await
    }

    async fn create_group(&self, user_id: &UserId, g: NewGroup) -> Result<p::Conversation> {
        let user_id = user_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            if Self::user_is_bot(w.conn(), user_id).await? {
                return Err(Error::forbidden("a bot cannot own a group"));
            }
            let mut ids: Vec<&str> = Vec::new();
            for m in g.member_ids.iter().map(UserId::as_str) {
                if m == user_id || ids.contains(&m) {
                    continue;
                }
                Self::require_user(w.conn(), m).await?;
                // Bots join like friends.
                if !Self::are_friends(w.conn(), user_id, m).await?
                    && !Self::live_bot(w.conn(), m).await?
                {
                    return Err(Error::new(
                        ErrorCode::NotFriends,
                        "you can only add your friends to a group",
                    ));
                }
                ids.push(m);
            }
            let id = new_id();
            let now = now_ms();
            let avatar = g.avatar_media_id.as_ref().map(MediaId::as_str);
            if let Some(media_id) = avatar {
                Self::adopt_avatar(w.conn(), user_id, media_id).await?;
            }
            sqlx::query(
                "INSERT INTO conversations (id, kind, name, name_key, description, public, avatar_media_id, created_at, last_activity_at)
                 VALUES ($1, 'group', $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(&g.name)
            .bind(g.name.to_lowercase())
            .bind(&g.description)
            .bind(g.public)
            .bind(avatar)
            .bind(now)
            .execute(w.conn())
            .await?;
            Self::insert_member(w.conn(), &id, user_id, p::Role::Owner).await?;
            let owner_name = Self::display_name(w.conn(), user_id).await?;
            Self::system_message(&mut w, &id,
                user_id,
                format!("{owner_name} created the group"),
            )
            .await?;
            for m in &ids {
                Self::insert_member(w.conn(), &id, m, p::Role::Member).await?;
            }
            if !ids.is_empty() {
                let mut names = Vec::new();
                for m in &ids {
                    names.push(Self::display_name(w.conn(), m).await?);
                }
                Self::system_message(&mut w, &id,
                    user_id,
                    format!("{owner_name} added {}", names.join(", ")),
                )
                .await?;
            }
            self.emit_conversation_updated(&mut w, &id)
                .await?;
            self.conv_view(w.conn(), user_id, &id).await
        }
        .await;
        w.finish(out).await
    }

    async fn conversations(&self, user_id: &UserId) -> Result<Vec<p::Conversation>> {
        let user_id = user_id.as_str();
        let mut c = self.read.acquire().await?;
        let rows = sqlx::query_as::<_, ConvRow>(
            "SELECT c.id, c.kind, c.name, c.description, c.avatar_media_id, c.public, c.created_at, c.last_seq,
                    m.role, m.last_read_seq, m.muted_until, m.mute_mentions,
                    (SELECT COUNT(*) FROM members x WHERE x.conversation_id = c.id) AS member_count
             FROM members m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.user_id = $1 ORDER BY c.last_activity_at DESC, c.id DESC",
        )
        .bind(user_id)
        .fetch_all(&mut *c)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.conv_from_row(&mut c, user_id, row).await?);
        }
        Ok(out)
    }

    async fn conversation(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<p::Conversation> {
        let user_id = user_id.as_str();
        let conversation_id = conversation_id.as_str();
        let mut c = self.read.acquire().await?;
        self.conv_view(&mut c, user_id, conversation_id).await
    }

    async fn update_group(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        patch: GroupPatch,
    ) -> Result<p::Conversation> {
        let user_id = user_id.as_str();
        let group_id = group_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let role = Self::group_role(w.conn(), group_id, user_id).await?;
            if role < p::Role::Admin {
                return Err(Error::forbidden(
                    "only admins and the owner can change the group",
                ));
            }
            let actor = Self::display_name(w.conn(), user_id).await?;
            if let Some(name) = &patch.name {
                let old: Option<String> =
                    sqlx::query_scalar("SELECT name FROM conversations WHERE id = $1")
                        .bind(group_id)
                        .fetch_one(w.conn())
                        .await?;
                if old.as_deref() != Some(name.as_str()) {
                    sqlx::query("UPDATE conversations SET name = $2, name_key = $3 WHERE id = $1")
                        .bind(group_id)
                        .bind(name)
                        .bind(name.to_lowercase())
                        .execute(w.conn())
                        .await?;
                    Self::system_message(
                        &mut w,
                        group_id,
                        user_id,
                        format!("{actor} renamed the group to {name}"),
                    )
                    .await?;
                }
            }
            let avatar = patch.avatar_media_id.as_ref().map(MediaId::as_str);
            if let Some(media_id) = avatar {
                Self::adopt_avatar(w.conn(), user_id, media_id).await?;
            }
            // One statement: absent fields keep their value; an empty description clears it.
            let description = patch.description.as_deref().filter(|d| !d.is_empty());
            sqlx::query(
                "UPDATE conversations SET
                     description = CASE WHEN $2 THEN $3 ELSE description END,
                     avatar_media_id = COALESCE($4, avatar_media_id),
                     public = COALESCE($5, public)
                 WHERE id = $1",
            )
            .bind(group_id)
            .bind(patch.description.is_some())
            .bind(description)
            .bind(avatar)
            .bind(patch.public)
            .execute(w.conn())
            .await?;
            self.emit_conversation_updated(&mut w, group_id).await?;
            self.conv_view(w.conn(), user_id, group_id).await
        }
        .await;
        w.finish(out).await
    }

    async fn group_directory(
        &self,
        user_id: &UserId,
        q: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::GroupSummary>> {
        let user_id = user_id.as_str();
        #[derive(FromRow)]
        struct Row {
            id: String,
            name: Option<String>,
            description: Option<String>,
            avatar_media_id: Option<String>,
            created_at: i64,
            member_count: i64,
            joined: bool,
        }
        let pattern = format!("%{}", like_prefix(&q.trim().to_lowercase()));
        let rows = sqlx::query_as::<_, Row>(
            "SELECT c.id, c.name, c.description, c.avatar_media_id, c.created_at,
                    (SELECT COUNT(*) FROM members x WHERE x.conversation_id = c.id) AS member_count,
                    EXISTS (SELECT 1 FROM members y WHERE y.conversation_id = c.id AND y.user_id = $2) AS joined
             FROM conversations c
             WHERE c.kind = 'group' AND c.public AND c.name_key LIKE $1 ESCAPE '\\'
             ORDER BY member_count DESC, c.name_key, c.id LIMIT $3 OFFSET $4",
        )
        .bind(pattern)
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| p::GroupSummary {
                avatar_url: avatar_url(r.avatar_media_id.as_deref()),
                id: r.id,
                kind: p::ConversationKind::Group,
                name: r.name,
                description: r.description,
                public: true,
                created_at: rfc3339(r.created_at),
                member_count: r.member_count,
                joined: r.joined,
            })
            .collect())
    }

    async fn join_group(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
    ) -> Result<p::Conversation> {
        let user_id = user_id.as_str();
        let group_id = group_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let row: Option<(String, bool)> =
                sqlx::query_as("SELECT kind, public FROM conversations WHERE id = $1")
                    .bind(group_id)
                    .fetch_optional(w.conn())
                    .await?;
            let is_member = Self::role_of(w.conn(), group_id, user_id).await?.is_some();
            match row {
                Some((kind, _)) if kind == "group" && is_member => {}
                // A private group is indistinguishable from a missing one to outsiders.
                Some((kind, true)) if kind == "group" => {
                    self.join(&mut w, group_id, user_id, user_id).await?
                }
                _ => return Err(Error::not_found("group")),
            }
            self.conv_view(w.conn(), user_id, group_id).await
        }
        .await;
        w.finish(out).await
    }

    async fn create_invite(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        ttl_secs: i64,
    ) -> Result<p::Invite> {
        let user_id = user_id.as_str();
        let group_id = group_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let role = Self::group_role(w.conn(), group_id, user_id).await?;
            if role < p::Role::Admin {
                return Err(Error::forbidden(
                    "only admins and the owner can create invites",
                ));
            }
            let code = crate::secrets::random_code();
            let now = now_ms();
            let expires = now + ttl_secs * 1000;
            sqlx::query("INSERT INTO invites (code, conversation_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&code)
                .bind(group_id)
                .bind(user_id)
                .bind(now)
                .bind(expires)
                .execute(w.conn())
                .await?;
            Ok(p::Invite {
                code,
                expires_at: rfc3339(expires),
            })
        }
        .await;
        w.finish(out).await
    }

    async fn accept_invite(&self, user_id: &UserId, code: &str) -> Result<p::Conversation> {
        let user_id = user_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT conversation_id, expires_at FROM invites WHERE code = $1")
                    .bind(code)
                    .fetch_optional(w.conn())
                    .await?;
            let group = match row {
                Some((g, exp)) if exp > now_ms() => g,
                _ => {
                    return Err(Error::new(
                        ErrorCode::NotFound,
                        "invite not found or expired",
                    ));
                }
            };
            if Self::role_of(w.conn(), &group, user_id).await?.is_none() {
                self.join(&mut w, &group, user_id, user_id).await?;
            }
            self.conv_view(w.conn(), user_id, &group).await
        }
        .await;
        w.finish(out).await
    }

    async fn members(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::Member>> {
        let user_id = user_id.as_str();
        let group_id = group_id.as_str();
        let mut c = self.read.acquire().await?;
        Self::group_role(&mut c, group_id, user_id).await?;
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserRow,
            role: String,
            joined_at: i64,
            last_read_seq: i64,
        }
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!("SELECT {USER_COLUMNS}, m.role, m.joined_at, m.last_read_seq FROM members m JOIN users u ON u.id = m.user_id
               WHERE m.conversation_id = $1
               ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, m.joined_at, u.id
               LIMIT $2 OFFSET $3")
        });
        let rows = sqlx::query_as::<_, Row>(SQL.as_str())
            .bind(group_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *c)
            .await?;
        let visible = Self::presence_set(&mut c, user_id).await?;
        Ok(rows
            .iter()
            .map(|r| p::Member {
                user: self.user_from_row(&r.user, visible.contains(&r.user.id)),
                role: p::Role::parse(&r.role).unwrap_or(p::Role::Member),
                joined_at: rfc3339(r.joined_at),
                last_read_seq: r.last_read_seq,
            })
            .collect())
    }

    async fn add_members(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        user_ids: Vec<UserId>,
    ) -> Result<Vec<p::Member>> {
        let user_id = user_id.as_str();
        let group_id = group_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let role = Self::group_role(w.conn(), group_id, user_id).await?;
            if role < p::Role::Admin {
                return Err(Error::forbidden(
                    "only admins and the owner can add members",
                ));
            }
            let mut added = Vec::new();
            for target in user_ids.iter().map(UserId::as_str) {
                Self::require_user(w.conn(), target).await?;
                if Self::role_of(w.conn(), group_id, target).await?.is_some() {
                    continue;
                }
                // A group admin may add a bot as if it were a friend.
                if !Self::are_friends(w.conn(), user_id, target).await?
                    && !Self::live_bot(w.conn(), target).await?
                {
                    return Err(Error::new(
                        ErrorCode::NotFriends,
                        "you can only add your friends",
                    ));
                }
                self.join(&mut w, group_id, target, user_id).await?;
                added.push(
                    self.member_view(w.conn(), user_id, group_id, target)
                        .await?,
                );
            }
            Ok(added)
        }
        .await;
        w.finish(out).await
    }

    async fn remove_member(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        target: &UserId,
    ) -> Result<()> {
        let user_id = user_id.as_str();
        let group_id = group_id.as_str();
        let target = target.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let my_role = Self::group_role(w.conn(), group_id, user_id).await?;
            let their_role = Self::role_of(w.conn(), group_id, target)
                .await?
                .ok_or_else(|| Error::not_found("member"))?;
            let leaving = user_id == target;
            if leaving && my_role == p::Role::Owner {
                return Err(Error::forbidden(
                    "the owner must transfer ownership before leaving",
                ));
            }
            if !leaving {
                let allowed = match my_role {
                    p::Role::Owner => true,
                    p::Role::Admin => their_role == p::Role::Member,
                    p::Role::Member => false,
                };
                if !allowed {
                    return Err(Error::forbidden(
                        "your role does not allow removing this member",
                    ));
                }
            }
            sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
                .bind(group_id)
                .bind(target)
                .execute(w.conn())
                .await?;
            let frame = ServerFrame::MemberRemoved {
                conversation_id: group_id.to_owned(),
                user_id: target.to_owned(),
                role: Some(their_role),
                stream_pos: None,
            };
            // The remaining members and the person removed each get it; after this, the
            // removed person receives nothing more from the conversation.
            w.emit_conv(group_id, &frame).await?;
            w.emit_user(target, &frame).await?;
            let name = Self::display_name(w.conn(), target).await?;
            let body = if leaving {
                format!("{name} left the group")
            } else {
                let by = Self::display_name(w.conn(), user_id).await?;
                format!("{by} removed {name}")
            };
            Self::system_message(&mut w, group_id, user_id, body).await?;
            Ok(())
        }
        .await;
        w.finish(out).await
    }

    async fn set_role(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        target: &UserId,
        role: p::Role,
    ) -> Result<p::Member> {
        let user_id = user_id.as_str();
        let group_id = group_id.as_str();
        let target = target.as_str();
        if role == p::Role::Owner {
            return Err(Error::invalid(
                "role",
                "use POST /groups/{id}/transfer to hand over ownership",
            ));
        }
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let my_role = Self::group_role(w.conn(), group_id, user_id).await?;
            if my_role != p::Role::Owner {
                return Err(Error::forbidden("only the owner can change roles"));
            }
            let current = Self::role_of(w.conn(), group_id, target)
                .await?
                .ok_or_else(|| Error::not_found("member"))?;
            if current == p::Role::Owner {
                return Err(Error::forbidden(
                    "the owner's role changes only by transfer",
                ));
            }
            if current != role {
                Self::change_role(&mut w, group_id, target, role).await?;
                let by = Self::display_name(w.conn(), user_id).await?;
                let name = Self::display_name(w.conn(), target).await?;
                let body = match role {
                    p::Role::Admin => format!("{by} made {name} an admin"),
                    _ => format!("{by} made {name} a member"),
                };
                Self::system_message(&mut w, group_id, user_id, body).await?;
            }
            self.member_view(w.conn(), user_id, group_id, target).await
        }
        .await;
        w.finish(out).await
    }

    async fn transfer_ownership(
        &self,
        user_id: &UserId,
        group_id: &ConversationId,
        target: &UserId,
    ) -> Result<p::Conversation> {
        let user_id = user_id.as_str();
        let group_id = group_id.as_str();
        let target = target.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let my_role = Self::group_role(w.conn(), group_id, user_id).await?;
            if my_role != p::Role::Owner {
                return Err(Error::forbidden("only the owner can transfer ownership"));
            }
            if target == user_id {
                return Err(Error::invalid("user_id", "you already own this group"));
            }
            Self::role_of(w.conn(), group_id, target)
                .await?
                .ok_or_else(|| Error::not_found("member"))?;
            if Self::user_is_bot(w.conn(), target).await? {
                return Err(Error::forbidden("a bot cannot own a group"));
            }
            for (who, role) in [(target, p::Role::Owner), (user_id, p::Role::Admin)] {
                Self::change_role(&mut w, group_id, who, role).await?;
            }
            let by = Self::display_name(w.conn(), user_id).await?;
            let name = Self::display_name(w.conn(), target).await?;
            Self::system_message(
                &mut w,
                group_id,
                user_id,
                format!("{by} made {name} the owner"),
            )
            .await?;
            self.emit_conversation_updated(&mut w, group_id).await?;
            self.conv_view(w.conn(), user_id, group_id).await
        }
        .await;
        w.finish(out).await
    }

    async fn member_ids_if_member(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
    ) -> Result<Option<Vec<UserId>>> {
        let user_id = user_id.as_str();
        let conversation_id = conversation_id.as_str();
        let mut c = self.read.acquire().await?;
        let ids = Self::member_ids(&mut c, conversation_id).await?;
        Ok(if ids.iter().any(|i| i == user_id) {
            Some(ids.into_iter().map(UserId::trusted).collect())
        } else {
            None
        })
    }
}
