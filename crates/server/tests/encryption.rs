//! Encryption at rest, against the real server and the real database files: message bodies
//! (and their edits), attachment names, emails and phone numbers never reach the database in
//! plaintext, yet login, search, history, `sync` and export work as before; a wrong or missing
//! key stops the server with a clear reason; `rotate-key` leaves nothing under the old key;
//! rows from before encryption are sealed at the next start.
//!
//! On SQLite the scan reads the database file and its WAL byte by byte; on PostgreSQL
//! (`CHATNODE_TEST_PG`) it reads every column of every row of every table of the test schema,
//! as text.

mod common;

use std::collections::BTreeSet;

use base64::Engine;
use chatnode_client::protocol::{
    ErrorCode, MessageKind, RegisterRequest, SendMessageRequest, ServerFrame,
};
use chatnode_client::{Client, Method};
use chatnode_server::fuzzing::{Keyring, column};
use common::*;

/// Strings no test writes anywhere except in the encrypted fields.
struct Secrets {
    email: String,
    phone: String,
    body: String,
    edited: String,
    file: String,
}

impl Secrets {
    fn new() -> Secrets {
        let n = unique("");
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        Secrets {
            email: format!("zebra.{n}.inbox@mail.example.org"),
            phone: format!("+1999{:0>9}", &digits[digits.len().saturating_sub(9)..]),
            body: format!("the eagle lands at dawn {n}"),
            edited: format!("correction: the owl flies at dusk {n}"),
            file: format!("treasure-map-{n}.pdf"),
        }
    }

    fn all(&self) -> Vec<&str> {
        vec![
            &self.email,
            &self.phone,
            // A phone number without its `+` would be just as telling.
            &self.phone[1..],
            &self.body,
            &self.edited,
            &self.file,
        ]
    }
}

fn pdf() -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    v.extend(std::iter::repeat_n(b'x', 500));
    v
}

/// Everything the database holds, as bytes: the SQLite file and its WAL, or every row of
/// every table of the PostgreSQL schema as text.
async fn database_contents(server: &TestServer) -> Vec<u8> {
    let url = server.database_url();
    if url.starts_with("sqlite:") {
        let db = server.data_dir().join("chatnode.db");
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-journal"] {
            let path = format!("{}{suffix}", db.display());
            if let Ok(bytes) = std::fs::read(&path) {
                all.extend(bytes);
            }
        }
        assert!(all.len() > 4096, "the database file is there");
        all
    } else {
        let pool = sqlx::PgPool::connect(&url)
            .await
            .expect("connect to PostgreSQL");
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(tables.iter().any(|t| t == "messages"), "{tables:?}");
        let mut all = Vec::new();
        for t in tables {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM \"{t}\" t"
            )))
            .fetch_all(&pool)
            .await
            .unwrap();
            for r in rows {
                all.extend(r.into_bytes());
                all.push(b'\n');
            }
        }
        pool.close().await;
        all
    }
}

