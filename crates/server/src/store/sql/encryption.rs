//! Encryption at rest, the database side: the canary that proves a keyring is the database's,
//! and the sweep that brings every sealed column under the current key (first start after an
//! upgrade from plaintext, an interrupted rotation, `chatnode rotate-key`). Runs before the
//! server serves (see `crate::encryption`, which decides the order of things).
//!
//! The sweep goes table by table in primary-key order, `SWEEP_BATCH` rows per transaction,
//! and picks only rows whose value does not start with the current key's header, so a re-run
//! skips what an interrupted run already did. It never drops a key: the caller keeps the old
//! keys in the keyring until `reencrypt` has returned.

use anyhow::Context;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, Conn, SqlStore};
use crate::crypto::column;
use crate::store::ReencryptReport;

/// Rows per sweep transaction: small enough that one transaction stays short, large enough
/// that the per-commit cost (an fsync on SQLite) is spread.
const SWEEP_BATCH: i64 = 500;

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
    pub(super) async fn stored_key_id(&self) -> anyhow::Result<Option<String>> {
        let canary: Option<String> =
            sqlx::query_scalar("SELECT canary FROM encryption WHERE id = 1")
                .fetch_optional(&self.write)
                .await?;
        Ok(canary.and_then(|c| crate::crypto::key_id_of(&c).map(str::to_owned)))
    }

    pub(super) async fn seal_all_under_current_key(
        &self,
        all: bool,
    ) -> anyhow::Result<ReencryptReport> {
        let (canary, state) = {
            let mut c = self.write.acquire().await?;
            // First start of a database with this version: a new one, or an older one whose
            // rows are plaintext. Either way the sweep below seals whatever is there.
            sqlx::query(
                "INSERT INTO encryption (id, canary, state) VALUES (1, $1, 'plaintext') ON CONFLICT DO NOTHING",
            )
            .bind(self.keys.encrypt(column::CANARY, crate::crypto::CANARY_TEXT))
            .execute(&mut *c)
            .await?;
            sqlx::query_as::<_, (String, String)>(
                "SELECT canary, state FROM encryption WHERE id = 1",
            )
            .fetch_one(&mut *c)
            .await?
        };
        match self.keys.decrypt(column::CANARY, &canary) {
            Ok(text) if text == crate::crypto::CANARY_TEXT => {}
            Err(crate::crypto::CryptoError::UnknownKey(id)) => anyhow::bail!(
                "the encryption key does not match this database: its data is under key {id}, the key(s) given are {}",
                self.keys.ids().join(", ")
            ),
            Ok(_) | Err(_) => anyhow::bail!(
                "the encryption canary does not open with key {}: the database or the key was altered",
                crate::crypto::key_id_of(&canary).unwrap_or("?")
            ),
        }
        if !all && state == "done" && self.keys.is_current(&canary) {
            return Ok(ReencryptReport::default());
        }
        let plaintext_ok = state == "plaintext";
        if !plaintext_ok {
            sqlx::query("UPDATE encryption SET state = 'rotating' WHERE id = 1")
                .execute(&self.write)
                .await?;
        }
        tracing::debug!(
            key = self.keys.current_id(),
            from = %state,
            "sealing stored values under the current encryption key"
        );
        let header = self.keys.current_header();
        let mut report = ReencryptReport {
            swept: true,
            ..Default::default()
        };
        self.sweep_users(&header, plaintext_ok, &mut report).await?;
        for (table, col, select, update) in [
            (
                "media",
                column::MEDIA_NAME,
                "SELECT id, name FROM media WHERE id > $1 AND substr(name, 1, 14) <> $2 ORDER BY id LIMIT $3",
                "UPDATE media SET name = $2 WHERE id = $1",
            ),
            (
                "messages",
                column::MESSAGE_BODY,
                "SELECT id, body FROM messages WHERE id > $1 AND substr(body, 1, 14) <> $2 ORDER BY id LIMIT $3",
                "UPDATE messages SET body = $2 WHERE id = $1",
            ),
            // A copy of an edited message's first body: sealed like `body` (same column key).
            (
                "messages",
                column::MESSAGE_BODY,
                "SELECT id, original_body FROM messages WHERE id > $1 AND original_body IS NOT NULL AND substr(original_body, 1, 14) <> $2 ORDER BY id LIMIT $3",
                "UPDATE messages SET original_body = $2 WHERE id = $1",
            ),
            // Service notifications (made with encryption at rest: never plaintext).
            (
                "notifications",
                column::NOTIFICATION_TEXT,
                "SELECT id, title FROM notifications WHERE id > $1 AND substr(title, 1, 14) <> $2 ORDER BY id LIMIT $3",
                "UPDATE notifications SET title = $2 WHERE id = $1",
            ),
            (
                "notifications",
                column::NOTIFICATION_TEXT,
                "SELECT id, body FROM notifications WHERE id > $1 AND substr(body, 1, 14) <> $2 ORDER BY id LIMIT $3",
                "UPDATE notifications SET body = $2 WHERE id = $1",
            ),
        ] {
            self.sweep_by_id(
                table,
                col,
                select,
                update,
                &header,
                plaintext_ok,
                &mut report,
            )
            .await?;
        }
        self.sweep_events(&header, plaintext_ok, &mut report)
            .await?;
        sqlx::query("UPDATE encryption SET canary = $1, state = 'done' WHERE id = 1")
            .bind(
                self.keys
                    .encrypt(column::CANARY, crate::crypto::CANARY_TEXT),
            )
            .execute(&self.write)
            .await?;
        if report.values > 0 {
            // Rewritten rows leave their old bytes (plaintext, or values under the old key)
            // in free pages or dead row versions: compact them away.
            B::compact(&self.write).await?;
        }
        Ok(report)
    }

    /// The plaintext of a stored value, and whether it was stored in plaintext. With
    /// `plaintext_ok` (a database that had plaintext), a value that does not open is taken as
    /// plaintext: a sealed value there that the keyring cannot open would need a key dropped
    /// before a sweep completed, which neither the server nor `rotate-key` does.
    fn unseal(&self, col: &str, value: &str, plaintext_ok: bool) -> anyhow::Result<(String, bool)> {
        match self.keys.decrypt(col, value) {
            Ok(plain) => Ok((plain, false)),
            Err(_) if plaintext_ok => Ok((value.to_owned(), true)),
            Err(e) => Err(e.into()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn sweep_by_id(
        &self,
        table: &str,
        col: &str,
        select: &'static str,
        update: &'static str,
        header: &str,
        plaintext_ok: bool,
        report: &mut ReencryptReport,
    ) -> anyhow::Result<()> {
        let mut after = String::new();
        loop {
            let mut w = self.write_tx().await?;
            let rows: Vec<(String, String)> = sqlx::query_as(select)
                .bind(&after)
                .bind(header)
                .bind(SWEEP_BATCH)
                .fetch_all(w.conn())
                .await?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = last.clone();
            for (id, value) in &rows {
                let (plain, was_plain) = self
                    .unseal(col, value, plaintext_ok)
                    .with_context(|| format!("{table} row {id}"))?;
                sqlx::query(update)
                    .bind(id)
                    .bind(self.keys.encrypt(col, &plain))
                    .execute(w.conn())
                    .await?;
                report.values += 1;
                report.plaintext += u64::from(was_plain);
            }
            w.finish(Ok(())).await?;
        }
        Ok(())
    }

    async fn sweep_events(
        &self,
        header: &str,
        plaintext_ok: bool,
        report: &mut ReencryptReport,
    ) -> anyhow::Result<()> {
        let mut after = 0i64;
        loop {
            let mut w = self.write_tx().await?;
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT pos, payload FROM events WHERE pos > $1 AND payload <> '' AND substr(payload, 1, 14) <> $2 ORDER BY pos LIMIT $3",
            )
            .bind(after)
            .bind(header)
            .bind(SWEEP_BATCH)
            .fetch_all(w.conn())
            .await?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = *last;
            for (pos, value) in &rows {
                let (plain, was_plain) = self
                    .unseal(column::EVENT_PAYLOAD, value, plaintext_ok)
                    .with_context(|| format!("events row {pos}"))?;
                sqlx::query("UPDATE events SET payload = $2 WHERE pos = $1")
                    .bind(pos)
                    .bind(self.keys.encrypt(column::EVENT_PAYLOAD, &plain))
                    .execute(w.conn())
                    .await?;
                report.values += 1;
                report.plaintext += u64::from(was_plain);
            }
            w.finish(Ok(())).await?;
        }
        Ok(())
    }

    /// Emails and phones, with their lookup hashes (which change with the key).
    async fn sweep_users(
        &self,
        header: &str,
        plaintext_ok: bool,
        report: &mut ReencryptReport,
    ) -> anyhow::Result<()> {
        let mut after = String::new();
        loop {
            let mut w = self.write_tx().await?;
            let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT id, email, phone FROM users WHERE id > $1 AND (
                     (email IS NOT NULL AND (substr(email, 1, 14) <> $2 OR email_hash IS NULL))
                     OR (phone IS NOT NULL AND (substr(phone, 1, 14) <> $2 OR phone_hash IS NULL)))
                 ORDER BY id LIMIT $3",
            )
            .bind(&after)
            .bind(header)
            .bind(SWEEP_BATCH)
            .fetch_all(w.conn())
            .await?;
            let Some((last, _, _)) = rows.last() else {
                break;
            };
            after = last.clone();
            for (id, email, phone) in &rows {
                let mut sealed = [None, None];
                let mut hashes = [None, None];
                for (i, (col, value)) in [(column::USER_EMAIL, email), (column::USER_PHONE, phone)]
                    .into_iter()
                    .enumerate()
                {
                    let Some(value) = value else { continue };
                    let (plain, was_plain) = self
                        .unseal(col, value, plaintext_ok)
                        .with_context(|| format!("users row {id}"))?;
                    hashes[i] = Some(self.keys.lookup_hash(col, &plain));
                    sealed[i] = Some(self.keys.encrypt(col, &plain));
                    report.values += 1;
                    report.plaintext += u64::from(was_plain);
                }
                let [email, phone] = sealed;
                let [email_hash, phone_hash] = hashes;
                sqlx::query(
                    "UPDATE users SET email = $2, phone = $3, email_hash = $4, phone_hash = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(email)
                .bind(phone)
                .bind(email_hash)
                .bind(phone_hash)
                .execute(w.conn())
                .await?;
            }
            w.finish(Ok(())).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sweep_queries_compare_the_whole_header() {
        // `substr(col, 1, 14)` in the queries above.
        assert_eq!(crate::crypto::HEADER_LEN, 14);
    }
}
