//! Messages: the group-commit send (checks and writes of a whole batch in one transaction),
//! history pages, edits, deletions (for everyone or just me) and read markers.
//!
//! `seq` is assigned inside the committing transaction (`next_seq`), so it is never handed
//! out for a message that does not commit. A backend may commit batches its own way
//! ([`Backend::blocking_committer`]: SQLite's message writer thread); both gather the facts
//! of a send with their own queries and leave every decision to `store::send_rules`, so the
//! rules exist once. A rule failure answers its one message and must not write anything.
//!
//! Writing a message also writes what is derived from it in the same transaction: the rows
//! of the users it mentions (`mentions`, for unread counts); the search index follows it
//! (`search.rs`). Reactions live in `reactions.rs`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use chatnode_protocol::{self as p, ServerFrame};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::{Backend, Conn, SendResults, SqlStore, WriteTx};
use crate::crypto::{Keyring, column};
use crate::domain::{ConversationId, UserId};
use crate::error::{Error, Result};
use crate::store::send_rules::{
    self, Accepted, ConversationFacts, SendFacts, mentions_column, parse_mentions,
};
use crate::store::{
    BlockingCommitter, HistoryPage, MediaRecord, Messages, NewMessage, SendOutcome,
};
use crate::time::{new_id, now_ms, rfc3339};

/// The columns of a [`MsgRow`], for `SELECT {MESSAGE_COLUMNS} FROM messages m …`.
pub(super) const MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.seq, m.sender_id, m.client_id, m.kind, m.body, m.reply_to_seq, m.created_at, m.edited_at, m.deleted, m.mentions, m.webhook_id, m.webhook_name";

/// What checking a send found (see `check_send`).
pub(super) enum SendCheck {
    /// The `client_id` was used before: this is that message.
    Existing(Box<p::Message>),
    /// A new message may be written.
    New(Accepted),
}

/// The query that starts checking a send, one row: an earlier message of the sender's with
/// the same `client_id`; the conversation's kind and the sender's role (if a member); a
/// direct chat's other member; whether either blocked the other; whether they are friends;
/// whether either is a bot. Shared with the SQLite writer (`?N` there).
pub(crate) const SEND_CHECK_SQL: &str = "WITH p AS (SELECT user_id AS id FROM members WHERE conversation_id = $1 AND user_id <> $2 LIMIT 1)
     SELECT (SELECT id FROM messages WHERE sender_id = $2 AND client_id = $3),
            (SELECT c.kind FROM conversations c WHERE c.id = $1),
            (SELECT m.role FROM members m WHERE m.conversation_id = $1 AND m.user_id = $2),
            (SELECT id FROM p),
            EXISTS (SELECT 1 FROM blocks b JOIN p
                     ON (b.blocker_id = $2 AND b.blocked_id = p.id) OR (b.blocker_id = p.id AND b.blocked_id = $2)),
            EXISTS (SELECT 1 FROM friendships f JOIN p ON f.user_id = $2 AND f.friend_id = p.id),
            EXISTS (SELECT 1 FROM users u WHERE u.bot_owner_id IS NOT NULL
                     AND (u.id = $2 OR u.id IN (SELECT id FROM p))),
            (SELECT last_seq FROM conversations WHERE id = $1)";

/// The row of [`SEND_CHECK_SQL`].
pub(crate) type SendCheckRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
    bool,
    bool,
    Option<i64>,
);

/// A member of a conversation by username (a mention): `(conversation, username_key)`.
pub(crate) const MEMBER_BY_NAME_SQL: &str =
    "SELECT u.id FROM users u JOIN members m ON m.user_id = u.id
     WHERE m.conversation_id = $1 AND u.username_key = $2";

