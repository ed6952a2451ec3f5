// The queries of the SQL backends, written once and compiled once per backend: each backend
// module (`sqlite.rs`, `postgres.rs`) defines `Conn`, the `SqlStore` struct (`read` and
// `write` pools, `hub`, `gate`) and `lock_writes`, then `include!`s this file. Keep the SQL
// portable between SQLite and PostgreSQL: `$N` placeholders, TRUE/FALSE and boolean
// expressions (never `= 1`), `RETURNING`, `ON CONFLICT DO NOTHING`.
//
// Encryption at rest (`crate::crypto`): message bodies, event payloads, attachment names,
// emails and phone numbers are sealed right before they are bound and opened right after they
// are read; emails and phones are found by their keyed hashes (`email_hash`, `phone_hash`).
// Nothing else in the server sees a sealed value.

/// Durable events written in the current transaction, published after it commits, and the
/// keyring that seals what the transaction writes.
struct Events {
    keys: Arc<Keyring>,
    list: Vec<Durable>,
}

impl Events {
    fn new(keys: &Arc<Keyring>) -> Events {
        Events {
            keys: keys.clone(),
            list: Vec::new(),
        }
    }
}

/// Runs `$body` in a write transaction; commits and publishes its events on `Ok`, rolls back
/// on `Err`. The node's write gate is held until the events are handed to the hub, so this
/// node publishes in commit order; the backend's `lock_writes` orders commits across nodes.
macro_rules! write_tx {
    ($self:ident, |$tx:ident, $ev:ident| $body:block) => {{
        let _gate = $self.gate.lock().await;
        let mut conn = $self.write.acquire().await?;
        let mut $ev = Events::new(&$self.keys);
        let mut $tx = conn.begin().await?;
        Self::lock_writes(&mut $tx).await?;
        let out: Result<_> = async { $body }.await;
        match out {
            Ok(v) => {
                $tx.commit().await?;
                $self.publish($ev);
                Ok(v)
            }
            Err(e) => Err(e),
        }
    }};
}

macro_rules! user_cols {
    () => {
        "u.id, u.username, u.display_name, u.bio, u.avatar_media_id, u.email, u.phone, u.created_at, u.last_seen_at, u.notification_previews"
    };
}
macro_rules! msg_cols {
    () => {
        "m.id, m.conversation_id, m.seq, m.sender_id, m.client_id, m.kind, m.body, m.reply_to_seq, m.created_at, m.edited_at, m.deleted"
    };
}

#[derive(FromRow)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    bio: Option<String>,
    avatar_media_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    created_at: i64,
    last_seen_at: Option<i64>,
    notification_previews: bool,
}

#[derive(FromRow)]
struct MsgRow {
    id: String,
    conversation_id: String,
    seq: i64,
    sender_id: String,
    client_id: String,
    kind: String,
    body: String,
    reply_to_seq: Option<i64>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted: bool,
}

impl MsgRow {
    fn into_message(self, keys: &Keyring) -> Result<p::Message> {
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
        })
    }
}

#[derive(FromRow)]
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
    member_count: i64,
}


fn avatar_url(media_id: Option<&str>) -> Option<String> {
    media_id.map(|id| format!("/api/v1/media/{id}"))
}

/// `{"type":…}` → `{"stream_pos":N,"type":…}` without reparsing.
fn with_pos(payload: &str, pos: i64) -> String {
    format!("{{\"stream_pos\":{pos},{}", payload.get(1..).unwrap_or("}"))
}

