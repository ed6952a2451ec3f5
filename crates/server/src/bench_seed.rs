//! `chatnode bench-seed`: bulk fixtures for load tests (see `docs/benchmarks.md`).
//!
//! Reads `{"users": N, "conversations": [[i, j, …], …]}` (member indices) on stdin, creates
//! the users with one session each, a friendship and a direct conversation for every pair,
//! a group for every longer list, all in one transaction, and prints
//! `{"users": [{"id", "token"}], "conversations": [{"id", "members"}]}` with access tokens
//! signed by the data directory's JWT secret. The accounts get an unusable random password.
//!
//! With `--history N` it then stores N messages in those conversations (see
//! `store/sql/seed.rs`) and reports on stderr how long that took.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sqlx::Connection;

use crate::auth::{Auth, random_token};
use crate::config::{BenchSeedArgs, Config};
use crate::crypto::{self, KeySource, Keyring};
use crate::domain::{ConversationId, UserId};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::time::new_id;

#[derive(Deserialize)]
struct Spec {
    users: usize,
    #[serde(default)]
    conversations: Vec<Vec<usize>>,
}

#[derive(Serialize)]
struct SeededUser {
    id: String,
    token: String,
}

#[derive(Serialize)]
struct SeededConversation {
    id: String,
    members: Vec<usize>,
}

#[derive(Serialize)]
struct Seeded {
    users: Vec<SeededUser>,
    conversations: Vec<SeededConversation>,
}

pub fn main(config: Config, args: BenchSeedArgs) -> ExitCode {
    let run = async {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("cannot read the fixture spec from stdin")?;
        let spec: Spec = serde_json::from_str(&input).context("invalid fixture spec")?;
        let out = seed(&config, &args, spec).await?;
        serde_json::to_writer(std::io::stdout().lock(), &out)?;
        anyhow::Ok(())
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chatnode: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatnode bench-seed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The history goes through the concrete store (the `Store` trait has no such method: it is
/// for fixtures only), opened with the keys `open_store` has just checked or created.
async fn seed_history(
    config: &Config,
    user_ids: &[UserId],
    conversations: &[crate::store::SeedConversation],
    count: u64,
) -> anyhow::Result<()> {
    let keys = Arc::new(match &config.encryption_key {
        KeySource::File(path) => crypto::read_key_file(path)?
            .with_context(|| format!("{} disappeared", path.display()))?,
        KeySource::Env(text) => Keyring::parse(text)?,
    });
    let offline = Arc::new(crate::store::Offline);
    let url = &config.database_url;
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open(url, offline.clone(), offline, keys).await?;
        store.seed_history(user_ids, conversations, count).await?;
        drop(store);
        // The server checkpoints in the background; without this, a freshly seeded history
        // would sit in the WAL (gigabytes for 10 million rows) and be copied during the run.
        let started = Instant::now();
        let mut conn = sqlx::sqlite::SqliteConnection::connect(url).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await?;
        eprintln!(
            "chatnode bench-seed: WAL checkpointed in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        let store = PostgresStore::open(url, offline.clone(), offline, keys).await?;
        store.seed_history(user_ids, conversations, count).await?;
    }
    Ok(())
}

async fn seed(config: &Config, args: &BenchSeedArgs, spec: Spec) -> anyhow::Result<Seeded> {
    for conv in &spec.conversations {
        if conv.len() < 2 || conv.iter().any(|&i| i >= spec.users) {
            bail!("every conversation needs two or more member indices below `users`");
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let auth = Arc::new(Auth::load_or_create(&config.data_dir, args.token_ttl, 1)?);
    let password_hash = auth.hash_password(random_token()).await?;
    let user_ids: Vec<UserId> = (0..spec.users).map(|_| UserId::trusted(new_id())).collect();
    let conversations: Vec<_> = spec
        .conversations
        .into_iter()
        .map(|members| crate::store::SeedConversation {
            id: ConversationId::trusted(new_id()),
            members,
        })
        .collect();
    // Opens (and on first use sets up) the store exactly as `serve` will, encryption key
    // included. No server runs meanwhile: nobody is connected to tell anything.
    let offline = Arc::new(crate::store::Offline);
    let store = crate::encryption::open_store(config, offline.clone(), offline).await?;
    let started = Instant::now();
    let sessions = store
        .bulk_seed(&args.prefix, &user_ids, &password_hash, &conversations)
        .await?;
    eprintln!(
        "chatnode bench-seed: {} users, {} conversations in {:.2} s",
        user_ids.len(),
        conversations.len(),
        started.elapsed().as_secs_f64()
    );
    drop(store);
    if args.history > 0 {
        let started = Instant::now();
        seed_history(config, &user_ids, &conversations, args.history).await?;
        eprintln!(
            "chatnode bench-seed: {} history messages in {:.2} s",
            args.history,
            started.elapsed().as_secs_f64()
        );
    }
    let mut users = Vec::with_capacity(user_ids.len());
    for (id, sid) in user_ids.into_iter().zip(sessions) {
        let token = auth.issue_access(id.as_str(), sid.as_str())?;
        users.push(SeededUser {
            id: id.to_string(),
            token,
        });
    }
    Ok(Seeded {
        users,
        conversations: conversations
            .into_iter()
            .map(|c| SeededConversation {
                id: c.id.to_string(),
                members: c.members,
            })
            .collect(),
    })
}