/// What a [`SendCheckRow`] says about the sender's membership (None: not a member), given the
/// group's members when it is a group.
pub(crate) fn conversation_facts(
    sender: &str,
    row: &SendCheckRow,
    group_members: impl FnOnce() -> Result<Arc<[String]>>,
) -> Result<Option<ConversationFacts>> {
    let (_, kind, role, peer, blocked, friends, with_bot, _) = row;
    let (Some(kind), Some(role)) = (kind, role) else {
        return Ok(None);
    };
    let direct = kind == "direct";
    let members: Arc<[String]> = if direct {
        let mut list = vec![sender.to_owned()];
        list.extend(peer.clone());
        list.into()
    } else {
        group_members()?
    };
    Ok(Some(ConversationFacts {
        direct,
        sender_role: p::Role::parse(role).unwrap_or(p::Role::Member),
        peer: if direct { peer.clone() } else { None },
        blocked: *blocked,
        friends: *friends,
        with_bot: *with_bot,
        members,
    }))
}

/// A message as stored (body sealed).
#[derive(FromRow)]
pub(super) struct MsgRow {
    pub(super) id: String,
    pub(super) conversation_id: String,
    pub(super) seq: i64,
    pub(super) sender_id: String,
    pub(super) client_id: String,
    pub(super) kind: String,
    pub(super) body: String,
    pub(super) reply_to_seq: Option<i64>,
    pub(super) created_at: i64,
    pub(super) edited_at: Option<i64>,
    pub(super) deleted: bool,
    pub(super) mentions: Option<String>,
    pub(super) webhook_id: Option<String>,
    pub(super) webhook_name: Option<String>,
}

