//! The records of uploads: who may read one (its uploader, members of a conversation it was
//! sent in, anyone for avatars), attaching, avatars, and taking orphans for garbage
//! collection. File names are sealed.
//!
//! The bytes are the media service's (`crate::media`): this module must not read or remove
//! blobs; `take_orphan_media` hands the deleted records back so the service removes theirs.

use async_trait::async_trait;
use chatnode_protocol as p;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, Conn, SqlStore};
use crate::crypto::column;
use crate::domain::{MediaId, UserId};
use crate::error::{Error, Result};
use crate::store::{MediaRecord, MediaStore};

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
    /// An upload as stored, with its file name opened.
    pub(super) fn open_media(&self, mut r: MediaRecord) -> Result<MediaRecord> {
        r.name = self.keys.decrypt(column::MEDIA_NAME, &r.name)?;
        Ok(r)
    }

    pub(super) fn open_media_all(&self, rows: Vec<MediaRecord>) -> Result<Vec<MediaRecord>> {
        rows.into_iter().map(|r| self.open_media(r)).collect()
    }

    /// Marks an upload of `owner` as an avatar (readable by anyone); it must be an image.
    pub(super) async fn adopt_avatar(c: &mut Conn<B>, owner: &str, media_id: &str) -> Result<()> {
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM media WHERE id = $1 AND owner_id = $2")
                .bind(media_id)
                .bind(owner)
                .fetch_optional(&mut *c)
                .await?;
        match kind.as_deref() {
            Some("image") => {}
            Some(_) => {
                return Err(Error::invalid(
                    "avatar_media_id",
                    "an avatar must be an image",
                ));
            }
            None => return Err(Error::not_found("media")),
        }
        sqlx::query("UPDATE media SET avatar = TRUE WHERE id = $1")
            .bind(media_id)
            .execute(&mut *c)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> MediaStore for SqlStore<B>
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

    async fn media_for(
        &self,
        viewer: Option<&UserId>,
        media_id: &MediaId,
    ) -> Result<Option<MediaRecord>> {
        let media_id = media_id.as_str();
        let viewer = viewer.map(UserId::as_str);
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

    async fn take_orphan_media(
        &self,
        created_before_ms: i64,
        limit: i64,
    ) -> Result<Vec<MediaRecord>> {
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
