//! Friend requests, friendships and blocks: the rules between two people (no request to
//! someone who blocked you, asking back is accepting, a block ends the friendship and any
//! request both ways) and the events that tell both of them.
//!
//! It owns the `friend_requests`, `friendships` and `blocks` tables and must not touch
//! conversations: an unfriending leaves a direct chat readable, and what a block or an
//! unfriending means for sending is decided when a message is sent (`messages`).

use std::sync::LazyLock;

use async_trait::async_trait;
use chatnode_protocol::{self as p, ErrorCode, ServerFrame};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use super::users::{USER_COLUMNS, UserRow};
use super::{Backend, Conn, SqlStore, WriteTx};
use crate::domain::{FriendRequestId, UserId};
use crate::error::{Error, Result};
use crate::store::{FriendRequestOutcome, Social};
use crate::time::{new_id, now_ms, rfc3339};

/// Which side of a friend request may end it.
enum Party {
    Sender,
    Recipient,
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
    /// Whether the user is a bot (deleted or not).
    pub(super) async fn user_is_bot(c: &mut Conn<B>, id: &str) -> Result<bool> {
        let owner: Option<Option<String>> =
            sqlx::query_scalar("SELECT bot_owner_id FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *c)
                .await?;
        Ok(owner.flatten().is_some())
    }

    /// Whether the user is a bot that was not deleted: anyone may open a direct chat with
    /// it, and a group admin may add it, with no friendship.
    pub(super) async fn live_bot(c: &mut Conn<B>, id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE id = $1 AND bot_owner_id IS NOT NULL AND password_hash = '!' AND username_key NOT LIKE 'deleted-%'",
        )
        .bind(id)
        .fetch_one(&mut *c)
        .await?;
        Ok(n > 0)
    }