impl MsgRow {
    pub(super) fn into_message(self, keys: &Keyring) -> Result<p::Message> {
        Ok(p::Message {
            id: self.id,
            conversation_id: self.conversation_id,
            seq: self.seq,
            sender_id: self.sender_id,
            client_id: self.client_id,
            kind: p::MessageKind::parse(&self.kind).unwrap_or(p::MessageKind::Text),
            body: if self.deleted {
                String::new()
            } else {
                keys.decrypt(column::MESSAGE_BODY, &self.body)?
            },
            attachments: Vec::new(),
            reply_to_seq: self.reply_to_seq,
            created_at: rfc3339(self.created_at),
            edited_at: self.edited_at.map(rfc3339),
            deleted: self.deleted,
            reactions: Vec::new(),
            mentions: if self.deleted {
                Vec::new()
            } else {
                parse_mentions(self.mentions.as_deref())
            },
            via_webhook: match (self.webhook_id, self.webhook_name) {
                (Some(id), Some(name)) => Some(p::WebhookRef { id, name }),
                _ => None,
            },
        })
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
    pub(super) async fn message_by_seq(
        c: &mut Conn<B>,
        conv: &str,
        seq: i64,
    ) -> Result<Option<MsgRow>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = $1 AND m.seq = $2"
            )
        });
        Ok(sqlx::query_as::<_, MsgRow>(SQL.as_str())
            .bind(conv)
            .bind(seq)
            .fetch_optional(&mut *c)
            .await?)
    }

    /// [`Self::message_by_seq`] in a write transaction, the row locked until it ends
    /// (PostgreSQL; SQLite's single writer needs no lock). An edit or a deletion reads the
    /// text whose search terms it removes this way: a search indexer pass holding the row
    /// (`FOR SHARE`, `pg_batch.rs`) finishes first and its terms are then removed, or the
    /// pass waits and reads the new text.
    pub(super) async fn message_locked(
        c: &mut Conn<B>,
        conv: &str,
        seq: i64,
    ) -> Result<Option<MsgRow>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = $1 AND m.seq = $2{}",
            B::ROW_LOCK
        );
        Ok(sqlx::query_as::<_, MsgRow>(sqlx::AssertSqlSafe(sql))
            .bind(conv)
            .bind(seq)
            .fetch_optional(&mut *c)
            .await?)
    }

    /// Assigns the next `seq` of a conversation. Runs inside the committing transaction, so a
    /// `seq` is never handed out for a message that does not commit.
    pub(super) async fn next_seq(c: &mut Conn<B>, conv: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = $2 WHERE id = $1 RETURNING last_seq",
        )
        .bind(conv)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    /// The attachments of a message, in order.
    pub(super) async fn attachments(
        &self,
        c: &mut Conn<B>,
        message_id: &str,
    ) -> Result<Vec<p::Media>> {
        let rows = sqlx::query_as::<_, MediaRecord>(
            "SELECT md.* FROM message_media mm JOIN media md ON md.id = mm.media_id
             WHERE mm.message_id = $1 ORDER BY mm.position",
        )
        .bind(message_id)
        .fetch_all(&mut *c)
        .await?;
        Ok(self
            .open_media_all(rows)?
            .iter()
            .map(MediaRecord::to_protocol)
            .collect())
    }

    /// A stored message as the wire shows it, attachments included.
    pub(super) async fn message_view(&self, c: &mut Conn<B>, row: MsgRow) -> Result<p::Message> {
        let has_media = matches!(row.kind.as_str(), "image" | "file" | "video" | "audio");
        let mut m = row.into_message(&self.keys)?;
        if has_media && !m.deleted {
            m.attachments = self.attachments(c, &m.id).await?;
        }
        Ok(m)
    }

    /// The uploads of `owner` that `ids` name, in order (None where there is no such upload
    /// of theirs); the rules decide what is wrong with them.
    pub(super) async fn owned_media(
        &self,
        c: &mut Conn<B>,
        owner: &str,
        ids: &[String],
    ) -> Result<Vec<Option<MediaRecord>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let rec = sqlx::query_as::<_, MediaRecord>(
                "SELECT * FROM media WHERE id = $1 AND owner_id = $2",
            )
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *c)
            .await?;
            out.push(rec.map(|r| self.open_media(r)).transpose()?);
        }
        Ok(out)
    }

    /// The members of `conv` written as `@name` in `body`: `(username_key, user_id)`.
    pub(super) async fn named_members(
        c: &mut Conn<B>,
        conv: &str,
        body: &str,
    ) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        if !body.contains('@') {
            return Ok(out);
        }
        for name in send_rules::mentioned_names(body) {
            let id: Option<String> = sqlx::query_scalar(MEMBER_BY_NAME_SQL)
                .bind(conv)
                .bind(&name)
                .fetch_optional(&mut *c)
                .await?;
            if let Some(id) = id {
                out.push((name, id));
            }
        }
        Ok(out)
    }

    /// Replaces the rows of the users a message mentions (a new message has none yet).
    pub(super) async fn write_mentions(
        c: &mut Conn<B>,
        conv: &str,
        seq: i64,
        old: &[String],
        new: &[String],
    ) -> Result<()> {
        for u in old.iter().filter(|u| !new.contains(u)) {
            sqlx::query(
                "DELETE FROM mentions WHERE user_id = $1 AND conversation_id = $2 AND seq = $3",
            )
            .bind(u)
            .bind(conv)
            .bind(seq)
            .execute(&mut *c)
            .await?;
        }
        for u in new.iter().filter(|u| !old.contains(u)) {
            sqlx::query(
                "INSERT INTO mentions (user_id, conversation_id, seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(u)
            .bind(conv)
            .bind(seq)
            .execute(&mut *c)
            .await?;
        }
        Ok(())
    }

    /// Writes a `system` message (it mentions nobody and has no attachments).
    pub(super) async fn insert_message(
        w: &mut WriteTx<'_, B>,
        m: &NewMessage,
    ) -> Result<p::Message> {
        let members = Self::member_ids(w.conn(), m.conversation_id.as_str()).await?;
        let accepted = Accepted {
            members: members.into(),
            media: Vec::new(),
            mentions: Vec::new(),
        };
        Self::insert_message_with(w, m, accepted).await
    }

    /// Writes a message, its event and its mentions (the search indexer follows; see
    /// `search.rs`).
    pub(super) async fn insert_message_with(
        w: &mut WriteTx<'_, B>,
        m: &NewMessage,
        accepted: Accepted,
    ) -> Result<p::Message> {
        let Accepted {
            members,
            media,
            mentions,
        } = accepted;
        let media = &media[..];
        let now = now_ms();
        let seq = Self::next_seq(w.conn(), m.conversation_id.as_str(), now).await?;
        let message = m.committed(seq, media, mentions, rfc3339(now));
        let frame = ServerFrame::Message {
            message: message.clone(),
            stream_pos: None,
        };
        // The event first: the message row keeps its position (see migration 0008).
        let pos = w
            .emit(
                Some(m.conversation_id.as_str()),
                None,
                &frame,
                members.to_vec(),
            )
            .await?;
        let (webhook_id, webhook_name) = match &m.via_webhook {
            Some(h) => (Some(h.id.as_str()), Some(h.name.as_str())),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, kind, body, reply_to_seq, created_at, pos, mentions, webhook_id, webhook_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&message.id)
        .bind(m.conversation_id.as_str())
        .bind(seq)
        .bind(m.sender_id.as_str())
        .bind(&m.client_id)
        .bind(m.kind.as_str())
        .bind(w.seal(column::MESSAGE_BODY, &m.body))
        .bind(m.reply_to_seq)
        .bind(now)
        .bind(pos)
        .bind(mentions_column(&message.mentions))
        .bind(webhook_id)
        .bind(webhook_name)
        .execute(w.conn())
        .await?;
        Self::write_mentions(
            w.conn(),
            m.conversation_id.as_str(),
            seq,
            &[],
            &message.mentions,
        )
        .await?;
        for (i, md) in media.iter().enumerate() {
            sqlx::query("INSERT INTO message_media (message_id, media_id, conversation_id, position) VALUES ($1, $2, $3, $4)")
                .bind(&message.id)
                .bind(&md.id)
                .bind(m.conversation_id.as_str())
                .bind(i as i64)
                .execute(w.conn())
                .await?;
            sqlx::query("UPDATE media SET attached_at = COALESCE(attached_at, $2) WHERE id = $1")
                .bind(&md.id)
                .bind(now)
                .execute(w.conn())
                .await?;
        }
        // Whoever writes has read everything up to their own message (a webhook's post is
        // not its creator's writing: it stays unread for them like for everyone).
        if m.via_webhook.is_none() {
            sqlx::query("UPDATE members SET last_read_seq = $3 WHERE conversation_id = $1 AND user_id = $2 AND last_read_seq < $3")
                .bind(m.conversation_id.as_str())
                .bind(m.sender_id.as_str())
                .bind(seq)
                .execute(w.conn())
                .await?;
        }
        Ok(message)
    }

    /// A `system` message in a group's timeline (joins, leaves, kicks, renames, roles).
    pub(super) async fn system_message(
        w: &mut WriteTx<'_, B>,
        conv: &str,
        actor: &str,
        body: String,
    ) -> Result<()> {
        // Both come from the database (or the caller's own checked IDs).
        let m = NewMessage {
            sender_id: UserId::trusted(actor),
            conversation_id: ConversationId::trusted(conv),
            client_id: format!("system:{}", new_id()),
            kind: p::MessageKind::System,
            body,
            attachment_ids: Vec::new(),
            reply_to_seq: None,
            via_webhook: None,
        };
        Self::insert_message(w, &m).await.map(|_| ())
    }

    /// A message's stream position (None for the rare row written before positions were).
    pub(super) async fn message_pos(c: &mut Conn<B>, conv: &str, seq: i64) -> Result<Option<i64>> {
        let pos: Option<Option<i64>> =
            sqlx::query_scalar("SELECT pos FROM messages WHERE conversation_id = $1 AND seq = $2")
                .bind(conv)
                .bind(seq)
                .fetch_optional(&mut *c)
                .await?;
        Ok(pos.flatten())
    }

    /// Deletes a message for everyone (its author, a group's admin, or a system admin
    /// moderating): the row stays, keeping its seq; its text, mentions, reactions and search
    /// terms are gone for good; members get a `message.deleted` event. Nothing happens to a
    /// message deleted already.
    pub(super) async fn erase_message(&self, w: &mut WriteTx<'_, B>, row: MsgRow) -> Result<()> {
        // Read again, locked (see `message_locked`).
        let Some(row) = Self::message_locked(w.conn(), &row.conversation_id, row.seq).await? else {
            return Ok(());
        };
        if row.deleted {
            return Ok(());
        }
        let conversation_id = row.conversation_id.as_str();
        let seq = row.seq;
        if let Some(pos) = Self::message_pos(w.conn(), conversation_id, seq).await? {
            let body = self.keys.decrypt(column::MESSAGE_BODY, &row.body)?;
            let terms = w.search_terms(conversation_id, &body);
            Self::remove_search_terms(w.conn(), &terms, pos).await?;
        }
        let mentioned = parse_mentions(row.mentions.as_deref());
        Self::write_mentions(w.conn(), conversation_id, seq, &mentioned, &[]).await?;
        sqlx::query("DELETE FROM reactions WHERE conversation_id = $1 AND seq = $2")
            .bind(conversation_id)
            .bind(seq)
            .execute(w.conn())
            .await?;
        sqlx::query("UPDATE messages SET deleted = TRUE, body = $3, original_body = NULL, mentions = NULL WHERE conversation_id = $1 AND seq = $2")
            .bind(conversation_id)
            .bind(seq)
            // Sealed like any body: every stored body is ciphertext, even an empty one.
            .bind(w.seal(column::MESSAGE_BODY, ""))
            .execute(w.conn())
            .await?;
        let frame = ServerFrame::MessageDeleted {
            conversation_id: conversation_id.to_owned(),
            seq,
            scope: Some(p::DeleteScope::Everyone),
            stream_pos: None,
        };
        w.emit_conv(conversation_id, &frame).await?;
        Ok(())
    }

    /// Checks a send without writing anything: the `client_id` first (a retry gets its
    /// original message), then the facts the rules need, then the rules
    /// (`send_rules::decide`). `group_members` caches a group's member list for a batch.
    pub(super) async fn check_send(
        &self,
        c: &mut Conn<B>,
        m: &NewMessage,
        group_members: &mut HashMap<String, Arc<[String]>>,
    ) -> Result<SendCheck> {
        let row: SendCheckRow = sqlx::query_as(SEND_CHECK_SQL)
            .bind(m.conversation_id.as_str())
            .bind(m.sender_id.as_str())
            .bind(&m.client_id)
            .fetch_one(&mut *c)
            .await?;
        if let Some(id) = &row.0 {
            static SQL: LazyLock<String> = LazyLock::new(|| {
                format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1")
            });
            let existing = sqlx::query_as::<_, MsgRow>(SQL.as_str())
                .bind(id)
                .fetch_one(&mut *c)
                .await?;
            if existing.conversation_id != m.conversation_id.as_str() {
                return Err(Error::conflict(
                    "client_id was already used for another conversation",
                ));
            }
            return Ok(SendCheck::Existing(Box::new(
                self.message_view(c, existing).await?,
            )));
        }
        let conv = m.conversation_id.as_str();
        let members = match group_members.get(conv) {
            Some(list) => Some(list.clone()),
            None if row.1.as_deref() == Some("group") && row.2.is_some() => {
                let list: Arc<[String]> = Self::member_ids(c, conv).await?.into();
                group_members.insert(conv.to_owned(), list.clone());
                Some(list)
            }
            None => None,
        };
        let conversation = conversation_facts(m.sender_id.as_str(), &row, || {
            Ok(members.clone().unwrap_or_else(|| Arc::from(Vec::new())))
        })?;
        let mut facts = SendFacts {
            conversation,
            ..SendFacts::default()
        };
        if facts.conversation.is_some() {
            if let Some(r) = m.reply_to_seq {
                facts.reply_found = Some(Self::message_by_seq(c, conv, r).await?.is_some());
            }
            facts.attachments = self
                .owned_media(c, m.sender_id.as_str(), &m.attachment_ids)
                .await?;
            facts.named_members = Self::named_members(c, conv, &m.body).await?;
        }
        Ok(SendCheck::New(send_rules::decide(m, facts)?))
    }

    /// One group-commit transaction. Rule failures answer just their message (they wrote
    /// nothing); a failing *write* returns `Err` after rolling everything back, and the
    /// caller retries the messages one transaction each.
    pub(super) async fn send_batch_once(&self, batch: &[NewMessage]) -> Result<SendResults> {
        if let Some(results) = B::send_batch_fast(self, batch).await? {
            return Ok(results);
        }
        let mut w = self.write_tx().await?;
        let mut results = Vec::with_capacity(batch.len());
        // A batch holds only messages, so a group's member list cannot change within it.
        let mut group_members = HashMap::new();
        for m in batch {
            match self.check_send(w.conn(), m, &mut group_members).await {
                Ok(SendCheck::Existing(message)) => results.push(Ok(SendOutcome {
                    message: *message,
                    created: false,
                })),
                Ok(SendCheck::New(accepted)) => {
                    let message = Self::insert_message_with(&mut w, m, accepted).await?;
                    results.push(Ok(SendOutcome {
                        message,
                        created: true,
                    }));
                }
                Err(e @ Error::Internal(_)) => return Err(e),
                Err(e) => results.push(Err(e)),
            }
        }
        w.finish(Ok(results)).await
    }
}