fn like_prefix(q: &str) -> String {
    let mut s = String::with_capacity(q.len() + 1);
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

impl SqlStore {
    fn publish(&self, events: Events) {
        self.events.publish(events.list);
    }

    /// An upload as stored, with its file name opened.
    fn open_media(&self, mut r: MediaRecord) -> Result<MediaRecord> {
        r.name = self.keys.decrypt(column::MEDIA_NAME, &r.name)?;
        Ok(r)
    }

    fn open_media_all(&self, rows: Vec<MediaRecord>) -> Result<Vec<MediaRecord>> {
        rows.into_iter().map(|r| self.open_media(r)).collect()
    }

    fn user_from_row(&self, r: &UserRow, show_presence: bool) -> p::User {
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
        }
    }

    fn me_from_row(&self, r: &UserRow) -> Result<p::Me> {
        Ok(p::Me {
            user: self.user_from_row(r, true),
            email: self.keys.decrypt_opt(column::USER_EMAIL, r.email.as_deref())?,
            phone: self.keys.decrypt_opt(column::USER_PHONE, r.phone.as_deref())?,
            created_at: rfc3339(r.created_at),
            notification_previews: r.notification_previews,
        })
    }

    async fn user_row(c: &mut Conn, id: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u WHERE u.id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?)
    }

    async fn require_user(c: &mut Conn, id: &str) -> Result<UserRow> {
        Self::user_row(c, id)
            .await?
            .ok_or_else(|| Error::not_found("user"))
    }

    /// The users whose presence `viewer` may see: their friends and themself.
    async fn presence_set(c: &mut Conn, viewer: &str) -> Result<HashSet<String>> {
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

    async fn public_user(&self, c: &mut Conn, viewer: &str, id: &str) -> Result<p::User> {
        let row = Self::require_user(c, id).await?;
        let show = viewer == id || Self::are_friends(c, viewer, id).await?;
        Ok(self.user_from_row(&row, show))
    }

    async fn are_friends(c: &mut Conn, a: &str, b: &str) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM friendships WHERE user_id = $1 AND friend_id = $2",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&mut *c)
        .await?
            > 0)
    }

    async fn blocked_either(c: &mut Conn, a: &str, b: &str) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1)",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&mut *c)
        .await?
            > 0)
    }

    async fn member_ids(c: &mut Conn, conv: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM members WHERE conversation_id = $1")
                .bind(conv)
                .fetch_all(&mut *c)
                .await?,
        )
    }

    async fn role_of(c: &mut Conn, conv: &str, user: &str) -> Result<Option<p::Role>> {
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
    async fn group_role(c: &mut Conn, group: &str, user: &str) -> Result<p::Role> {
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

    async fn stream_head_in(c: &mut Conn) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(pos), 0) FROM events")
                .fetch_one(&mut *c)
                .await?,
        )
    }

    async fn emit(
        c: &mut Conn,
        ev: &mut Events,
        conversation: Option<&str>,
        user: Option<&str>,
        frame: &ServerFrame,
        recipients: Vec<String>,
    ) -> Result<i64> {
        let payload = serde_json::to_string(frame).map_err(|e| Error::Internal(e.into()))?;
        let sealed = ev.keys.encrypt(column::EVENT_PAYLOAD, &payload);
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
        .fetch_one(&mut *c)
        .await?;
        let kind = crate::events::EventKind::of(frame)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("{frame:?} is not a durable event")))?;
        ev.list.push(Durable {
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
    async fn emit_conv(
        c: &mut Conn,
        ev: &mut Events,
        conv: &str,
        frame: &ServerFrame,
    ) -> Result<i64> {
        let members = Self::member_ids(c, conv).await?;
        Self::emit(c, ev, Some(conv), None, frame, members).await
    }

    /// An event for one user (all their devices).
    async fn emit_user(
        c: &mut Conn,
        ev: &mut Events,
        user: &str,
        frame: &ServerFrame,
    ) -> Result<i64> {
        Self::emit(c, ev, None, Some(user), frame, vec![user.to_owned()]).await
    }

    async fn message_by_seq(c: &mut Conn, conv: &str, seq: i64) -> Result<Option<MsgRow>> {
        Ok(sqlx::query_as::<_, MsgRow>(concat!(
            "SELECT ",
            msg_cols!(),
            " FROM messages m WHERE m.conversation_id = $1 AND m.seq = $2"
        ))
        .bind(conv)
        .bind(seq)
        .fetch_optional(&mut *c)
        .await?)
    }

    /// Assigns the next `seq` of a conversation. Runs inside the committing transaction, so a
    /// `seq` is never handed out for a message that does not commit.
    async fn next_seq(c: &mut Conn, conv: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = $2 WHERE id = $1 RETURNING last_seq",
        )
        .bind(conv)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    /// The attachments of a message, in order.
    async fn attachments(&self, c: &mut Conn, message_id: &str) -> Result<Vec<p::Media>> {
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
    async fn finish(&self, c: &mut Conn, row: MsgRow) -> Result<p::Message> {
        let has_media = matches!(row.kind.as_str(), "image" | "file" | "video" | "audio");
        let mut m = row.into_message(&self.keys)?;
        if has_media && !m.deleted {
            m.attachments = self.attachments(c, &m.id).await?;
        }
        Ok(m)
    }

    /// Checks that `ids` name uploads of `owner` fit for a message of `kind`.
    async fn usable_attachments(&self, c: &mut Conn, owner: &str, kind: p::MessageKind, ids: &[String]) -> Result<Vec<MediaRecord>> {
        let mut out: Vec<MediaRecord> = Vec::with_capacity(ids.len());
        for id in ids {
            if out.iter().any(|m| &m.id == id) {
                return Err(Error::invalid("attachment_ids", "an attachment is listed twice"));
            }
            let rec = sqlx::query_as::<_, MediaRecord>("SELECT * FROM media WHERE id = $1 AND owner_id = $2")
                .bind(id)
                .bind(owner)
                .fetch_optional(&mut *c)
                .await?
                .ok_or_else(|| Error::not_found("attachment"))?;
            let rec = self.open_media(rec)?;
            let fits = match kind {
                p::MessageKind::Image => rec.kind == "image",
                p::MessageKind::Video => rec.kind == "video",
                p::MessageKind::Audio => rec.kind == "audio",
                _ => true,
            };
            if !fits {
                return Err(Error::invalid("attachment_ids", format!("a {} message cannot carry a {}", kind.as_str(), rec.kind)));
            }
            out.push(rec);
        }
        Ok(out)
    }

    /// Marks an upload of `owner` as an avatar (readable by anyone); it must be an image.
    async fn adopt_avatar(c: &mut Conn, owner: &str, media_id: &str) -> Result<()> {
        let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM media WHERE id = $1 AND owner_id = $2")
            .bind(media_id)
            .bind(owner)
            .fetch_optional(&mut *c)
            .await?;
        match kind.as_deref() {
            Some("image") => {}
            Some(_) => return Err(Error::invalid("avatar_media_id", "an avatar must be an image")),
            None => return Err(Error::not_found("media")),
        }
        sqlx::query("UPDATE media SET avatar = TRUE WHERE id = $1").bind(media_id).execute(&mut *c).await?;
        Ok(())
    }

    async fn insert_message(c: &mut Conn, ev: &mut Events, m: &NewMessage) -> Result<p::Message> {
        Self::insert_message_with(c, ev, m, &[], None).await
    }

    /// Writes a message and its event. `members` are the conversation's members when the
    /// caller already knows them (the send path does), else they are read here.
    async fn insert_message_with(
        c: &mut Conn,
        ev: &mut Events,
        m: &NewMessage,
        media: &[MediaRecord],
        members: Option<Vec<String>>,
    ) -> Result<p::Message> {
        let now = now_ms();
        let seq = Self::next_seq(c, &m.conversation_id, now).await?;
        let id = new_id();
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, kind, body, reply_to_seq, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&m.conversation_id)
        .bind(seq)
        .bind(&m.sender_id)
        .bind(&m.client_id)
        .bind(m.kind.as_str())
        .bind(ev.keys.encrypt(column::MESSAGE_BODY, &m.body))
        .bind(m.reply_to_seq)
        .bind(now)
        .execute(&mut *c)
        .await?;
        for (i, md) in media.iter().enumerate() {
            sqlx::query("INSERT INTO message_media (message_id, media_id, conversation_id, position) VALUES ($1, $2, $3, $4)")
                .bind(&id)
                .bind(&md.id)
                .bind(&m.conversation_id)
                .bind(i as i64)
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE media SET attached_at = COALESCE(attached_at, $2) WHERE id = $1")
                .bind(&md.id)
                .bind(now)
                .execute(&mut *c)
                .await?;
        }
        // Whoever writes has read everything up to their own message.
        sqlx::query("UPDATE members SET last_read_seq = $3 WHERE conversation_id = $1 AND user_id = $2 AND last_read_seq < $3")
            .bind(&m.conversation_id)
            .bind(&m.sender_id)
            .bind(seq)
            .execute(&mut *c)
            .await?;
        let message = p::Message {
            id,
            conversation_id: m.conversation_id.clone(),
            seq,
            sender_id: m.sender_id.clone(),
            client_id: m.client_id.clone(),
            kind: m.kind,
            body: m.body.clone(),
            attachments: media.iter().map(MediaRecord::to_protocol).collect(),
            reply_to_seq: m.reply_to_seq,
            created_at: rfc3339(now),
            edited_at: None,
            deleted: false,
        };
        let frame = ServerFrame::Message {
            message: message.clone(),
            stream_pos: None,
        };
        let members = match members {
            Some(list) => list,
            None => Self::member_ids(c, &m.conversation_id).await?,
        };
        Self::emit(c, ev, Some(&m.conversation_id), None, &frame, members).await?;
        Ok(message)
    }

    /// A `system` message in a group's timeline (joins, leaves, kicks, renames, roles).
    async fn system_message(
        c: &mut Conn,
        ev: &mut Events,
        conv: &str,
        actor: &str,
        body: String,
    ) -> Result<()> {
        let m = NewMessage {
            sender_id: actor.to_owned(),
            conversation_id: conv.to_owned(),
            client_id: format!("system:{}", new_id()),
            kind: p::MessageKind::System,
            body,
            attachment_ids: Vec::new(),
            reply_to_seq: None,
        };
        Self::insert_message(c, ev, &m).await.map(|_| ())
    }

    async fn display_name(c: &mut Conn, user: &str) -> Result<String> {
        let n: Option<String> = sqlx::query_scalar("SELECT display_name FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *c)
            .await?;
        Ok(n.unwrap_or_else(|| "someone".into()))
    }

    async fn conv_view(&self, c: &mut Conn, user: &str, conv: &str) -> Result<p::Conversation> {
        let row = sqlx::query_as::<_, ConvRow>(
            "SELECT c.id, c.kind, c.name, c.description, c.avatar_media_id, c.public, c.created_at, c.last_seq,
                    m.role, m.last_read_seq, m.muted_until,
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
        c: &mut Conn,
        user: &str,
        row: ConvRow,
    ) -> Result<p::Conversation> {
        let last = sqlx::query_as::<_, MsgRow>(concat!(
            "SELECT ",
            msg_cols!(),
            " FROM messages m WHERE m.conversation_id = $1
              AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $2 AND h.message_id = m.id)
              ORDER BY m.seq DESC LIMIT 1"
        ))
        .bind(&row.id)
        .bind(user)
        .fetch_optional(&mut *c)
        .await?;
        let last_message = match last {
            Some(row) => Some(self.finish(c, row).await?),
            None => None,
        };
        let unread: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND seq > $2 AND sender_id <> $3
             AND NOT deleted AND kind <> 'system'",
        )
        .bind(&row.id)
        .bind(row.last_read_seq)
        .bind(user)
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
        })
    }

    async fn insert_member(c: &mut Conn, conv: &str, user: &str, role: p::Role) -> Result<()> {
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

    /// Stores the hash of a new refresh token of a login session.
    async fn insert_refresh(c: &mut Conn, hash: &str, session_id: &str, now: i64, expires_at_ms: i64) -> Result<()> {
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

    /// Sets a member's role and tells the members (`member.updated`).
    async fn change_role(c: &mut Conn, ev: &mut Events, conv: &str, user: &str, role: p::Role) -> Result<()> {
        sqlx::query("UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2")
            .bind(conv)
            .bind(user)
            .bind(role.as_str())
            .execute(&mut *c)
            .await?;
        let frame = ServerFrame::MemberUpdated {
            conversation_id: conv.to_owned(),
            user_id: user.to_owned(),
            role: Some(role),
            stream_pos: None,
        };
        Self::emit_conv(c, ev, conv, &frame).await.map(|_| ())
    }

    /// Adds a member and tells everyone: `member.added` to the members, a system message, and
    /// the conversation itself to the newcomer.
    async fn join(
        &self,
        c: &mut Conn,
        ev: &mut Events,
        conv: &str,
        user: &str,
        actor: &str,
    ) -> Result<()> {
        Self::insert_member(c, conv, user, p::Role::Member).await?;
        let frame = ServerFrame::MemberAdded {
            conversation_id: conv.to_owned(),
            user_id: user.to_owned(),
            role: Some(p::Role::Member),
            stream_pos: None,
        };
        Self::emit_conv(c, ev, conv, &frame).await?;
        let name = Self::display_name(c, user).await?;
        let body = if actor == user {
            format!("{name} joined the group")
        } else {
            let by = Self::display_name(c, actor).await?;
            format!("{by} added {name}")
        };
        Self::system_message(c, ev, conv, actor, body).await?;
        let view = self.conv_view(c, user, conv).await?;
        Self::emit_user(
            c,
            ev,
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
    async fn emit_conversation_updated(
        &self,
        c: &mut Conn,
        ev: &mut Events,
        conv: &str,
    ) -> Result<()> {
        for m in Self::member_ids(c, conv).await? {
            let view = self.conv_view(c, &m, conv).await?;
            Self::emit_user(
                c,
                ev,
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

    async fn member_view(
        &self,
        c: &mut Conn,
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

    /// Checks a send without writing anything: an earlier message with the same `client_id`
    /// (idempotency comes first: a retry gets its original message even if the sender has
    /// since lost the right to post), membership, and for direct chats blocks and friendship.
    /// One query answers all of it, so the group-commit writer spends one round trip here.
    async fn check_send(
        &self,
        c: &mut Conn,
        m: &NewMessage,
        group_members: &mut HashMap<String, Vec<String>>,
    ) -> Result<SendCheck> {
        let (existing, kind, peer, blocked, friends): (
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
            bool,
        ) = sqlx::query_as(
            "WITH p AS (SELECT user_id AS id FROM members WHERE conversation_id = $1 AND user_id <> $2 LIMIT 1)
             SELECT (SELECT id FROM messages WHERE sender_id = $2 AND client_id = $3),
                    (SELECT c.kind FROM conversations c JOIN members m ON m.conversation_id = c.id
                      WHERE c.id = $1 AND m.user_id = $2),
                    (SELECT id FROM p),
                    EXISTS (SELECT 1 FROM blocks b JOIN p
                             ON (b.blocker_id = $2 AND b.blocked_id = p.id) OR (b.blocker_id = p.id AND b.blocked_id = $2)),
                    EXISTS (SELECT 1 FROM friendships f JOIN p ON f.user_id = $2 AND f.friend_id = p.id)",
        )
        .bind(&m.conversation_id)
        .bind(&m.sender_id)
        .bind(&m.client_id)
        .fetch_one(&mut *c)
        .await?;
        self.decide_send(c, m, (existing, kind, peer, blocked, friends), group_members)
            .await
    }

    /// What `check_send`'s query row means for a send; shared by the general path and the
    /// SQLite fast path (`send_chunk`). Rule failures are `Err`s that wrote nothing.
    async fn decide_send(
        &self,
        c: &mut Conn,
        m: &NewMessage,
        (existing, kind, peer, blocked, friends): (
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
            bool,
        ),
        group_members: &mut HashMap<String, Vec<String>>,
    ) -> Result<SendCheck> {
        if let Some(id) = existing {
            let row = sqlx::query_as::<_, MsgRow>(concat!(
                "SELECT ",
                msg_cols!(),
                " FROM messages m WHERE m.id = $1"
            ))
            .bind(&id)
            .fetch_one(&mut *c)
            .await?;
            if row.conversation_id != m.conversation_id {
                return Err(Error::conflict(
                    "client_id was already used for another conversation",
                ));
            }
            return Ok(SendCheck::Existing(self.finish(c, row).await?));
        }
        let kind = kind.ok_or_else(|| Error::not_found("conversation"))?;
        let members = if kind == "direct" {
            if peer.is_some() && blocked {
                return Err(Error::new(
                    ErrorCode::Blocked,
                    "you cannot message this person",
                ));
            }
            if peer.is_some() && !friends {
                return Err(Error::new(
                    ErrorCode::NotFriends,
                    "you can only message your friends",
                ));
            }
            let mut list = vec![m.sender_id.clone()];
            list.extend(peer);
            list
        } else {
            match group_members.get(&m.conversation_id) {
                Some(list) => list.clone(),
                None => {
                    let list = Self::member_ids(c, &m.conversation_id).await?;
                    group_members.insert(m.conversation_id.clone(), list.clone());
                    list
                }
            }
        };
        if let Some(r) = m.reply_to_seq
            && Self::message_by_seq(c, &m.conversation_id, r)
                .await?
                .is_none()
        {
            return Err(Error::invalid(
                "reply_to_seq",
                "reply_to_seq names no message of this conversation",
            ));
        }
        let media = self
            .usable_attachments(c, &m.sender_id, m.kind, &m.attachment_ids)
            .await?;
        Ok(SendCheck::New { members, media })
    }

    /// The group-commit transaction with two round trips to the database per chunk of
    /// `FAST_CHUNK` messages, for backends that run several statements in one query (SQLite;
    /// see `MULTI_STATEMENT`): one query checks every message of the chunk (the same checks
    /// as `check_send`, plus the conversation's `last_seq`), Rust decides, one query writes
    /// every message, read marker, `last_seq` and event and returns the stream positions. The
    /// SQL text depends only on the chunk's size, so it is prepared once and cached. Messages
    /// with a reply or attachments take the general path (`send_batch_once`).
    async fn send_batch_fast(&self, batch: &[NewMessage]) -> Result<Vec<Result<SendOutcome>>> {
        let _gate = self.gate.lock().await;
        let mut conn = self.write.acquire().await?;
        let mut tx = conn.begin().await?;
        Self::lock_writes(&mut tx).await?;
        let mut events = Events::new(&self.keys);
        let mut results: Vec<Result<SendOutcome>> = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(FAST_CHUNK) {
            self.send_chunk(&mut tx, chunk, &mut events, &mut results).await?;
        }
        tx.commit().await?;
        // Committed and durable: now (and only now) the world may see it.
        self.publish(events);
        Ok(results)
    }

    async fn send_chunk(
        &self,
        c: &mut Conn,
        chunk: &[NewMessage],
        events: &mut Events,
        results: &mut Vec<Result<SendOutcome>>,
    ) -> Result<()> {
        // 1. Every check in one query: one result row per message, in order.
        let mut q = sqlx::query_as::<
            _,
            (
                Option<String>,
                Option<String>,
                Option<String>,
                bool,
                bool,
                Option<i64>,
            ),
        >(sqlx::AssertSqlSafe(fast_check_sql(chunk.len())));
        for m in chunk {
            q = q
                .bind(&m.conversation_id)
                .bind(&m.sender_id)
                .bind(&m.client_id);
        }
        let checks = q.fetch_all(&mut *c).await?;
        if checks.len() != chunk.len() {
            return Err(Error::Internal(anyhow::anyhow!(
                "batch check returned {} rows for {} messages",
                checks.len(),
                chunk.len()
            )));
        }

        // 2. Decide in memory.
        enum Plan {
            Done(Result<SendOutcome>),
            /// Same sender and client_id as an earlier message of this chunk (index into
            /// `results`).
            SameAs(usize),
            Write {
                message: p::Message,
                members: Vec<String>,
                payload: String,
            },
        }
        let now = now_ms();
        let base = results.len();
        let mut seqs: HashMap<&str, i64> = HashMap::new();
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut group_members: HashMap<String, Vec<String>> = HashMap::new();
        let mut plans = Vec::with_capacity(chunk.len());
        for (i, (m, (existing, kind, peer, blocked, friends, last_seq))) in
            chunk.iter().zip(checks).enumerate()
        {
            if let Some(&j) = first_of.get(&(m.sender_id.as_str(), m.client_id.as_str())) {
                plans.push(Plan::SameAs(base + j));
                continue;
            }
            first_of.insert((&m.sender_id, &m.client_id), i);
            let members = match self
                .decide_send(
                    c,
                    m,
                    (existing, kind, peer, blocked, friends),
                    &mut group_members,
                )
                .await
            {
                Ok(SendCheck::New { members, .. }) => members,
                Ok(SendCheck::Existing(message)) => {
                    plans.push(Plan::Done(Ok(SendOutcome {
                        message,
                        created: false,
                    })));
                    continue;
                }
                Err(e @ Error::Internal(_)) => return Err(e),
                Err(e) => {
                    plans.push(Plan::Done(Err(e)));
                    continue;
                }
            };
            let seq = seqs
                .entry(&m.conversation_id)
                .or_insert(last_seq.unwrap_or(0));
            *seq += 1;
            let message = p::Message {
                id: new_id(),
                conversation_id: m.conversation_id.clone(),
                seq: *seq,
                sender_id: m.sender_id.clone(),
                client_id: m.client_id.clone(),
                kind: m.kind,
                body: m.body.clone(),
                attachments: Vec::new(),
                reply_to_seq: None,
                created_at: rfc3339(now),
                edited_at: None,
                deleted: false,
            };
            let frame = ServerFrame::Message {
                message,
                stream_pos: None,
            };
            let payload = serde_json::to_string(&frame).map_err(|e| Error::Internal(e.into()))?;
            let ServerFrame::Message { message, .. } = frame else {
                unreachable!("built above")
            };
            plans.push(Plan::Write {
                message,
                members,
                payload,
            });
        }

        // 3. Every write in one query; the events' RETURNING rows come back in order.
        let writes = plans
            .iter()
            .filter(|p| matches!(p, Plan::Write { .. }))
            .count();
        let mut positions = Vec::new();
        if writes > 0 {
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(fast_write_sql(writes)));
            for plan in &plans {
                if let Plan::Write {
                    message, payload, ..
                } = plan
                {
                    q = q
                        .bind(&message.id)
                        .bind(&message.conversation_id)
                        .bind(message.seq)
                        .bind(&message.sender_id)
                        .bind(&message.client_id)
                        .bind(message.kind.as_str())
                        .bind(self.keys.encrypt(column::MESSAGE_BODY, &message.body))
                        .bind(now)
                        .bind(self.keys.encrypt(column::EVENT_PAYLOAD, payload));
                }
            }
            positions = q.fetch_all(&mut *c).await?;
            if positions.len() != writes {
                return Err(Error::Internal(anyhow::anyhow!(
                    "batch write returned {} positions for {writes} messages",
                    positions.len()
                )));
            }
        }

        // 4. Answers and events, in order.
        let mut k = 0;
        for plan in plans {
            let r = match plan {
                Plan::Done(r) => r,
                Plan::SameAs(j) => match &results[j] {
                    Ok(o) => Ok(SendOutcome {
                        message: o.message.clone(),
                        created: false,
                    }),
                    Err(e) => {
                        let (code, msg) = e.public();
                        Err(Error::new(code, msg))
                    }
                },
                Plan::Write {
                    message,
                    members,
                    payload,
                } => {
                    events.list.push(Durable {
                        pos: positions[k],
                        kind: crate::events::EventKind::Message,
                        conversation_id: Some(message.conversation_id.clone()),
                        user_id: None,
                        seq: Some(message.seq),
                        recipients: members.into(),
                        json: with_pos(&payload, positions[k]).into(),
                    });
                    k += 1;
                    Ok(SendOutcome {
                        message,
                        created: true,
                    })
                }
            };
            results.push(r);
        }
        Ok(())
    }

    /// One group-commit transaction. Rule failures answer just their message (they wrote
    /// nothing); a failing *write* returns `Err` after rolling everything back, and the
    /// caller retries the messages one transaction each.
    async fn send_batch_once(&self, batch: &[NewMessage]) -> Result<Vec<Result<SendOutcome>>> {
        let _gate = self.gate.lock().await;
        let mut conn = self.write.acquire().await?;
        let mut tx = conn.begin().await?;
        Self::lock_writes(&mut tx).await?;
        let mut events = Events::new(&self.keys);
        let mut results = Vec::with_capacity(batch.len());
        // A batch holds only messages, so a group's member list cannot change within it.
        let mut group_members = HashMap::new();
        for m in batch {
            match self.check_send(&mut tx, m, &mut group_members).await {
                Ok(SendCheck::Existing(message)) => results.push(Ok(SendOutcome {
                    message,
                    created: false,
                })),
                Ok(SendCheck::New { members, media }) => {
                    let message =
                        Self::insert_message_with(&mut tx, &mut events, m, &media, Some(members))
                            .await?;
                    results.push(Ok(SendOutcome {
                        message,
                        created: true,
                    }));
                }
                Err(e @ Error::Internal(_)) => return Err(e),
                Err(e) => results.push(Err(e)),
            }
        }
        tx.commit().await?;
        // Committed and durable: now (and only now) the world may see it.
        self.publish(events);
        Ok(results)
    }
}

#[async_trait]
impl Accounts for SqlStore {
    async fn create_user(&self, u: NewUser) -> Result<p::Me> {
        write_tx!(self, |tx, ev| {
            let _ = &mut ev;
            let email_hash = u.email.as_deref().map(|e| self.keys.lookup_hash(column::USER_EMAIL, e));
            let phone_hash = u.phone.as_deref().map(|p| self.keys.lookup_hash(column::USER_PHONE, p));
            let taken: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT username_key, email_hash, phone_hash FROM users
                 WHERE username_key = $1 OR email_hash = $2 OR phone_hash = $3 LIMIT 1",
            )
            .bind(&u.username_key)
            .bind(&email_hash)
            .bind(&phone_hash)
            .fetch_optional(&mut *tx)
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
            .execute(&mut *tx)
            .await?;
            let row = Self::require_user(&mut tx, &id).await?;
            self.me_from_row(&row)
        })
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
            user_id,
            password_hash,
        }))
    }

    async fn me(&self, user_id: &str) -> Result<p::Me> {
        let mut c = self.read.acquire().await?;
        let row = Self::require_user(&mut c, user_id).await?;
        self.me_from_row(&row)
    }

    async fn user(&self, viewer: &str, user_id: &str) -> Result<p::User> {
        let mut c = self.read.acquire().await?;
        self.public_user(&mut c, viewer, user_id).await
    }

    async fn update_profile(&self, user_id: &str, patch: ProfilePatch) -> Result<p::Me> {
        write_tx!(self, |tx, ev| {
            let _ = &mut ev;
            if let Some(media_id) = &patch.avatar_media_id {
                Self::adopt_avatar(&mut tx, user_id, media_id).await?;
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
            .bind(&patch.avatar_media_id)
            .bind(patch.notification_previews)
            .bind(patch.bio.is_some())
            .bind(bio)
            .execute(&mut *tx)
            .await?;
            let row = Self::require_user(&mut tx, user_id).await?;
            self.me_from_row(&row)
        })
    }

    async fn search_users(
        &self,
        viewer: &str,
        q: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::User>> {
        let q = q.trim();
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.read.acquire().await?;
        let lower = q.to_lowercase();
        let rows = sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u
              WHERE (u.username_key LIKE $1 ESCAPE '\\' OR u.display_key LIKE $1 ESCAPE '\\'
                     OR u.email_hash = $2 OR u.phone_hash = $3)
                AND u.id NOT IN (SELECT blocker_id FROM blocks WHERE blocked_id = $4)
              ORDER BY u.username_key LIMIT $5 OFFSET $6"
        ))
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

    async fn set_last_seen(&self, user_id: &str, at_ms: i64) -> Result<()> {
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
        user_id: &str,
        refresh_hash: &str,
        expires_at_ms: i64,
    ) -> Result<String> {
        write_tx!(self, |tx, ev| {
            let _ = &mut ev;
            let id = new_id();
            let now = now_ms();
            sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Self::insert_refresh(&mut tx, refresh_hash, &id, now, expires_at_ms).await?;
            Ok(id)
        })
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        expires_at_ms: i64,
    ) -> Result<RefreshOutcome> {
        write_tx!(self, |tx, ev| {
            let _ = &mut ev;
            let row: Option<(String, i64, Option<i64>, String, Option<i64>)> = sqlx::query_as(
                "SELECT r.session_id, r.expires_at, r.used_at, s.user_id, s.revoked_at
                 FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
            )
            .bind(old_hash)
            .fetch_optional(&mut *tx)
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
                    .execute(&mut *tx)
                    .await?;
                return Ok(RefreshOutcome::Reused { session_id });
            }
            if expires_at <= now {
                return Ok(RefreshOutcome::Invalid);
            }
            sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1")
                .bind(old_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Self::insert_refresh(&mut tx, new_hash, &session_id, now, expires_at_ms).await?;
            Ok(RefreshOutcome::Rotated {
                user_id,
                session_id,
            })
        })
    }

    async fn refresh_session(&self, refresh_hash: &str) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT s.id, s.user_id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
        )
        .bind(refresh_hash)
        .fetch_optional(&self.read)
        .await?)
    }

    async fn revoke_session(&self, session_id: &str) -> Result<()> {
        let mut c = self.write.acquire().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(session_id)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn session_active(&self, session_id: &str, user_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .bind(user_id)
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    async fn password_hash(&self, user_id: &str) -> Result<String> {
        let h: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?;
        h.ok_or_else(|| Error::not_found("user"))
    }

    async fn change_password(&self, user_id: &str, new_hash: &str, keep_session: &str) -> Result<Vec<String>> {
        write_tx!(self, |tx, ev| {
            let _ = &mut ev;
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(user_id)
                .bind(new_hash)
                .execute(&mut *tx)
                .await?;
            let revoked: Vec<String> = sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id",
            )
            .bind(user_id)
            .bind(keep_session)
            .bind(now_ms())
            .fetch_all(&mut *tx)
            .await?;
            Ok(revoked)
        })
    }

    async fn sessions(&self, user_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT id, created_at FROM sessions WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?)
    }

    async fn revoke_user_session(&self, user_id: &str, session_id: &str) -> Result<bool> {
        let mut c = self.write.acquire().await?;
        let r = sqlx::query("UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
            .bind(session_id)
            .bind(user_id)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_account(&self, user_id: &str) -> Result<Vec<String>> {
        write_tx!(self, |tx, ev| {
            let now = now_ms();
            // Friendships end (both people are told), requests and blocks go.
            let friends: Vec<String> = sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
            for f in &friends {
                Self::unfriend(&mut tx, &mut ev, user_id, f).await?;
            }
            for sql in [
                "DELETE FROM friend_requests WHERE from_id = $1 OR to_id = $1",
                "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
                "DELETE FROM push_subscriptions WHERE user_id = $1",
            ] {
                sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
            }
            // Groups: ownership passes to the longest-serving admin, else member; then leave.
            let groups: Vec<(String, String)> = sqlx::query_as(
                "SELECT m.conversation_id, m.role FROM members m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.user_id = $1 AND c.kind = 'group'",
            )
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            for (group, role) in groups {
                if role == "owner" {
                    let heir: Option<String> = sqlx::query_scalar(
                        "SELECT user_id FROM members WHERE conversation_id = $1 AND user_id <> $2
                         ORDER BY CASE role WHEN 'admin' THEN 0 ELSE 1 END, joined_at LIMIT 1",
                    )
                    .bind(&group)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(heir) = heir {
                        Self::change_role(&mut tx, &mut ev, &group, &heir, p::Role::Owner).await?;
                    }
                }
                sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
                    .bind(&group)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                let frame = ServerFrame::MemberRemoved {
                    conversation_id: group.clone(),
                    user_id: user_id.to_owned(),
                    role: p::Role::parse(&role),
                    stream_pos: None,
                };
                Self::emit_conv(&mut tx, &mut ev, &group, &frame).await?;
                Self::system_message(&mut tx, &mut ev, &group, user_id, "Deleted user left the group".into()).await?;
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
            .execute(&mut *tx)
            .await?;
            let revoked: Vec<String> = sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            Ok(revoked)
        })
    }

    async fn export(&self, user_id: &str) -> Result<serde_json::Value> {
        let me = self.me(user_id).await?;
        let friends = self.friends(user_id).await?;
        let blocks = self.blocks(user_id).await?;
        let requests = self.friend_requests(user_id).await?;
        let conversations = self.conversations(user_id).await?;
        let mut c = self.read.acquire().await?;
        let rows = sqlx::query_as::<_, MsgRow>(concat!(
            "SELECT ",
            msg_cols!(),
            " FROM messages m WHERE m.sender_id = $1 AND m.kind <> 'system' ORDER BY m.created_at, m.seq"
        ))
        .bind(user_id)
        .fetch_all(&mut *c)
        .await?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            messages.push(self.finish(&mut c, row).await?);
        }
        let media = sqlx::query_as::<_, MediaRecord>("SELECT * FROM media WHERE owner_id = $1 ORDER BY created_at")
            .bind(user_id)
            .fetch_all(&mut *c)
            .await?;
        let media: Vec<p::Media> = self
            .open_media_all(media)?
            .iter()
            .map(MediaRecord::to_protocol)
            .collect();
        let sessions: Vec<serde_json::Value> = self
            .sessions(user_id)
            .await?
            .into_iter()
            .map(|(id, at)| serde_json::json!({"id": id, "created_at": rfc3339(at)}))
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

#[async_trait]
impl Social for SqlStore {
    async fn send_friend_request(&self, from: &str, to: &str) -> Result<FriendRequestOutcome> {
        if from == to {
            return Err(Error::invalid("user_id", "you cannot befriend yourself"));
        }
        write_tx!(self, |tx, ev| {
            Self::require_user(&mut tx, to).await?;
            if Self::blocked_either(&mut tx, from, to).await? {
                return Err(Error::new(
                    ErrorCode::Blocked,
                    "you cannot send a request to this person",
                ));
            }
            if Self::are_friends(&mut tx, from, to).await? {
                return Err(Error::conflict("you are already friends"));
            }
            let reverse: Option<String> = sqlx::query_scalar(
                "SELECT id FROM friend_requests WHERE from_id = $1 AND to_id = $2",
            )
            .bind(to)
            .bind(from)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(req_id) = reverse {
                // They already asked: asking back is accepting.
                let friend = self.befriend(&mut tx, &mut ev, &req_id, to, from).await?;
                return Ok(FriendRequestOutcome::Friends(friend));
            }
            let exists: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM friend_requests WHERE from_id = $1 AND to_id = $2",
            )
            .bind(from)
            .bind(to)
            .fetch_one(&mut *tx)
            .await?;
            if exists > 0 {
                return Err(Error::conflict("you already sent a request to this person"));
            }
            let id = new_id();
            let now = now_ms();
            sqlx::query("INSERT INTO friend_requests (id, from_id, to_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&id)
                .bind(from)
                .bind(to)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let request = p::FriendRequest {
                id,
                from: self.public_user(&mut tx, to, from).await?,
                to: self.public_user(&mut tx, from, to).await?,
                created_at: rfc3339(now),
            };
            let frame = ServerFrame::FriendRequest {
                request: request.clone(),
                stream_pos: None,
            };
            Self::emit_user(&mut tx, &mut ev, to, &frame).await?;
            Self::emit_user(&mut tx, &mut ev, from, &frame).await?;
            Ok(FriendRequestOutcome::Requested(request))
        })
    }

    async fn friend_requests(&self, user_id: &str) -> Result<p::FriendRequestList> {
        let mut c = self.read.acquire().await?;
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT id, from_id, to_id, created_at FROM friend_requests WHERE from_id = $1 OR to_id = $1 ORDER BY created_at DESC",
        )
        .bind(user_id)
        .fetch_all(&mut *c)
        .await?;
        let mut list = p::FriendRequestList {
            incoming: Vec::new(),
            outgoing: Vec::new(),
        };
        for (id, from, to, at) in rows {
            let req = p::FriendRequest {
                id,
                from: self.public_user(&mut c, user_id, &from).await?,
                to: self.public_user(&mut c, user_id, &to).await?,
                created_at: rfc3339(at),
            };
            if to == user_id {
                list.incoming.push(req)
            } else {
                list.outgoing.push(req)
            }
        }
        Ok(list)
    }

    async fn accept_friend_request(&self, user_id: &str, request_id: &str) -> Result<p::User> {
        write_tx!(self, |tx, ev| {
            let (from, to) = Self::request_parties(&mut tx, request_id, user_id).await?;
            if to != user_id {
                return Err(Error::forbidden("only the recipient can accept a request"));
            }
            self.befriend(&mut tx, &mut ev, request_id, &from, &to)
                .await
        })
    }

    async fn decline_friend_request(&self, user_id: &str, request_id: &str) -> Result<()> {
        write_tx!(self, |tx, ev| {
            let (from, to) = Self::request_parties(&mut tx, request_id, user_id).await?;
            if to != user_id {
                return Err(Error::forbidden(
                    "only the recipient can decline a request; cancel it instead",
                ));
            }
            Self::drop_request(&mut tx, &mut ev, request_id, &from, &to).await
        })
    }

    async fn cancel_friend_request(&self, user_id: &str, request_id: &str) -> Result<()> {
        write_tx!(self, |tx, ev| {
            let (from, to) = Self::request_parties(&mut tx, request_id, user_id).await?;
            if from != user_id {
                return Err(Error::forbidden(
                    "only the sender can cancel a request; decline it instead",
                ));
            }
            Self::drop_request(&mut tx, &mut ev, request_id, &from, &to).await
        })
    }

    async fn friends(&self, user_id: &str) -> Result<Vec<p::User>> {
        let rows = sqlx::query_as::<_, UserRow>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM friendships f JOIN users u ON u.id = f.friend_id WHERE f.user_id = $1 ORDER BY u.display_key"
        ))
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(|r| self.user_from_row(r, true)).collect())
    }

    async fn friend_ids(&self, user_id: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(&self.read)
                .await?,
        )
    }

    async fn remove_friend(&self, user_id: &str, friend_id: &str) -> Result<()> {
        write_tx!(self, |tx, ev| {
            if !Self::unfriend(&mut tx, &mut ev, user_id, friend_id).await? {
                return Err(Error::not_found("friend"));
            }
            Ok(())
        })
    }

    async fn block(&self, user_id: &str, target: &str) -> Result<()> {
        if user_id == target {
            return Err(Error::invalid("user_id", "you cannot block yourself"));
        }
        write_tx!(self, |tx, ev| {
            Self::require_user(&mut tx, target).await?;
            sqlx::query("INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(user_id)
                .bind(target)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            // A block ends the friendship and any pending request, both ways.
            Self::unfriend(&mut tx, &mut ev, user_id, target).await?;
            let reqs: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT id, from_id, to_id FROM friend_requests
                 WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)",
            )
            .bind(user_id)
            .bind(target)
            .fetch_all(&mut *tx)
            .await?;
            for (id, from, to) in reqs {
                Self::drop_request(&mut tx, &mut ev, &id, &from, &to).await?;
            }
            Ok(())
        })
    }

    async fn unblock(&self, user_id: &str, target: &str) -> Result<()> {
        let mut c = self.write.acquire().await?;
        Self::require_user(&mut c, target).await?;
        sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
            .bind(user_id)
            .bind(target)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn blocks(&self, user_id: &str) -> Result<Vec<p::Block>> {
        #[derive(FromRow)]
        struct BlockRow {
            #[sqlx(flatten)]
            user: UserRow,
            blocked_at: i64,
        }
        let rows = sqlx::query_as::<_, BlockRow>(concat!(
            "SELECT ",
            user_cols!(),
            ", b.created_at AS blocked_at FROM blocks b JOIN users u ON u.id = b.blocked_id
               WHERE b.blocker_id = $1 ORDER BY b.created_at DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| p::Block {
                user: self.user_from_row(&r.user, false),
                created_at: rfc3339(r.blocked_at),
            })
            .collect())
    }
}