    pub(super) async fn are_friends(c: &mut Conn<B>, a: &str, b: &str) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM friendships WHERE user_id = $1 AND friend_id = $2",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&mut *c)
        .await?
            > 0)
    }

    pub(super) async fn blocked_either(c: &mut Conn<B>, a: &str, b: &str) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1)",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&mut *c)
        .await?
            > 0)
    }

    /// Who sent and who received a request, if the caller is one of them (else "not found").
    pub(super) async fn request_parties(
        c: &mut Conn<B>,
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

    pub(super) async fn drop_request(
        w: &mut WriteTx<'_, B>,
        request_id: &str,
        from: &str,
        to: &str,
    ) -> Result<()> {
        sqlx::query("DELETE FROM friend_requests WHERE id = $1")
            .bind(request_id)
            .execute(w.conn())
            .await?;
        let frame = ServerFrame::FriendRequestRemoved {
            request_id: request_id.to_owned(),
            stream_pos: None,
        };
        w.emit_user(from, &frame).await?;
        w.emit_user(to, &frame).await?;
        Ok(())
    }

    /// Declines (the recipient) or cancels (the sender) a request: only `who` may end it.
    async fn end_request(
        &self,
        user_id: &UserId,
        request_id: &FriendRequestId,
        who: Party,
    ) -> Result<()> {
        let user_id = user_id.as_str();
        let request_id = request_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let (from, to) = Self::request_parties(w.conn(), request_id, user_id).await?;
            let refusal = match who {
                Party::Recipient if to != user_id => {
                    Some("only the recipient can decline a request; cancel it instead")
                }
                Party::Sender if from != user_id => {
                    Some("only the sender can cancel a request; decline it instead")
                }
                _ => None,
            };
            if let Some(msg) = refusal {
                return Err(Error::forbidden(msg));
            }
            Self::drop_request(&mut w, request_id, &from, &to).await
        }
        .await;
        w.finish(out).await
    }

    /// Turns a request into a friendship; returns the new friend as `to` sees them.
    pub(super) async fn befriend(
        &self,
        w: &mut WriteTx<'_, B>,
        request_id: &str,
        from: &str,
        to: &str,
    ) -> Result<p::User> {
        Self::drop_request(w, request_id, from, to).await?;
        // If both had asked, the other direction goes too.
        let reverse: Option<String> =
            sqlx::query_scalar("SELECT id FROM friend_requests WHERE from_id = $1 AND to_id = $2")
                .bind(to)
                .bind(from)
                .fetch_optional(w.conn())
                .await?;
        if let Some(rid) = reverse {
            Self::drop_request(w, &rid, to, from).await?;
        }
        let now = now_ms();
        for (a, b) in [(from, to), (to, from)] {
            sqlx::query("INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(a)
                .bind(b)
                .bind(now)
                .execute(w.conn())
                .await?;
        }
        let to_view = self.public_user(w.conn(), to, from).await?;
        let from_view = self.public_user(w.conn(), from, to).await?;
        w.emit_user(
            to,
            &ServerFrame::FriendAdded {
                user: to_view.clone(),
                stream_pos: None,
            },
        )
        .await?;
        w.emit_user(
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
    pub(super) async fn unfriend(w: &mut WriteTx<'_, B>, a: &str, b: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)",
        )
        .bind(a)
        .bind(b)
        .execute(w.conn())
        .await?;
        if B::rows_affected(&r) == 0 {
            return Ok(false);
        }
        w.emit_user(
            a,
            &ServerFrame::FriendRemoved {
                user_id: b.to_owned(),
                stream_pos: None,
            },
        )
        .await?;
        w.emit_user(
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

#[async_trait]
impl<B: Backend> Social for SqlStore<B>
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
    async fn send_friend_request(
        &self,
        from: &UserId,
        to: &UserId,
    ) -> Result<FriendRequestOutcome> {
        let from = from.as_str();
        let to = to.as_str();
        if from == to {
            return Err(Error::invalid("user_id", "you cannot befriend yourself"));
        }
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            Self::require_user(w.conn(), to).await?;
            if Self::user_is_bot(w.conn(), from).await? || Self::user_is_bot(w.conn(), to).await? {
                return Err(Error::forbidden("bots do not have friends"));
            }
            if Self::blocked_either(w.conn(), from, to).await? {
                return Err(Error::new(
                    ErrorCode::Blocked,
                    "you cannot send a request to this person",
                ));
            }
            if Self::are_friends(w.conn(), from, to).await? {
                return Err(Error::conflict("you are already friends"));
            }
            let reverse: Option<String> = sqlx::query_scalar(
                "SELECT id FROM friend_requests WHERE from_id = $1 AND to_id = $2",
            )
            .bind(to)
            .bind(from)
            .fetch_optional(w.conn())
            .await?;
            if let Some(req_id) = reverse {
                // They already asked: asking back is accepting.
                let friend = self.befriend(&mut w, &req_id, to, from).await?;
                return Ok(FriendRequestOutcome::Friends(friend));
            }
            let exists: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM friend_requests WHERE from_id = $1 AND to_id = $2",
            )
            .bind(from)
            .bind(to)
            .fetch_one(w.conn())
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
                .execute(w.conn())
                .await?;
            let request = p::FriendRequest {
                id,
                from: self.public_user(w.conn(), to, from).await?,
                to: self.public_user(w.conn(), from, to).await?,
                created_at: rfc3339(now),
            };
            let frame = ServerFrame::FriendRequest {
                request: request.clone(),
                stream_pos: None,
            };
            w.emit_user(to, &frame).await?;
            w.emit_user(from, &frame).await?;
            Ok(FriendRequestOutcome::Requested(request))
        }
        .await;
        w.finish(out).await
    }

    async fn friend_requests(&self, user_id: &UserId) -> Result<p::FriendRequestList> {
        let user_id = user_id.as_str();
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

    async fn accept_friend_request(
        &self,
        user_id: &UserId,
        request_id: &FriendRequestId,
    ) -> Result<p::User> {
        let user_id = user_id.as_str();
        let request_id = request_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            let (from, to) = Self::request_parties(w.conn(), request_id, user_id).await?;
            if to != user_id {
                return Err(Error::forbidden("only the recipient can accept a request"));
            }
            self.befriend(&mut w, request_id, &from, &to).await
        }
        .await;
        w.finish(out).await
    }

    async fn decline_friend_request(
        &self,
        user_id: &UserId,
        request_id: &FriendRequestId,
    ) -> Result<()> {
        self.end_request(user_id, request_id, Party::Recipient)
            .await
    }

    async fn cancel_friend_request(
        &self,
        user_id: &UserId,
        request_id: &FriendRequestId,
    ) -> Result<()> {
        self.end_request(user_id, request_id, Party::Sender).await
    }

    async fn friends(&self, user_id: &UserId) -> Result<Vec<p::User>> {
        let user_id = user_id.as_str();
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {USER_COLUMNS} FROM friendships f JOIN users u ON u.id = f.friend_id WHERE f.user_id = $1 ORDER BY u.display_key"
            )
        });
        let rows = sqlx::query_as::<_, UserRow>(SQL.as_str())
            .bind(user_id)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(|r| self.user_from_row(r, true)).collect())
    }

    async fn friend_ids(&self, user_id: &UserId) -> Result<Vec<UserId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = $1")
                .bind(user_id.as_str())
                .fetch_all(&self.read)
                .await?;
        Ok(ids.into_iter().map(UserId::trusted).collect())
    }

    async fn remove_friend(&self, user_id: &UserId, friend_id: &UserId) -> Result<()> {
        let user_id = user_id.as_str();
        let friend_id = friend_id.as_str();
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            if !Self::unfriend(&mut w, user_id, friend_id).await? {
                return Err(Error::not_found("friend"));
            }
            Ok(())
        }
        .await;
        w.finish(out).await
    }

    async fn block(&self, user_id: &UserId, target: &UserId) -> Result<()> {
        let user_id = user_id.as_str();
        let target = target.as_str();
        if user_id == target {
            return Err(Error::invalid("user_id", "you cannot block yourself"));
        }
        let mut w = self.write_tx().await?;
        let out: Result<_> = async {
            Self::require_user(w.conn(), target).await?;
            sqlx::query("INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(user_id)
                .bind(target)
                .bind(now_ms())
                .execute(w.conn())
                .await?;
            // A block ends the friendship and any pending request, both ways.
            Self::unfriend(&mut w, user_id, target).await?;
            let reqs: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT id, from_id, to_id FROM friend_requests
                 WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)",
            )
            .bind(user_id)
            .bind(target)
            .fetch_all(w.conn())
            .await?;
            for (id, from, to) in reqs {
                Self::drop_request(&mut w, &id, &from, &to).await?;
            }
            Ok(())
        }
        .await;
        w.finish(out).await
    }

    async fn unblock(&self, user_id: &UserId, target: &UserId) -> Result<()> {
        let user_id = user_id.as_str();
        let target = target.as_str();
        let mut c = self.write.acquire().await?;
        Self::require_user(&mut c, target).await?;
        sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
            .bind(user_id)
            .bind(target)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn blocks(&self, user_id: &UserId) -> Result<Vec<p::Block>> {
        let user_id = user_id.as_str();
        #[derive(FromRow)]
        struct BlockRow {
            #[sqlx(flatten)]
            user: UserRow,
            blocked_at: i64,
        }
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!("SELECT {USER_COLUMNS}, b.created_at AS blocked_at FROM blocks b JOIN users u ON u.id = b.blocked_id
               WHERE b.blocker_id = $1 ORDER BY b.created_at DESC")
        });
        let rows = sqlx::query_as::<_, BlockRow>(SQL.as_str())
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