/// Waits (up to 5 s) until the server's log has a line containing `needle`.
async fn wait_for_log(server: &TestServer, needle: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while !server.log().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in the log: {}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn assert_absent(contents: &[u8], needles: &[&str], when: &str) {
    for n in needles {
        assert!(!contains(contents, n), "{when}: {n:?} is in the database");
    }
}

/// Registers `a` with the secret email and phone, and a friend `b`; `a` uploads the secret
/// file name, sends the secret body with it, then edits it. Returns the clients, the
/// conversation ID and the message's seq.
async fn story(server: &TestServer, s: &Secrets) -> (Client, Client, String, i64) {
    let a = server.client();
    let me = a
        .register(&RegisterRequest {
            email: Some(s.email.clone()),
            phone: Some(s.phone.clone()),
            username: unique("encann"),
            password: PASSWORD.into(),
            display_name: Some("Ann".into()),
            invite_code: None,
        })
        .await
        .expect("register")
        .user;
    assert_eq!(me.email.as_deref(), Some(s.email.as_str()));
    assert_eq!(me.phone.as_deref(), Some(s.phone.as_str()));
    let (b, bu) = register(server, "encbob").await;
    befriend(&a, &me.user, &b, &bu).await;
    let conv = a.open_direct(&bu.id).await.unwrap();
    let file = a.upload(pdf(), "application/pdf", &s.file).await.unwrap();
    assert_eq!(file.name, s.file);
    let (m, _) = a
        .send_message(
            &conv.id,
            &SendMessageRequest {
                client_id: "secret-1".into(),
                body: s.body.clone(),
                kind: Some(MessageKind::File),
                attachment_ids: Some(vec![file.id.clone()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(m.body, s.body);
    a.send_text(&conv.id, "plain-1", "an ordinary message")
        .await
        .unwrap();
    let edited = a.edit_message(&conv.id, m.seq, &s.edited).await.unwrap();
    assert_eq!(edited.body, s.edited);
    (a, b, conv.id, m.seq)
}

/// What the story wrote reads back in plaintext everywhere the API shows it.
async fn everything_reads_back(server: &TestServer, s: &Secrets, b: &Client, conv: &str, seq: i64) {
    // Login by email and by phone (keyed-hash lookups), and the owner's profile.
    for login in [&s.email, &s.phone] {
        let c = server.client();
        let auth = c.login(login, PASSWORD).await.expect("login");
        assert_eq!(auth.user.email.as_deref(), Some(s.email.as_str()));
        assert_eq!(auth.user.phone.as_deref(), Some(s.phone.as_str()));
    }
    // Exact search by email and by phone.
    for q in [s.email.as_str(), &s.email.to_uppercase(), &s.phone] {
        let found = b.search_users(q, None, None).await.unwrap().users;
        assert_eq!(found.len(), 1, "search {q}: {found:?}");
    }
    // History: the edited body and the attachment's name.
    let page = b.messages(conv, None, None, None).await.unwrap();
    let m = page
        .messages
        .iter()
        .find(|m| m.seq == seq)
        .expect("message");
    assert_eq!(m.body, s.edited);
    assert_eq!(m.attachments[0].name, s.file);
    // `sync` replays the stored events: the original and the edit.
    let mut ws = b.connect_ws().await.unwrap();
    let (frames, _) = ws.sync(0).await.unwrap();
    let bodies: Vec<&str> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message { message, .. } | ServerFrame::MessageUpdated { message, .. }
                if message.seq == seq =>
            {
                Some(message.body.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        bodies,
        vec![s.body.as_str(), s.edited.as_str()],
        "{frames:?}"
    );
    assert!(frames.iter().any(|f| matches!(
        f,
        ServerFrame::Message { message, .. }
            if message.seq == seq && message.attachments[0].name == s.file
    )));
    ws.close().await.unwrap();
}

#[tokio::test]
async fn secrets_never_reach_the_database_yet_everything_works() {
    let server = TestServer::start().await;
    let s = Secrets::new();
    let (a, b, conv, seq) = story(&server, &s).await;

    // Registration still refuses a taken email or phone.
    for (email, phone, code) in [
        (Some(s.email.clone()), None, ErrorCode::EmailTaken),
        (None, Some(s.phone.clone()), ErrorCode::PhoneTaken),
    ] {
        let err = server
            .client()
            .register(&RegisterRequest {
                email,
                phone,
                username: unique("dup"),
                password: PASSWORD.into(),
                display_name: None,
                invite_code: None,
            })
            .await
            .unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(409), Some(code)));
    }
    everything_reads_back(&server, &s, &b, &conv, seq).await;
    // The owner's export shows the plaintext.
    let (status, export) = a.raw(Method::GET, "/users/me/export", None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(export["profile"]["email"], s.email.as_str());
    assert_eq!(export["profile"]["phone"], s.phone.as_str());
    assert_eq!(export["uploads"][0]["name"], s.file.as_str());
    assert!(
        export["messages_sent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["body"] == s.edited.as_str())
    );

    // The database, read directly while the server runs and after it stopped.
    let live = database_contents(&server).await;
    assert!(
        contains(&live, "encann"),
        "the scan sees plaintext columns (usernames stay plaintext)"
    );
    assert!(contains(&live, "enc1:"), "sealed values are there");
    assert_absent(&live, &s.all(), "running");
    let mut server = server;
    server.terminate();
    assert_absent(&database_contents(&server).await, &s.all(), "stopped");

    // The key file: private, one key.
    let key_file = server.data_dir().join("encryption_key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let keys = Keyring::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_eq!(keys.ids().len(), 1);
}

#[tokio::test]
async fn a_wrong_or_missing_key_stops_the_server_with_a_clear_reason() {
    let mut server = TestServer::start().await;
    let s = Secrets::new();
    let (_a, _b, _conv, _seq) = story(&server, &s).await;
    server.terminate();
    let serve = ["serve", "--listen", "127.0.0.1:0"];

    let wrong = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let out = server.run(&serve, &[("CHATNODE_ENCRYPTION_KEY", &wrong)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("CHATNODE_ENCRYPTION_KEY: the encryption key does not match this database"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    // Both a key file and the variable: ambiguous, refused.
    let key_file = server.data_dir().join("encryption_key");
    let out = server.run(
        &["serve", "--encryption-key-file", key_file.to_str().unwrap()],
        &[("CHATNODE_ENCRYPTION_KEY", &wrong)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));

    // The key file gone: refused, and no new key file is made.
    let aside = server.data_dir().join("key.aside");
    std::fs::rename(&key_file, &aside).unwrap();
    let out = server.run(&serve, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("does not exist, but this database is encrypted"),
        "{err}"
    );
    assert!(!key_file.exists());

    // The right key in the variable works as well as the file.
    let text = std::fs::read_to_string(&aside).unwrap();
    let key_line = text
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .to_owned();
    server.set_envs(&[("CHATNODE_ENCRYPTION_KEY", &key_line)]);
    server.restart().await;
    server
        .client()
        .login(&s.email, PASSWORD)
        .await
        .expect("login");
    server.terminate();
    std::fs::rename(&aside, &key_file).unwrap();
    server.set_envs(&[]);
    server.restart().await;
    server
        .client()
        .login(&s.phone, PASSWORD)
        .await
        .expect("login");
}

/// Every stored value's key id, read from the database contents.
fn key_ids_in(contents: &[u8]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (i, w) in contents.windows(5).enumerate() {
        if w == b"enc1:"
            && let Some(id) = contents.get(i + 5..i + 13)
            && contents.get(i + 13) == Some(&b':')
        {
            ids.insert(String::from_utf8_lossy(id).into_owned());
        }
    }
    ids
}

#[tokio::test]
async fn rotate_key_reencrypts_everything_and_retires_the_old_key() {
    let mut server = TestServer::start().await;
    let s = Secrets::new();
    let (_a, b, conv, seq) = story(&server, &s).await;
    let key_file = server.data_dir().join("encryption_key");
    let old = Keyring::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let old_id = old.current_id().to_owned();
    server.terminate();
    assert_eq!(
        key_ids_in(&database_contents(&server).await),
        BTreeSet::from([old_id.clone()])
    );

    let out = server.run(&["rotate-key"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("rotate-key: "), "{stdout}");
    assert!(stdout.contains("values re-encrypted in"), "{stdout}");
    assert!(stdout.contains(&format!("retired {old_id}")), "{stdout}");
    let new = Keyring::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_eq!(new.ids().len(), 1, "the old key is dropped");
    assert_ne!(new.current_id(), old_id);

    // No stored value, not even a leftover page, names the old key.
    let contents = database_contents(&server).await;
    assert_eq!(
        key_ids_in(&contents),
        BTreeSet::from([new.current_id().to_owned()])
    );
    assert_absent(&contents, &s.all(), "after rotation");

    server.restart().await;
    everything_reads_back(&server, &s, &b, &conv, seq).await;
    // New writes work too.
    let c = server.client();
    c.login(&s.email, PASSWORD).await.unwrap();
    c.send_text(&conv, "after-rotation", "still here")
        .await
        .unwrap();
    server.terminate();

    // An interrupted rotation: the key file lists the new key before the old one, some
    // values are still under the old key. The next start finishes the job.
    let newer = new.with_new_key();
    std::fs::write(&key_file, newer.to_file_text()).unwrap();
    server.restart().await;
    everything_reads_back(&server, &s, &b, &conv, seq).await;
    server.terminate();
    assert_eq!(
        key_ids_in(&database_contents(&server).await),
        BTreeSet::from([newer.current_id().to_owned()])
    );
    wait_for_log(&server, "still lists older keys").await;
}

#[tokio::test]
async fn rotation_with_keys_in_the_environment() {
    let k1 = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let k2 = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
    let mut server = TestServer::start_with_env(&[], &[("CHATNODE_ENCRYPTION_KEY", &k1)]).await;
    assert!(
        !server.data_dir().join("encryption_key").exists(),
        "no key file"
    );
    let s = Secrets::new();
    let (_a, b, conv, seq) = story(&server, &s).await;
    server.terminate();

    // One key, already in use: nothing to rotate to.
    let out = server.run(&["rotate-key"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("put a new key first"));

    let both = format!("{k2},{k1}");
    let out = server.run(&["rotate-key"], &[("CHATNODE_ENCRYPTION_KEY", &both)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("remove the retired keys"), "{stdout}");

    let k2_id = Keyring::parse(&k2).unwrap().current_id().to_owned();
    assert_eq!(
        key_ids_in(&database_contents(&server).await),
        BTreeSet::from([k2_id])
    );
    server.set_envs(&[("CHATNODE_ENCRYPTION_KEY", &k2)]);
    server.restart().await;
    everything_reads_back(&server, &s, &b, &conv, seq).await;
}

/// Runs the same sqlx code on whichever backend the test server uses.
macro_rules! on_db {
    ($url:expr, |$pool:ident| $body:expr) => {{
        let url: String = $url;
        if url.starts_with("sqlite:") {
            let $pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let out = $body;
            $pool.close().await;
            out
        } else {
            let $pool = sqlx::PgPool::connect(&url).await.unwrap();
            let out = $body;
            $pool.close().await;
            out
        }
    }};
}

#[tokio::test]
async fn plaintext_rows_from_before_encryption_are_sealed_at_start() {
    let mut server = TestServer::start().await;
    let s = Secrets::new();
    let (_a, b, conv, seq) = story(&server, &s).await;
    server.terminate();

    // Turn the database back into what an install from before encryption at rest had:
    // plaintext values, no lookup hashes, no canary.
    let key_file = server.data_dir().join("encryption_key");
    let keys = Keyring::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    on_db!(server.database_url(), |pool| {
        let users: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT id, email, phone FROM users")
                .fetch_all(&pool)
                .await
                .unwrap();
        for (id, email, phone) in users {
            let open = |col, v: Option<String>| v.map(|v| keys.decrypt(col, &v).unwrap());
            sqlx::query("UPDATE users SET email = $2, phone = $3, email_hash = NULL, phone_hash = NULL WHERE id = $1")
                .bind(id)
                .bind(open(column::USER_EMAIL, email))
                .bind(open(column::USER_PHONE, phone))
                .execute(&pool)
                .await
                .unwrap();
        }
        for (select, update, col) in [
            (
                "SELECT id, body FROM messages",
                "UPDATE messages SET body = $2 WHERE id = $1",
                column::MESSAGE_BODY,
            ),
            (
                "SELECT id, name FROM media",
                "UPDATE media SET name = $2 WHERE id = $1",
                column::MEDIA_NAME,
            ),
        ] {
            let rows: Vec<(String, String)> =
                sqlx::query_as(select).fetch_all(&pool).await.unwrap();
            for (id, v) in rows {
                let plain = keys.decrypt(col, &v).unwrap();
                sqlx::query(update)
                    .bind(id)
                    .bind(plain)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT pos, payload FROM events")
            .fetch_all(&pool)
            .await
            .unwrap();
        // A message's event has no payload of its own (it refers to the message row).
        for (pos, v) in rows.into_iter().filter(|(_, v)| !v.is_empty()) {
            let plain = keys.decrypt(column::EVENT_PAYLOAD, &v).unwrap();
            sqlx::query("UPDATE events SET payload = $2 WHERE pos = $1")
                .bind(pos)
                .bind(plain)
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("DELETE FROM encryption")
            .execute(&pool)
            .await
            .unwrap();
    });
    let before = database_contents(&server).await;
    assert!(contains(&before, &s.email) && contains(&before, &s.edited));

    server.restart().await;
    wait_for_log(&server, "every encrypted value is under the current key").await;
    everything_reads_back(&server, &s, &b, &conv, seq).await;
    server.terminate();
    // Sealed, and the old plaintext is not left behind in free pages or the WAL either.
    assert_absent(
        &database_contents(&server).await,
        &s.all(),
        "after the upgrade",
    );
}
