//! Benchmark fixtures (`chatnode bench-seed`): users with a login session each, friendships,
//! direct chats and groups, written in one transaction. Not reachable over HTTP: it runs from
//! the command line against a data directory, so a load test can have 20,000 users with
//! friends and groups in seconds instead of paying an argon2 hash and a dozen requests per
//! user. It must never be wired to a route.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, Conn, SqlStore};
use crate::domain::{SessionId, UserId};
use crate::error::Result;
use crate::store::SeedConversation;
use crate::time::{new_id, now_ms};

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
    /// Inserts `user_ids.len()` users (usernames `{prefix}{index}`), one login session each
    /// (ids returned, in order) and the conversations, in one transaction.
    pub(super) async fn seed_fixtures(
        &self,
        prefix: &str,
        user_ids: &[UserId],
        password_hash: &str,
        conversations: &[SeedConversation],
    ) -> Result<Vec<SessionId>> {
        let mut w = self.write_tx().await?;
        let now = now_ms();
        let mut sessions = Vec::with_capacity(user_ids.len());
        for (i, id) in user_ids.iter().enumerate() {
            let name = format!("{prefix}{i}");
            sqlx::query(
                "INSERT INTO users (id, username, username_key, display_name, display_key, password_hash, created_at)
                 VALUES ($1, $2, $2, $2, $2, $3, $4)",
            )
            .bind(id.as_str())
            .bind(&name)
            .bind(password_hash)
            .bind(now)
            .execute(w.conn())
            .await?;
            let sid = new_id();
            sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(&sid)
                .bind(id.as_str())
                .bind(now)
                .execute(w.conn())
                .await?;
            sessions.push(SessionId::trusted(sid));
        }
        for (n, conv) in conversations.iter().enumerate() {
            let ids: Vec<&str> = conv.members.iter().map(|&i| user_ids[i].as_str()).collect();
            if ids.len() == 2 {
                let (a, b) = if ids[0] < ids[1] {
                    (ids[0], ids[1])
                } else {
                    (ids[1], ids[0])
                };
                sqlx::query(
                    "INSERT INTO conversations (id, kind, direct_key, created_at, last_activity_at) VALUES ($1, 'direct', $2, $3, $3)",
                )
                .bind(conv.id.as_str())
                .bind(format!("{a}:{b}"))
                .bind(now)
                .execute(w.conn())
                .await?;
                for (x, y) in [(a, b), (b, a)] {
                    sqlx::query("INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(x)
                        .bind(y)
                        .bind(now)
                        .execute(w.conn())
                        .await?;
                }
            } else {
                let name = format!("{prefix}group{n}");
                sqlx::query(
                    "INSERT INTO conversations (id, kind, name, name_key, created_at, last_activity_at) VALUES ($1, 'group', $2, $2, $3, $3)",
                )
                .bind(conv.id.as_str())
                .bind(&name)
                .bind(now)
                .execute(w.conn())
                .await?;
            }
            for (k, user) in ids.iter().enumerate() {
                let role = if ids.len() > 2 && k == 0 {
                    "owner"
                } else {
                    "member"
                };
                sqlx::query(
                    "INSERT INTO members (conversation_id, user_id, role, joined_at, joined_pos, last_read_seq)
                     VALUES ($1, $2, $3, $4, 0, 0)",
                )
                .bind(conv.id.as_str())
                .bind(*user)
                .bind(role)
                .bind(now)
                .execute(w.conn())
                .await?;
            }
        }
        w.finish(Ok(sessions)).await
    }
}