#[async_trait]
impl<B: Backend> Messages for SqlStore<B>
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
    fn blocking_committer(&self) -> Option<BlockingCommitter> {
        B::blocking_committer(self)
    }

    async fn send_messages(&self, batch: Vec<NewMessage>) -> Vec<Result<SendOutcome>> {
        let public = |e: Error| {
            if let Error::Internal(inner) = &e {
                tracing::error!(error = %format!("{inner:#}"), "message send failed");
            }
            let (code, msg) = e.public();
            Error::new(code, msg)
        };
        match self.send_batch_once(&batch).await {
            Ok(results) => results,
            Err(e) if batch.len() == 1 => vec![Err(public(e))],
            // One message broke the shared transaction: give each its own, so the others
            // still commit and only the culprit gets the error.
            Err(_) => {
                let mut out = Vec::with_capacity(batch.len());
                for m in batch {
                    out.push(match self.send_batch_once(std::slice::from_ref(&m)).await {
                        Ok(mut r) => r.pop().unwrap_or_else(|| Err(Error::not_found("message"))),
                        Err(e) => Err(public(e)),
                    });
                }
                out
            }
        }
    }

    async fn messages(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        page: HistoryPage,
        limit: i64,
    ) -> Result<(Vec<p::Message>, Option<i64>)> {
        let user_id = user_id.as_str();
        let conversation_id = conversation_id.as_str();
        let mut c = self.read.acquire().await?;
        if Self::role_of(&mut c, conversation_id, user_id)
            .await?
            .is_none()
        {
            return Err(Error::not_found("conversation"));
        }
        static NEWEST_FIRST: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = $1 AND m.seq < $3
                 AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $2 AND h.message_id = m.id)
                 ORDER BY m.seq DESC LIMIT $4"
            )
        });
        static OLDEST_FIRST: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = $1 AND m.seq > $3
                 AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $2 AND h.message_id = m.id)
                 ORDER BY m.seq ASC LIMIT $4"
            )
        });
        let q = match page {
            // The newest page is "before" a seq larger than any.
            HistoryPage::Latest | HistoryPage::Before(_) => {
                sqlx::query_as::<_, MsgRow>(NEWEST_FIRST.as_str())
                    .bind(conversation_id)
                    .bind(user_id)
                    .bind(match page {
                        HistoryPage::Before(s) => s,
                        _ => i64::MAX,
                    })
            }
            HistoryPage::After(s) => sqlx::query_as::<_, MsgRow>(OLDEST_FIRST.as_str())
                .bind(conversation_id)
                .bind(user_id)
                .bind(s),
        };
        let mut rows = q.bind(limit + 1).fetch_all(&mut *c).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(|r| r.seq)
        } else {
            None
        };
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            messages.push(self.message_view(&mut c, row).await?);
        }
        Self::fill_reactions(&mut c, Some(user_id), &mut messages).await?;
        Ok((messages, next))
    }

    async fn edit_message(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
        body: String,
    ) -> Result<p::Message> {
        let user_id = user_id.as_str();
        let conversation_id = conversation_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let role = Self::role_of(w.conn(), conversation_id, user_id)
                .await?
                .ok_or_else(|| Error::not_found("conversation"))?;
            let row = Self::message_locked(w.conn(), conversation_id, seq)
                .await?
                .ok_or_else(|| Error::not_found("message"))?;
            if row.sender_id != user_id || row.kind == "system" {
                return Err(Error::forbidden("only the author can edit a message"));
            }
            if row.deleted {
                return Err(Error::conflict("a deleted message cannot be edited"));
            }
            // Whom it mentions follows its text.
            let kind: String = sqlx::query_scalar("SELECT kind FROM conversations WHERE id = $1")
                .bind(conversation_id)
                .fetch_one(w.conn())
                .await?;
            let members = Self::member_ids(w.conn(), conversation_id).await?;
            let named = Self::named_members(w.conn(), conversation_id, &body).await?;
            let old_mentions = parse_mentions(row.mentions.as_deref());
            let kind_of_message = p::MessageKind::parse(&row.kind).unwrap_or(p::MessageKind::Text);
            let new_mentions = send_rules::mentions(
                &body,
                kind_of_message,
                kind == "group" && role >= p::Role::Admin,
                &members,
                &named,
            );
            // Its search terms follow its text too (only the current text matches).
            let old_body = self.keys.decrypt(column::MESSAGE_BODY, &row.body)?;
            let pos = Self::message_pos(w.conn(), conversation_id, seq).await?;
            if let Some(pos) = pos {
                let old_terms = w.search_terms(conversation_id, &old_body);
                Self::remove_search_terms(w.conn(), &old_terms, pos).await?;
                let new_terms = w.search_terms(conversation_id, &body);
                Self::add_search_terms(w.conn(), &new_terms, pos, seq).await?;
            }
            // The first edit keeps what was sent (sealed as it is), for replays of the
            // message's event (see `events.rs`).
            sqlx::query("UPDATE messages SET original_body = COALESCE(original_body, body), body = $3, edited_at = $4, mentions = $5 WHERE conversation_id = $1 AND seq = $2")
                .bind(conversation_id)
                .bind(seq)
                .bind(w.seal(column::MESSAGE_BODY, &body))
                .bind(now_ms())
                .bind(mentions_column(&new_mentions))
                .execute(w.conn())
                .await?;
            Self::write_mentions(w.conn(), conversation_id, seq, &old_mentions, &new_mentions)
                .await?;
            let row = Self::message_by_seq(w.conn(), conversation_id, seq)
                .await?
                .ok_or_else(|| Error::not_found("message"))?;
            let mut message = self.message_view(w.conn(), row).await?;
            // The event goes to everyone (`me` false); the answer is the editor's.
            let mut shared = message.clone();
            Self::fill_reactions(w.conn(), None, std::slice::from_mut(&mut shared)).await?;
            w.emit_conv(conversation_id,
                &ServerFrame::MessageUpdated {
                    message: shared,
                    stream_pos: None,
                },
            )
            .await?;
            Self::fill_reactions(w.conn(), Some(user_id), std::slice::from_mut(&mut message))
                .await?;
            Ok(message)
        }
        .await;
        w.finish(out).await
    }

    async fn delete_message(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
        for_everyone: bool,
    ) -> Result<()> {
        let user_id = user_id.as_str();
        let conversation_id = conversation_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let role = Self::role_of(w.conn(), conversation_id, user_id)
                .await?
                .ok_or_else(|| Error::not_found("conversation"))?;
            let row = Self::message_by_seq(w.conn(), conversation_id, seq)
                .await?
                .ok_or_else(|| Error::not_found("message"))?;
            if for_everyone {
                let kind: String =
                    sqlx::query_scalar("SELECT kind FROM conversations WHERE id = $1")
                        .bind(conversation_id)
                        .fetch_one(w.conn())
                        .await?;
                let moderator = kind == "group" && role >= p::Role::Admin;
                if row.sender_id != user_id && !moderator {
                    return Err(Error::forbidden(
                        "only the author or a group admin can delete this for everyone",
                    ));
                }
                self.erase_message(&mut w, row).await?;
            } else {
                let r = sqlx::query("INSERT INTO hidden_messages (user_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(user_id)
                    .bind(&row.id)
                    .execute(w.conn())
                    .await?;
                if B::rows_affected(&r) > 0 {
                    let frame = ServerFrame::MessageDeleted {
                        conversation_id: conversation_id.to_owned(),
                        seq,
                        scope: Some(p::DeleteScope::Me),
                        stream_pos: None,
                    };
                    w.emit_user(user_id, &frame).await?;
                }
            }
            Ok(())
        }
        .await;
        w.finish(out).await
    }

    async fn mark_read(
        &self,
        user_id: &UserId,
        conversation_id: &ConversationId,
        seq: i64,
    ) -> Result<p::ReadMarker> {
        let user_id = user_id.as_str();
        let conversation_id = conversation_id.as_str();
        if seq < 0 {
            return Err(Error::invalid("seq", "seq must not be negative"));
        }
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let row: Option<(i64, i64)> = sqlx::query_as(
                "SELECT m.last_read_seq, c.last_seq FROM members m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.conversation_id = $1 AND m.user_id = $2",
            )
            .bind(conversation_id)
            .bind(user_id)
            .fetch_optional(w.conn())
            .await?;
            let (current, last_seq) = row.ok_or_else(|| Error::not_found("conversation"))?;
            // Markers only move forward, and never past the last message.
            let target = seq.min(last_seq);
            let marker = if target > current {
                sqlx::query("UPDATE members SET last_read_seq = $3 WHERE conversation_id = $1 AND user_id = $2")
                    .bind(conversation_id)
                    .bind(user_id)
                    .bind(target)
                    .execute(w.conn())
                    .await?;
                let frame = ServerFrame::Read {
                    conversation_id: conversation_id.to_owned(),
                    user_id: user_id.to_owned(),
                    seq: target,
                    stream_pos: None,
                };
                w.emit_conv(conversation_id, &frame).await?;
                target
            } else {
                current
            };
            let unread: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND seq > $2
                 AND (sender_id <> $3 OR webhook_id IS NOT NULL) AND NOT deleted AND kind <> 'system'",
            )
            .bind(conversation_id)
            .bind(marker)
            .bind(user_id)
            .fetch_one(w.conn())
            .await?;
            Ok(p::ReadMarker {
                conversation_id: conversation_id.to_owned(),
                last_read_seq: marker,
                unread_count: unread,
            })
        }
        .await;
        w.finish(out).await
    }
}
