//! The operator's commands besides `serve`: `admin grant|revoke`, `backup` and
//! `service-token create|revoke`. Each opens the same store `serve` would (same options), so
//! it works on the server's machine while the server runs: SQLite lets another process write
//! between the server's transactions (WAL, busy timeout), PostgreSQL any number of clients.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::store::{AdminTarget, Offline, Store};

async fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    crate::encryption::open_store(config, Arc::new(Offline), Arc::new(Offline)).await
}

/// `chatnode admin grant|revoke USERNAME`.
pub async fn set_admin(config: &Config, username: &str, admin: bool) -> anyhow::Result<String> {
    let store = open(config).await?;
    let result = store
        .set_system_admin(None, AdminTarget::Username(username.to_owned()), admin)
        .await;
    store.close().await;
    match result {
        Ok(_) if admin => Ok(format!("{username} is a system admin")),
        Ok(_) => Ok(format!("{username} is no longer a system admin")),
        Err(e) if e.code() == chatnode_protocol::ErrorCode::NotFound => {
            bail!("no user named {username}")
        }
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// Stream positions a restored copy skips (2^40): clients of the original server may hold
/// positions past the copy's last event; new events after a restore are numbered beyond
/// those, so their `sync` neither skips nor repeats anything (about 8,000 restores fit in
/// the 2^53 a JavaScript client can hold).
pub const RESTORE_GAP: i64 = 1 << 40;

/// How often `chatnode backup` flushes the copy it is writing (see `backup`).
const BACKUP_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// `chatnode backup FILE`: `VACUUM INTO` on a read-only connection of its own. In WAL mode a
/// reader never blocks the writer, so sends go on while the copy is written; the copy is the
/// database as of the moment the read transaction began (every message acked before the
/// backup started is in it), compacted, its stream positions moved on by [`RESTORE_GAP`],
/// and checked before this returns.
pub fn backup(config: &Config, file: &Path) -> anyhow::Result<String> {
    let Some(db) = config.database_url.strip_prefix("sqlite://") else {
        bail!(
            "chatnode backup copies the embedded SQLite database; for PostgreSQL use pg_dump (see docs/deployment.md, \"Backups\")"
        );
    };
    let db = db.split('?').next().unwrap_or(db);
    if !Path::new(db).exists() {
        bail!("no database at {db}");
    }
    if file.exists() {
        bail!("{} exists already; name a new file", file.display());
    }
    let target = file
        .to_str()
        .context("the backup file's name must be valid UTF-8")?;
    let started = Instant::now();
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {db}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // VACUUM INTO writes the whole copy into the page cache and syncs it once at the end:
    // hundreds of megabytes written back at once, and the server's own fsyncs (one per
    // batch of sends) wait behind them on the same disk (measured: sends stalled ~0.6 s for
    // a 243 MB copy). Flushing the copy every few milliseconds while it is written keeps
    // each writeback small, so a send waits for at most one of them.
    let copied = {
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // Opened once SQLite has created it.
                let mut copy: Option<std::fs::File> = None;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(BACKUP_FLUSH_EVERY);
                    if copy.is_none() {
                        copy = std::fs::File::open(file).ok();
                    }
                    if let Some(f) = &copy {
                        let _ = f.sync_data();
                    }
                }
            });
            let r = conn
                .execute("VACUUM INTO ?1", [target])
                .with_context(|| format!("cannot write the backup to {}", file.display()));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        })?;
        started.elapsed()
    };
    drop(conn);
    let copy = rusqlite::Connection::open(file)?;
    // Events written after a restore are numbered past anything a client of the original
    // server saw (see RESTORE_GAP). `events.pos` is AUTOINCREMENT: sqlite_sequence holds it.
    copy.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', 0
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')",
        [],
    )?;
    copy.execute(
        "UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'events'",
        [RESTORE_GAP],
    )?;
    // Check the copy before calling it a backup.
    let check: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!("the copy at {} failed its check: {check}", file.display());
    }
    let messages: i64 = copy.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
    let bytes = std::fs::metadata(file)?.len();
    Ok(format!(
        "backup: {} ({bytes} bytes, {messages} messages) in {:.2} s; back up the encryption key apart from it",
        file.display(),
        copied.as_secs_f64()
    ))
}

/// `chatnode service-token create|revoke NAME`. `create` answers the token alone (it is
/// shown only this once; the database keeps its SHA-256).
pub async fn service_token(config: &Config, name: &str, create: bool) -> anyhow::Result<String> {
    let ok_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok_name {
        bail!("a service token's name is 1-64 letters, digits, '_', '-' or '.'");
    }
    let store = open(config).await?;
    let result = if create {
        let token = crate::auth::prefixed_token(crate::auth::SERVICE_TOKEN_PREFIX);
        store
            .create_service_token(name, &crate::auth::hash_refresh_token(&token))
            .await
            .map(|()| token)
    } else {
        match store.revoke_service_token(name).await {
            Ok(true) => Ok(format!("service token {name} revoked")),
            Ok(false) => {
                store.close().await;
                bail!("no service token named {name}");
            }
            Err(e) => Err(e),
        }
    };
    store.close().await;
    result.map_err(|e| anyhow::anyhow!("{e}"))
}
