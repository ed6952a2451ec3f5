//! Encryption at rest, the operator's side: loading the keys for a database at startup (and
//! generating the key file on a first start), refusing to start with a key that is not the
//! database's, and the `chatnode rotate-key` command.
//!
//! The primitives are in [`crate::crypto`]; the canary and the re-encrypting sweep are the
//! store's ([`Store::reencrypt`]). This module decides the order of things so that every
//! stored value stays readable whatever step a crash interrupts:
//!
//! - First start: the key is generated in memory, the database is checked for a canary (if
//!   it has one, the data is encrypted and the key file was lost or misplaced: refuse), the
//!   key file is written (0600), and only then is anything sealed.
//! - Rotation: the key file is replaced (atomically) by `new key, old keys…` *before* any value
//!   is sealed with the new key, and by `new key` alone only after the sweep has finished.
//!   Interrupted, the file still holds every key a value may be under; the next start (or
//!   `rotate-key` again) finishes the sweep.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::crypto::{self, KeySource, Keyring};
use crate::store::{self, EventSink, Offline, Presence, Store};

/// Opens the configured database with the configured keys, ready to serve: the key checked
/// against the database, and every value under the current key. The store publishes committed
/// events to `events` and reads who is online from `presence` (the hub, on a serving node).
pub async fn open_store(
    config: &Config,
    events: Arc<dyn EventSink>,
    presence: Arc<dyn Presence>,
) -> anyhow::Result<Arc<dyn Store>> {
    let source = &config.encryption_key;
    let (keys, generated) = match source {
        KeySource::File(path) => match crypto::read_key_file(path)? {
            Some(k) => (k, false),
            None => (Keyring::generate(), true),
        },
        KeySource::Env(text) => (Keyring::parse(text).context(KEY_ENV_NAME)?, false),
    };
    let keys = Arc::new(keys);
    let store = open_backend(&config.database_url, events, presence, keys.clone()).await?;
    if generated && let KeySource::File(path) = source {
        if let Some(id) = store.encryption_key_id().await? {
            bail!(
                "{} does not exist, but this database is encrypted (under key {id}): restore the key file, or name it with --encryption-key-file",
                path.display()
            );
        }
        crypto::create_key_file(path, &keys)?;
        // Silent like the JWT secret's generation (a failed start stays one line); the docs
        // tell operators to back the file up.
        tracing::debug!(path = %path.display(), key = keys.current_id(), "generated the encryption key");
    }
    let started = Instant::now();
    let report = store
        .reencrypt(false)
        .await
        .with_context(|| source.to_string())?;
    if report.values > 0 {
        tracing::info!(
            values = report.values,
            plaintext = report.plaintext,
            seconds = started.elapsed().as_secs_f64(),
            key = keys.current_id(),
            "every encrypted value is under the current key"
        );
    }
    if keys.ids().len() > 1 {
        tracing::warn!(
            retired = %keys.ids()[1..].join(", "),
            "the {source} still lists older keys that no stored value needs; remove them (`chatnode rotate-key` writes the file without them)"
        );
    }
    Ok(store)
}

const KEY_ENV_NAME: &str = crate::config::KEY_ENV;

async fn open_backend(
    url: &str,
    events: Arc<dyn EventSink>,
    presence: Arc<dyn Presence>,
    keys: Arc<Keyring>,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(if url.starts_with("sqlite:") {
        Arc::new(store::sqlite::SqliteStore::open(url, events, presence, keys).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(store::postgres::PostgresStore::open(url, events, presence, keys).await?)
    } else {
        bail!("--database-url must start with sqlite:// (or postgres://)");
    })
}

/// What `rotate-key` did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub values: u64,
    pub seconds: f64,
    pub new_key: String,
    pub retired: Vec<String>,
    /// Where the keys are (the file written, or the environment variable to edit).
    pub source: String,
}

impl std::fmt::Display for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rotate-key: {} values re-encrypted in {:.2} s; current key {}, retired {}; {}",
            self.values,
            self.seconds,
            self.new_key,
            if self.retired.is_empty() {
                "none".to_owned()
            } else {
                self.retired.join(", ")
            },
            self.source
        )
    }
}

/// `chatnode rotate-key`, run while no server uses the database.
///
/// With a key file: generates a new key, re-encrypts every value and recomputes the lookup
/// hashes under it, then leaves only the new key in the file. With `CHATNODE_ENCRYPTION_KEY`
/// the operator supplies the new key first in the variable (the command cannot edit the
/// environment); the command re-encrypts under it, and the older keys can then be removed.
pub async fn rotate_key(config: &Config) -> anyhow::Result<Rotation> {
    let started = Instant::now();
    // Run while no server uses the database: nobody is connected to tell anything.
    let offline = Arc::new(Offline);
    match &config.encryption_key {
        KeySource::File(path) => {
            let old = crypto::read_key_file(path)?.with_context(|| {
                format!(
                    "{} does not exist: start the server once to create it",
                    path.display()
                )
            })?;
            let rotating = Arc::new(old.with_new_key());
            let store = open_backend(
                &config.database_url,
                offline.clone(),
                offline,
                rotating.clone(),
            )
            .await?;
            // Refuse before writing anything if these are not the database's keys.
            check_key_id(&*store, &old, &config.encryption_key).await?;
            crypto::replace_key_file(path, &rotating)?;
            let report = store
                .reencrypt(true)
                .await
                .with_context(|| config.encryption_key.to_string())?;
            let done = rotating.current_only();
            crypto::replace_key_file(path, &done)?;
            Ok(Rotation {
                values: report.values,
                seconds: started.elapsed().as_secs_f64(),
                new_key: done.current_id().to_owned(),
                retired: old.ids().iter().map(|s| s.to_string()).collect(),
                source: format!("{} now holds only the current key", display(path)),
            })
        }
        KeySource::Env(text) => {
            let keys = Arc::new(Keyring::parse(text).context(KEY_ENV_NAME)?);
            let store =
                open_backend(&config.database_url, offline.clone(), offline, keys.clone()).await?;
            check_key_id(&*store, &keys, &config.encryption_key).await?;
            if keys.ids().len() == 1
                && store.encryption_key_id().await?.as_deref() == Some(keys.current_id())
            {
                bail!(
                    "{KEY_ENV_NAME} holds one key and the data is already under it: put a new key first (`{KEY_ENV_NAME}=NEW,OLD`, a new key is 32 random bytes in base64) and run rotate-key again"
                );
            }
            let report = store
                .reencrypt(true)
                .await
                .with_context(|| config.encryption_key.to_string())?;
            Ok(Rotation {
                values: report.values,
                seconds: started.elapsed().as_secs_f64(),
                new_key: keys.current_id().to_owned(),
                retired: keys.ids()[1..].iter().map(|s| s.to_string()).collect(),
                source: format!("now remove the retired keys from {KEY_ENV_NAME}"),
            })
        }
    }
}

/// The database's key must be one of `keys` (checked by id, which is derived from the key;
/// the store's canary check then proves it by decryption).
async fn check_key_id(store: &dyn Store, keys: &Keyring, source: &KeySource) -> anyhow::Result<()> {
    if let Some(id) = store.encryption_key_id().await?
        && !keys.ids().contains(&id.as_str())
    {
        bail!(
            "{source}: the encryption key does not match this database: its data is under key {id}, the key(s) given are {}",
            keys.ids().join(", ")
        );
    }
    Ok(())
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