#[async_trait]
impl Conversations for SqlStore {
    async fn open_direct(&self, user_id: &str, peer_id: &str) -> Result<p::Conversation> {
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
        write_tx!(self, |tx, ev| {
            let _ = &mut ev;
            let existing: Option<String> =
                sqlx::query_scalar("SELECT id FROM conversations WHERE direct_key = $1")
                    .bind(&key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(id) = existing {
                // Existing conversations stay readable after an unfriending.
                return self.conv_view(&mut tx, user_id, &id).await;
            }
            Self::require_user(&mut tx, peer_id).await?;
            if Self::blocked_either(&mut tx, user_id, peer_id).await? {
                return Err(Error::new(
                    ErrorCode::Blocked,
                    "you cannot message this person",
                ));
            }
            if !Self::are_friends(&mut tx, user_id, peer_id).await? {
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
            .execute(&mut *tx)
            .await?;
            Self::insert_member(&mut tx, &id, user_id, p::Role::Member).await?;
            Self::insert_member(&mut tx, &id, peer_id, p::Role::Member).await?;
            let peer_view = self.conv_view(&mut tx, peer_id, &id).await?;
            Self::emit_user(
                &mut tx,
                &mut ev,
                peer_id,
                &ServerFrame::ConversationUpdated {
                    conversation: peer_view,
                    stream_pos: None,
                },
            )
            .await?;
            let view = self.conv_view(&mut tx, user_id, &id).await?;
            Self::emit_user(
                &mut tx,
                &mut ev,
                user_id,
                &ServerFrame::ConversationUpdated {
                    conversation: view.clone(),
                    stream_pos: None,
                },
            )
            .await?;
            Ok(view)
        })
    }

    async fn create_group(&self, user_id: &str, g: NewGroup) -> Result<p::Conversation> {
        write_tx!(self, |tx, ev| {
            let mut ids: Vec<String> = Vec::new();
            for m in &g.member_ids {
                if m == user_id || ids.contains(m) {
                    continue;
                }
                Self::require_user(&mut tx, m).await?;
                if !Self::are_friends(&mut tx, user_id, m).await? {
                    return Err(Error::new(
                        ErrorCode::NotFriends,
                        "you can only add your friends to a group",
                    ));
                }
                ids.push(m.clone());
            }
            let id = new_id();
            let now = now_ms();
            if let Some(media_id) = &g.avatar_media_id {
                Self::adopt_avatar(&mut tx, user_id, media_id).await?;
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
            .bind(&g.avatar_media_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Self::insert_member(&mut tx, &id, user_id, p::Role::Owner).await?;
            let owner_name = Self::display_name(&mut tx, user_id).await?;
            Self::system_message(
                &mut tx,
                &mut ev,
                &id,
                user_id,
                format!("{owner_name} created the group"),
            )
            .await?;
            for m in &ids {
                Self::insert_member(&mut tx, &id, m, p::Role::Member).await?;
            }
            if !ids.is_empty() {
                let mut names = Vec::new();
                for m in &ids {
                    names.push(Self::display_name(&mut tx, m).await?);
                }
                Self::system_message(
                    &mut tx,
                    &mut ev,
                    &id,
                    user_id,
                    format!("{owner_name} added {}", names.join(", ")),
                )
                .await?;
            }
            self.emit_conversation_updated(&mut tx, &mut ev, &id)
                .await?;
            self.conv_view(&mut tx, user_id, &id).await
        })
    }

    async fn conversations(&self, user_id: &str) -> Result<Vec<p::Conversation>> {
        let mut c = self.read.acquire().await?;
        let rows = sqlx::query_as::<_, ConvRow>(
            "SELECT c.id, c.kind, c.name, c.description, c.avatar_media_id, c.public, c.created_at, c.last_seq,
                    m.role, m.last_read_seq, m.muted_until,
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

    async fn conversation(&self, user_id: &str, conversation_id: &str) -> Result<p::Conversation> {
        let mut c = self.read.acquire().await?;
        self.conv_view(&mut c, user_id, conversation_id).await
    }

    async fn update_group(
        &self,
        user_id: &str,
        group_id: &str,
        patch: GroupPatch,
    ) -> Result<p::Conversation> {
        write_tx!(self, |tx, ev| {
            let role = Self::group_role(&mut tx, group_id, user_id).await?;
            if role < p::Role::Admin {
                return Err(Error::forbidden(
                    "only admins and the owner can change the group",
                ));
            }
            let actor = Self::display_name(&mut tx, user_id).await?;
            if let Some(name) = &patch.name {
                let old: Option<String> =
                    sqlx::query_scalar("SELECT name FROM conversations WHERE id = $1")
                        .bind(group_id)
                        .fetch_one(&mut *tx)
                        .await?;
                if old.as_deref() != Some(name.as_str()) {
                    sqlx::query("UPDATE conversations SET name = $2, name_key = $3 WHERE id = $1")
                        .bind(group_id)
                        .bind(name)
                        .bind(name.to_lowercase())
                        .execute(&mut *tx)
                        .await?;
                    Self::system_message(
                        &mut tx,
                        &mut ev,
                        group_id,
                        user_id,
                        format!("{actor} renamed the group to {name}"),
                    )
                    .await?;
                }
            }
            if let Some(media_id) = &patch.avatar_media_id {
                Self::adopt_avatar(&mut tx, user_id, media_id).await?;
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
            .bind(&patch.avatar_media_id)
            .bind(patch.public)
            .execute(&mut *tx)
            .await?;
            self.emit_conversation_updated(&mut tx, &mut ev, group_id)
                .await?;
            self.conv_view(&mut tx, user_id, group_id).await
        })
    }

    async fn group_directory(
        &self,
        user_id: &str,
        q: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::GroupSummary>> {
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

    async fn join_group(&self, user_id: &str, group_id: &str) -> Result<p::Conversation> {
        write_tx!(self, |tx, ev| {
            let row: Option<(String, bool)> =
                sqlx::query_as("SELECT kind, public FROM conversations WHERE id = $1")
                    .bind(group_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let is_member = Self::role_of(&mut tx, group_id, user_id).await?.is_some();
            match row {
                Some((kind, _)) if kind == "group" && is_member => {}
                // A private group is indistinguishable from a missing one to outsiders.
                Some((kind, true)) if kind == "group" => {
                    self.join(&mut tx, &mut ev, group_id, user_id, user_id)
                        .await?
                }
                _ => return Err(Error::not_found("group")),
            }
            self.conv_view(&mut tx, user_id, group_id).await
        })
    }

    async fn create_invite(
        &self,
        user_id: &str,
        group_id: &str,
        ttl_secs: i64,
    ) -> Result<p::Invite> {
        write_tx!(self, |tx, ev| {
            let _ = &mut ev;
            let role = Self::group_role(&mut tx, group_id, user_id).await?;
            if role < p::Role::Admin {
                return Err(Error::forbidden(
                    "only admins and the owner can create invites",
                ));
            }
            let code = crate::auth::random_code();
            let now = now_ms();
            let expires = now + ttl_secs * 1000;
            sqlx::query("INSERT INTO invites (code, conversation_id, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&code)
                .bind(group_id)
                .bind(user_id)
                .bind(now)
                .bind(expires)
                .execute(&mut *tx)
                .await?;
            Ok(p::Invite {
                code,
                expires_at: rfc3339(expires),
            })
        })
    }

    async fn accept_invite(&self, user_id: &str, code: &str) -> Result<p::Conversation> {
        write_tx!(self, |tx, ev| {
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT conversation_id, expires_at FROM invites WHERE code = $1")
                    .bind(code)
                    .fetch_optional(&mut *tx)
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
            if Self::role_of(&mut tx, &group, user_id).await?.is_none() {
                self.join(&mut tx, &mut ev, &group, user_id, user_id)
                    .await?;
            }
            self.conv_view(&mut tx, user_id, &group).await
        })
    }

    async fn members(
        &self,
        user_id: &str,
        group_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<p::Member>> {
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
        let rows = sqlx::query_as::<_, Row>(concat!(
            "SELECT ",
            user_cols!(),
            ", m.role, m.joined_at, m.last_read_seq FROM members m JOIN users u ON u.id = m.user_id
               WHERE m.conversation_id = $1
               ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, m.joined_at, u.id
               LIMIT $2 OFFSET $3"
        ))
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
        user_id: &str,
        group_id: &str,
        user_ids: Vec<String>,
    ) -> Result<Vec<p::Member>> {
        write_tx!(self, |tx, ev| {
            let role = Self::group_role(&mut tx, group_id, user_id).await?;
            if role < p::Role::Admin {
                return Err(Error::forbidden(
                    "only admins and the owner can add members",
                ));
            }
            let mut added = Vec::new();
            for target in &user_ids {
                Self::require_user(&mut tx, target).await?;
                if Self::role_of(&mut tx, group_id, target).await?.is_some() {
                    continue;
                }
                if !Self::are_friends(&mut tx, user_id, target).await? {
                    return Err(Error::new(
                        ErrorCode::NotFriends,
                        "you can only add your friends",
                    ));
                }
                self.join(&mut tx, &mut ev, group_id, target, user_id)
                    .await?;
                added.push(self.member_view(&mut tx, user_id, group_id, target).await?);
            }
            Ok(added)
        })
    }

    async fn remove_member(&self, user_id: &str, group_id: &str, target: &str) -> Result<()> {
        write_tx!(self, |tx, ev| {
            let my_role = Self::group_role(&mut tx, group_id, user_id).await?;
            let their_role = Self::role_of(&mut tx, group_id, target)
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
                .execute(&mut *tx)
                .await?;
            let frame = ServerFrame::MemberRemoved {
                conversation_id: group_id.to_owned(),
                user_id: target.to_owned(),
                role: Some(their_role),
                stream_pos: None,
            };
            // The remaining members and the person removed each get it; after this, the
            // removed person receives nothing more from the conversation.
            Self::emit_conv(&mut tx, &mut ev, group_id, &frame).await?;
            Self::emit_user(&mut tx, &mut ev, target, &frame).await?;
            let name = Self::display_name(&mut tx, target).await?;
            let body = if leaving {
                format!("{name} left the group")
            } else {
                let by = Self::display_name(&mut tx, user_id).await?;
                format!("{by} removed {name}")
            };
            Self::system_message(&mut tx, &mut ev, group_id, user_id, body).await?;
            Ok(())
        })
    }

    async fn set_role(
        &self,
        user_id: &str,
        group_id: &str,
        target: &str,
        role: p::Role,
    ) -> Result<p::Member> {
        if role == p::Role::Owner {
            return Err(Error::invalid(
                "role",
                "use POST /groups/{id}/transfer to hand over ownership",
            ));
        }
        write_tx!(self, |tx, ev| {
            let my_role = Self::group_role(&mut tx, group_id, user_id).await?;
            if my_role != p::Role::Owner {
                return Err(Error::forbidden("only the owner can change roles"));
            }
            let current = Self::role_of(&mut tx, group_id, target)
                .await?
                .ok_or_else(|| Error::not_found("member"))?;
            if current == p::Role::Owner {
                return Err(Error::forbidden(
                    "the owner's role changes only by transfer",
                ));
            }
            if current != role {
                Self::change_role(&mut tx, &mut ev, group_id, target, role).await?;
                let by = Self::display_name(&mut tx, user_id).await?;
                let name = Self::display_name(&mut tx, target).await?;
                let body = match role {
                    p::Role::Admin => format!("{by} made {name} an admin"),
                    _ => format!("{by} made {name} a member"),
                };
                Self::system_message(&mut tx, &mut ev, group_id, user_id, body).await?;
            }
            self.member_view(&mut tx, user_id, group_id, target).await
        })
    }

    async fn transfer_ownership(
        &self,
        user_id: &str,
        group_id: &str,
        target: &str,
    ) -> Result<p::Conversation> {
        write_tx!(self, |tx, ev| {
            let my_role = Self::group_role(&mut tx, group_id, user_id).await?;
            if my_role != p::Role::Owner {
                return Err(Error::forbidden("only the owner can transfer ownership"));
            }
            if target == user_id {
                return Err(Error::invalid("user_id", "you already own this group"));
            }
            Self::role_of(&mut tx, group_id, target)
                .await?
                .ok_or_else(|| Error::not_found("member"))?;
            for (who, role) in [(target, p::Role::Owner), (user_id, p::Role::Admin)] {
                Self::change_role(&mut tx, &mut ev, group_id, who, role).await?;
            }
            let by = Self::display_name(&mut tx, user_id).await?;
            let name = Self::display_name(&mut tx, target).await?;
            Self::system_message(
                &mut tx,
                &mut ev,
                group_id,
                user_id,
                format!("{by} made {name} the owner"),
            )
            .await?;
            self.emit_conversation_updated(&mut tx, &mut ev, group_id)
                .await?;
            self.conv_view(&mut tx, user_id, group_id).await
        })
    }

    async fn member_ids_if_member(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Option<Vec<String>>> {
        let mut c = self.read.acquire().await?;
        let ids = Self::member_ids(&mut c, conversation_id).await?;
        Ok(if ids.iter().any(|i| i == user_id) {
            Some(ids)
        } else {
            None
        })
    }
}

#[async_trait]
impl Messages for SqlStore {
    async fn send_messages(&self, batch: Vec<NewMessage>) -> Vec<Result<SendOutcome>> {
        let public = |e: Error| {
            if let Error::Internal(inner) = &e {
                tracing::error!(error = %format!("{inner:#}"), "message send failed");
            }
            let (code, msg) = e.public();
            Error::new(code, msg)
        };
        let simple = batch
            .iter()
            .all(|m| m.reply_to_seq.is_none() && m.attachment_ids.is_empty());
        let first = if Self::MULTI_STATEMENT && simple {
            self.send_batch_fast(&batch).await
        } else {
            self.send_batch_once(&batch).await
        };
        match first {
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
        user_id: &str,
        conversation_id: &str,
        page: HistoryPage,
        limit: i64,
    ) -> Result<(Vec<p::Message>, Option<i64>)> {
        let mut c = self.read.acquire().await?;
        if Self::role_of(&mut c, conversation_id, user_id)
            .await?
            .is_none()
        {
            return Err(Error::not_found("conversation"));
        }
        let q = match page {
            // The newest page is "before" a seq larger than any.
            HistoryPage::Latest | HistoryPage::Before(_) => sqlx::query_as::<_, MsgRow>(concat!(
                "SELECT ",
                msg_cols!(),
                " FROM messages m WHERE m.conversation_id = $1 AND m.seq < $3
                  AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $2 AND h.message_id = m.id)
                  ORDER BY m.seq DESC LIMIT $4"
            ))
            .bind(conversation_id)
            .bind(user_id)
            .bind(match page {
                HistoryPage::Before(s) => s,
                _ => i64::MAX,
            }),
            HistoryPage::After(s) => sqlx::query_as::<_, MsgRow>(concat!(
                "SELECT ",
                msg_cols!(),
                " FROM messages m WHERE m.conversation_id = $1 AND m.seq > $3
                  AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $2 AND h.message_id = m.id)
                  ORDER BY m.seq ASC LIMIT $4"
            ))
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
            messages.push(self.finish(&mut c, row).await?);
        }
        Ok((messages, next))
    }

    async fn edit_message(
        &self,
        user_id: &str,
        conversation_id: &str,
        seq: i64,
        body: String,
    ) -> Result<p::Message> {
        write_tx!(self, |tx, ev| {
            if Self::role_of(&mut tx, conversation_id, user_id)
                .await?
                .is_none()
            {
                return Err(Error::not_found("conversation"));
            }
            let row = Self::message_by_seq(&mut tx, conversation_id, seq)
                .await?
                .ok_or_else(|| Error::not_found("message"))?;
            if row.sender_id != user_id || row.kind == "system" {
                return Err(Error::forbidden("only the author can edit a message"));
            }
            if row.deleted {
                return Err(Error::conflict("a deleted message cannot be edited"));
            }
            sqlx::query("UPDATE messages SET body = $3, edited_at = $4 WHERE conversation_id = $1 AND seq = $2")
                .bind(conversation_id)
                .bind(seq)
                .bind(ev.keys.encrypt(column::MESSAGE_BODY, &body))
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            let row = Self::message_by_seq(&mut tx, conversation_id, seq)
                .await?
                .ok_or_else(|| Error::not_found("message"))?;
            let message = self.finish(&mut tx, row).await?;
            Self::emit_conv(
                &mut tx,
                &mut ev,
                conversation_id,
                &ServerFrame::MessageUpdated {
                    message: message.clone(),
                    stream_pos: None,
                },
            )
            .await?;
            Ok(message)
        })
    }

    async fn delete_message(
        &self,
        user_id: &str,
        conversation_id: &str,
        seq: i64,
        for_everyone: bool,
    ) -> Result<()> {
        write_tx!(self, |tx, ev| {
            let role = Self::role_of(&mut tx, conversation_id, user_id)
                .await?
                .ok_or_else(|| Error::not_found("conversation"))?;
            let row = Self::message_by_seq(&mut tx, conversation_id, seq)
                .await?
                .ok_or_else(|| Error::not_found("message"))?;
            if for_everyone {
                let kind: String =
                    sqlx::query_scalar("SELECT kind FROM conversations WHERE id = $1")
                        .bind(conversation_id)
                        .fetch_one(&mut *tx)
                        .await?;
                let moderator = kind == "group" && role >= p::Role::Admin;
                if row.sender_id != user_id && !moderator {
                    return Err(Error::forbidden(
                        "only the author or a group admin can delete this for everyone",
                    ));
                }
                if !row.deleted {
                    // The row stays, keeping its seq; the content is erased for good.
                    sqlx::query("UPDATE messages SET deleted = TRUE, body = $3 WHERE conversation_id = $1 AND seq = $2")
                        .bind(conversation_id)
                        .bind(seq)
                        // Sealed like any body: every stored body is ciphertext, even an empty one.
                        .bind(ev.keys.encrypt(column::MESSAGE_BODY, ""))
                        .execute(&mut *tx)
                        .await?;
                    let frame = ServerFrame::MessageDeleted {
                        conversation_id: conversation_id.to_owned(),
                        seq,
                        scope: Some("everyone".into()),
                        stream_pos: None,
                    };
                    Self::emit_conv(&mut tx, &mut ev, conversation_id, &frame).await?;
                }
            } else {
                let r = sqlx::query("INSERT INTO hidden_messages (user_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(user_id)
                    .bind(&row.id)
                    .execute(&mut *tx)
                    .await?;
                if r.rows_affected() > 0 {
                    let frame = ServerFrame::MessageDeleted {
                        conversation_id: conversation_id.to_owned(),
                        seq,
                        scope: Some("me".into()),
                        stream_pos: None,
                    };
                    Self::emit_user(&mut tx, &mut ev, user_id, &frame).await?;
                }
            }
            Ok(())
        })
    }

    async fn mark_read(
        &self,
        user_id: &str,
        conversation_id: &str,
        seq: i64,
    ) -> Result<p::ReadMarker> {
        if seq < 0 {
            return Err(Error::invalid("seq", "seq must not be negative"));
        }
        write_tx!(self, |tx, ev| {
            let row: Option<(i64, i64)> = sqlx::query_as(
                "SELECT m.last_read_seq, c.last_seq FROM members m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.conversation_id = $1 AND m.user_id = $2",
            )
            .bind(conversation_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (current, last_seq) = row.ok_or_else(|| Error::not_found("conversation"))?;
            // Markers only move forward, and never past the last message.
            let target = seq.min(last_seq);
            let marker = if target > current {
                sqlx::query("UPDATE members SET last_read_seq = $3 WHERE conversation_id = $1 AND user_id = $2")
                    .bind(conversation_id)
                    .bind(user_id)
                    .bind(target)
                    .execute(&mut *tx)
                    .await?;
                let frame = ServerFrame::Read {
                    conversation_id: conversation_id.to_owned(),
                    user_id: user_id.to_owned(),
                    seq: target,
                    stream_pos: None,
                };
                Self::emit_conv(&mut tx, &mut ev, conversation_id, &frame).await?;
                target
            } else {
                current
            };
            let unread: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND seq > $2 AND sender_id <> $3
                 AND NOT deleted AND kind <> 'system'",
            )
            .bind(conversation_id)
            .bind(marker)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
            Ok(p::ReadMarker {
                conversation_id: conversation_id.to_owned(),
                last_read_seq: marker,
                unread_count: unread,
            })
        })
    }
}

#[async_trait]
impl MediaStore for SqlStore {
    async fn create_media(&self, media: MediaRecord) -> Result<p::Media> {
        let mut c = self.write.acquire().await?;
        sqlx::query(
            "INSERT INTO media (id, owner_id, kind, mime, size, name, storage_key, sha256, width, height,
                                thumb_key, thumb_size, thumb_mime, thumb_sha256, avatar, created_at, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, FALSE, $15, $16)",
        )
        .bind(&media.id)
        .bind(&media.owner_id)
        .bind(&media.kind)
        .bind(&media.mime)
        .bind(media.size)
        .bind(self.keys.encrypt(column::MEDIA_NAME, &media.name))
        .bind(&media.storage_key)
        .bind(&media.sha256)
        .bind(media.width)
        .bind(media.height)
        .bind(&media.thumb_key)
        .bind(media.thumb_size)
        .bind(&media.thumb_mime)
        .bind(&media.thumb_sha256)
        .bind(media.created_at)
        .bind(media.duration_ms)
        .execute(&mut *c)
        .await?;
        Ok(media.to_protocol())
    }

    async fn media_for(&self, viewer: Option<&str>, media_id: &str) -> Result<Option<MediaRecord>> {
        sqlx::query_as::<_, MediaRecord>(
            "SELECT md.* FROM media md WHERE md.id = $1 AND (
                 md.avatar
                 OR md.owner_id = $2
                 OR EXISTS (SELECT 1 FROM message_media mm
                            JOIN members mb ON mb.conversation_id = mm.conversation_id
                            WHERE mm.media_id = md.id AND mb.user_id = $2))",
        )
        .bind(media_id)
        .bind(viewer)
        .fetch_optional(&self.read)
        .await?
        .map(|r| self.open_media(r))
        .transpose()
    }

    async fn take_orphan_media(&self, created_before_ms: i64, limit: i64) -> Result<Vec<MediaRecord>> {
        let mut c = self.write.acquire().await?;
        let rows = sqlx::query_as::<_, MediaRecord>(
            "SELECT * FROM media WHERE attached_at IS NULL AND NOT avatar AND created_at < $1
             ORDER BY created_at LIMIT $2",
        )
        .bind(created_before_ms)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
        for r in &rows {
            // Re-checked in the DELETE: a send may have attached it since the SELECT.
            sqlx::query("DELETE FROM media WHERE id = $1 AND attached_at IS NULL AND NOT avatar")
                .bind(&r.id)
                .execute(&mut *c)
                .await?;
        }
        self.open_media_all(rows)
    }
}

#[async_trait]
impl PushStore for SqlStore {
    async fn add_push_subscription(&self, user_id: &str, endpoint: &str, p256dh: &str, auth: &str) -> Result<p::PushSubscription> {
        let mut conn = self.write.acquire().await?;
        let mut c = conn.begin().await?;
        // Ordered with other nodes' writes, so two subscribes at once cannot both keep an
        // eleventh subscription.
        Self::lock_writes(&mut c).await?;
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
        .bind(crate::store::MAX_PUSH_SUBSCRIPTIONS)
        .execute(&mut *c)
        .await?;
        c.commit().await?;
        Ok(p::PushSubscription { id, endpoint: endpoint.to_owned(), created_at: rfc3339(now) })
    }

    async fn remove_push_subscription(&self, user_id: &str, endpoint: &str) -> Result<bool> {
        let mut c = self.write.acquire().await?;
        let r = sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
            .bind(user_id)
            .bind(endpoint)
            .execute(&mut *c)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn push_subscriptions(&self, user_id: &str) -> Result<Vec<p::PushSubscription>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, endpoint, created_at FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, endpoint, at)| p::PushSubscription { id, endpoint, created_at: rfc3339(at) })
            .collect())
    }

    async fn push_targets(&self, user_id: &str) -> Result<Vec<PushTarget>> {
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
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM push_subscriptions LIMIT 1) x")
            .fetch_one(&self.read)
            .await?;
        Ok(n > 0)
    }

    async fn set_mute(&self, user_id: &str, conversation_id: &str, until: Option<i64>) -> Result<p::MuteState> {
        let mut c = self.write.acquire().await?;
        let r = sqlx::query("UPDATE members SET muted_until = $3 WHERE conversation_id = $1 AND user_id = $2")
            .bind(conversation_id)
            .bind(user_id)
            .bind(until)
            .execute(&mut *c)
            .await?;
        if r.rows_affected() == 0 {
            return Err(Error::not_found("conversation"));
        }
        Ok(p::MuteState { conversation_id: conversation_id.to_owned(), muted_until: until.map(rfc3339) })
    }

    async fn push_context(&self, conversation_id: &str, seq: i64) -> Result<Option<PushContext>> {
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
        let rows: Vec<(String, i64, Option<i64>, bool, String, String, String)> = sqlx::query_as(
            "SELECT m.user_id, m.last_read_seq, m.muted_until, u.notification_previews, s.endpoint, s.p256dh, s.auth
             FROM members m JOIN users u ON u.id = m.user_id JOIN push_subscriptions s ON s.user_id = m.user_id
             WHERE m.conversation_id = $1 AND m.user_id <> $2
             ORDER BY m.user_id",
        )
        .bind(conversation_id)
        .bind(&msg.sender_id)
        .fetch_all(&mut *c)
        .await?;
        let mut recipients: Vec<PushRecipient> = Vec::new();
        for (user_id, last_read_seq, muted_until, previews, endpoint, p256dh, auth) in rows {
            let target = PushTarget { user_id: user_id.clone(), endpoint, p256dh, auth };
            match recipients.last_mut() {
                Some(r) if r.user_id == user_id => r.targets.push(target),
                _ => recipients.push(PushRecipient { user_id, last_read_seq, muted_until, previews, targets: vec![target] }),
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
            recipients,
        }))
    }
}

#[async_trait]
impl EventLog for SqlStore {
    async fn stream_head(&self) -> Result<i64> {
        let mut c = self.read.acquire().await?;
        Self::stream_head_in(&mut c).await
    }

    async fn events_since(
        &self,
        user_id: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>> {
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
        conversation_id: &str,
        after_seq: i64,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Durable>> {
        self.message_events_impl(conversation_id, after_seq, before_seq, limit)
            .await
    }

    async fn conversation_heads(&self, user_id: &str) -> Result<Vec<(String, i64)>> {
        self.conversation_heads_impl(user_id).await
    }
}

#[async_trait]
impl Maintenance for SqlStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        Self::BACKEND
    }

    async fn encryption_key_id(&self) -> anyhow::Result<Option<String>> {
        self.encryption_key_id_impl().await
    }

    async fn reencrypt(&self, all: bool) -> anyhow::Result<ReencryptReport> {
        self.reencrypt_impl(all).await
    }

    async fn bulk_seed(
        &self,
        prefix: &str,
        user_ids: &[String],
        password_hash: &str,
        conversations: &[SeedConversation],
    ) -> Result<Vec<String>> {
        self.seed_fixtures(prefix, user_ids, password_hash, conversations)
            .await
    }
}

impl SqlStore {
    /// See [`Store::message_events`].
    async fn message_events_impl(
        &self,
        conversation_id: &str,
        after_seq: i64,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Durable>> {
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
        let members: Vec<(String, i64)> = sqlx::query_as(
            "SELECT user_id, joined_pos FROM members WHERE conversation_id = $1",
        )
        .bind(conversation_id)
        .fetch_all(&mut *c)
        .await?;
        rows.into_iter()
            .map(|(pos, payload, seq)| {
                let payload = self.keys.decrypt(column::EVENT_PAYLOAD, &payload)?;
                Ok(Durable {
                    pos,
                    kind: crate::events::EventKind::Message,
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

    /// See [`Store::conversation_heads`].
    async fn conversation_heads_impl(&self, user_id: &str) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT c.id, c.last_seq FROM conversations c
             JOIN members m ON m.conversation_id = c.id WHERE m.user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?)
    }

    /// Who sent and who received a request, if the caller is one of them (else "not found").
    async fn request_parties(
        c: &mut Conn,
        request_id: &str,
        caller: &str,
    ) -> Result<(String, String)> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT from_id, to_id FROM friend_requests WHERE id = $1")
                .bind(request_id)
                .fetch_optional(&mut *c)
                .await?;
        match row {
            Some((from, to)) if from == caller || to == caller => Ok((from, to)),
            _ => Err(Error::not_found("friend request")),
        }
    }

    async fn drop_request(
        c: &mut Conn,
        ev: &mut Events,
        request_id: &str,
        from: &str,
        to: &str,
    ) -> Result<()> {
        sqlx::query("DELETE FROM friend_requests WHERE id = $1")
            .bind(request_id)
            .execute(&mut *c)
            .await?;
        let frame = ServerFrame::FriendRequestRemoved {
            request_id: request_id.to_owned(),
            stream_pos: None,
        };
        Self::emit_user(c, ev, from, &frame).await?;
        Self::emit_user(c, ev, to, &frame).await?;
        Ok(())
    }

    /// Turns a request into a friendship; returns the new friend as `to` sees them.
    async fn befriend(
        &self,
        c: &mut Conn,
        ev: &mut Events,
        request_id: &str,
        from: &str,
        to: &str,
    ) -> Result<p::User> {
        Self::drop_request(c, ev, request_id, from, to).await?;
        // If both had asked, the other direction goes too.
        let reverse: Option<String> =
            sqlx::query_scalar("SELECT id FROM friend_requests WHERE from_id = $1 AND to_id = $2")
                .bind(to)
                .bind(from)
                .fetch_optional(&mut *c)
                .await?;
        if let Some(rid) = reverse {
            Self::drop_request(c, ev, &rid, to, from).await?;
        }
        let now = now_ms();
        for (a, b) in [(from, to), (to, from)] {
            sqlx::query("INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(a)
                .bind(b)
                .bind(now)
                .execute(&mut *c)
                .await?;
        }
        let to_view = self.public_user(c, to, from).await?;
        let from_view = self.public_user(c, from, to).await?;
        Self::emit_user(
            c,
            ev,
            to,
            &ServerFrame::FriendAdded {
                user: to_view.clone(),
                stream_pos: None,
            },
        )
        .await?;
        Self::emit_user(
            c,
            ev,
            from,
            &ServerFrame::FriendAdded {
                user: from_view,
                stream_pos: None,
            },
        )
        .await?;
        Ok(to_view)
    }

    /// Ends a friendship both ways; returns whether there was one.
    async fn unfriend(c: &mut Conn, ev: &mut Events, a: &str, b: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)",
        )
        .bind(a)
        .bind(b)
        .execute(&mut *c)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        Self::emit_user(
            c,
            ev,
            a,
            &ServerFrame::FriendRemoved {
                user_id: b.to_owned(),
                stream_pos: None,
            },
        )
        .await?;
        Self::emit_user(
            c,
            ev,
            b,
            &ServerFrame::FriendRemoved {
                user_id: a.to_owned(),
                stream_pos: None,
            },
        )
        .await?;
        Ok(true)
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

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_prefix("a_b%"), "a\\_b\\%%");
    }
}

/// Messages per multi-statement query on the fast send path: large enough to amortize the
/// round trip, small enough that the few distinct query texts (one per size) stay prepared.
const FAST_CHUNK: usize = 16;

/// The checks of `n` sends, one row each; arguments per send: conversation, sender, client_id.
fn fast_check_sql(n: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(n * 700);
    for i in 0..n {
        let (cv, sd, cl) = (3 * i + 1, 3 * i + 2, 3 * i + 3);
        let _ = write!(
            sql,
            "WITH p AS (SELECT user_id AS id FROM members WHERE conversation_id = ${cv} AND user_id <> ${sd} LIMIT 1)
             SELECT (SELECT id FROM messages WHERE sender_id = ${sd} AND client_id = ${cl}),
                    (SELECT c.kind FROM conversations c JOIN members m ON m.conversation_id = c.id
                      WHERE c.id = ${cv} AND m.user_id = ${sd}),
                    (SELECT id FROM p),
                    EXISTS (SELECT 1 FROM blocks b JOIN p
                             ON (b.blocker_id = ${sd} AND b.blocked_id = p.id) OR (b.blocker_id = p.id AND b.blocked_id = ${sd})),
                    EXISTS (SELECT 1 FROM friendships f JOIN p ON f.user_id = ${sd} AND f.friend_id = p.id),
                    (SELECT last_seq FROM conversations WHERE id = ${cv});
"
        );
    }
    sql
}

/// The writes of `n` new messages, returning each event's stream position. Arguments per
/// message: id, conversation, seq, sender, client_id, kind, body, now, event payload.
/// (`MAX(…)` with two arguments is SQLite's; this path runs only there.)
fn fast_write_sql(n: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(n * 800);
    for i in 0..n {
        let b = 9 * i;
        let _ = write!(
            sql,
            "INSERT INTO messages (id, conversation_id, seq, sender_id, client_id, kind, body, reply_to_seq, created_at)
             VALUES (${id}, ${cv}, ${sq}, ${sd}, ${cl}, ${kd}, ${bd}, NULL, ${now});
             UPDATE members SET last_read_seq = ${sq} WHERE conversation_id = ${cv} AND user_id = ${sd} AND last_read_seq < ${sq};
             UPDATE conversations SET last_seq = MAX(last_seq, ${sq}), last_activity_at = ${now} WHERE id = ${cv};
             INSERT INTO events (conversation_id, user_id, payload, created_at, seq) VALUES (${cv}, NULL, ${pl}, ${now}, ${sq}) RETURNING pos;
",
            id = b + 1,
            cv = b + 2,
            sq = b + 3,
            sd = b + 4,
            cl = b + 5,
            kd = b + 6,
            bd = b + 7,
            now = b + 8,
            pl = b + 9,
        );
    }
    sql
}
