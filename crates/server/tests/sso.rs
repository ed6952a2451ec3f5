//! Single sign-on against a real OpenID provider: `tests/oidc/provider.mjs` (the certified
//! `oidc-provider` package) run by node. A new user, a linked user, a wrong `state`, a code
//! the provider refuses, an expired one-time code, an ID token signed with another key, a
//! suspended account and closed registration. Needs node and `npm ci` in tests/oidc (done by
//! scripts/test); SKIPPED otherwise.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use chatnode_client::protocol::{ErrorCode, RegisterRequest};
use common::cluster::free_port;
use common::*;
use serde_json::{Value, json};

const CLIENT_ID: &str = "chatnode-test";
const CLIENT_SECRET: &str = "s3cret with spaces & symbols%";

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// The test provider, killed on drop.
struct Idp {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    async fn control(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}/__test/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    async fn last_token_request(&self) -> Value {
        self.http
            .get(format!("{}/__test/last-token-request", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A ChatNode server configured for the provider, and the provider.
async fn setup(test: &str, extra: &[&str]) -> Option<(TestServer, Idp)> {
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        println!("SKIPPED sso::{test}: node is not installed");
        return None;
    }
    if !oidc_dir().join("node_modules/oidc-provider").exists() {
        println!("SKIPPED sso::{test}: run `npm ci` in crates/server/tests/oidc first");
        return None;
    }
    let idp_port = free_port();
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let mut args = vec![
        "--oidc-issuer",
        issuer.as_str(),
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-name",
        "Test IdP",
    ];
    args.extend_from_slice(extra);
    let server =
        TestServer::start_with_env(&args, &[("CHATNODE_OIDC_CLIENT_SECRET", CLIENT_SECRET)]).await;
    let redirect = format!("{}/api/v1/auth/oidc/test-idp/callback", server.url());
    let mut child = Command::new("node")
        .arg(oidc_dir().join("provider.mjs"))
        .args(["--port", &idp_port.to_string()])
        .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
        .args(["--redirect-uri", &redirect])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening http://127.0.0.1:"), "{line}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Some((
        server,
        Idp {
            child,
            base: issuer,
            http,
        },
    ))
}

/// A browser's sign-in, hop by hop (keeping the provider's cookies): from `start` to the
/// page ChatNode sends the browser back to. Returns that location.
async fn sign_in(server: &TestServer, idp: &Idp, redirect_to: &str) -> String {
    let http = &idp.http;
    let mut cookies: HashMap<String, String> = HashMap::new();
    let mut url = format!(
        "{}/api/v1/auth/oidc/test-idp/start?redirect_to={}",
        server.url(),
        url_escape(redirect_to)
    );
    for _ in 0..20 {
        let mut req = http.get(&url);
        if url.starts_with(&idp.base) && !cookies.is_empty() {
            let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", jar.join("; "));
        }
        let resp = req.send().await.unwrap();
        if url.starts_with(&idp.base) {
            for c in resp.headers().get_all("set-cookie") {
                let c = c.to_str().unwrap();
                let pair = c.split(';').next().unwrap();
                if let Some((k, v)) = pair.split_once('=') {
                    cookies.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        let status = resp.status().as_u16();
        assert!(
            (300..400).contains(&status),
            "{url} answered {status}: {}",
            resp.text().await.unwrap_or_default()
        );
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        url = if location.starts_with("http") {
            location
        } else if url.starts_with(&idp.base) {
            format!("{}{location}", idp.base)
        } else {
            // ChatNode's answer to the callback: a path on itself, with the fragment.
            return location;
        };
    }
    panic!("the sign-in did not come back");
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn code_of(location: &str) -> &str {
    location
        .split_once("#oidc_code=")
        .unwrap_or_else(|| panic!("no code in {location}"))
        .1
}

#[tokio::test]
async fn a_new_user_signs_in_and_comes_back_to_the_page() {
    let Some((server, idp)) = setup("new_user", &[]).await else {
        return;
    };
    let c = server.client();
    let providers = c.providers().await.unwrap();
    assert_eq!(providers.providers.len(), 1);
    assert_eq!(
        (
            providers.providers[0].id.as_str(),
            providers.providers[0].name.as_str()
        ),
        ("test-idp", "Test IdP")
    );
    idp.control(
        "identity",
        json!({"sub": "sub-ann", "email": "ann.sso@example.com", "email_verified": true,
               "preferred_username": "Ann Sso", "name": "Ann from SSO"}),
    )
    .await;
    let back = sign_in(&server, &idp, "/c/somewhere").await;
    assert!(back.starts_with("/c/somewhere#oidc_code="), "{back}");
    // The provider saw PKCE and client authentication.
    let t = idp.last_token_request().await;
    assert_eq!(t["had_code_verifier"], true, "{t}");
    assert_eq!(t["client_auth"], "basic", "{t}");
    let auth = c.oidc_exchange(code_of(&back)).await.unwrap();
    assert_eq!(auth.user.user.username, "AnnSso");
    assert_eq!(auth.user.user.display_name, "Ann from SSO");
    assert_eq!(auth.user.email.as_deref(), Some("ann.sso@example.com"));
    c.me().await.unwrap();
    // The code is single-use.
    let err = server
        .client()
        .oidc_exchange(code_of(&back))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    let err = server.client().oidc_exchange("made-up").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    // The same `sub` again: the same account.
    let again = sign_in(&server, &idp, "/").await;
    let auth2 = server
        .client()
        .oidc_exchange(code_of(&again))
        .await
        .unwrap();
    assert_eq!(auth2.user.user.id, auth.user.user.id);
    // A bad path to come back to, an unknown provider.
    let (status, _) = c
        .raw(
            chatnode_client::Method::GET,
            "/auth/oidc/test-idp/start?redirect_to=https://evil.example.com",
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    let (status, _) = c
        .raw(chatnode_client::Method::GET, "/auth/oidc/nope/start", None)
        .await
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_verified_email_links_an_existing_account_and_an_unverified_one_does_not() {
    let Some((server, idp)) = setup("linked", &[]).await else {
        return;
    };
    let c = server.client();
    let existing = c
        .register(&RegisterRequest {
            email: Some("bob.sso@example.com".into()),
            username: unique("bob"),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Unverified: a new account (and the email is not taken from Bob).
    idp.control(
        "identity",
        json!({"sub": "sub-fake-bob", "email": "bob.sso@example.com", "email_verified": false}),
    )
    .await;
    let back = sign_in(&server, &idp, "/").await;
    let other = server.client().oidc_exchange(code_of(&back)).await.unwrap();
    assert_ne!(other.user.user.id, existing.user.user.id);
    assert_eq!(other.user.email, None);
    assert_eq!(other.user.user.username, "bob.sso");
    // Verified: linked to Bob.
    idp.control(
        "identity",
        json!({"sub": "sub-bob", "email": "Bob.SSO@example.com", "email_verified": true}),
    )
    .await;
    let back = sign_in(&server, &idp, "/").await;
    let bob = server.client().oidc_exchange(code_of(&back)).await.unwrap();
    assert_eq!(bob.user.user.id, existing.user.user.id);
}

#[tokio::test]
async fn wrong_state_refused_codes_and_expired_one_time_codes_fail() {
    let Some((server, idp)) = setup("failures", &[]).await else {
        return;
    };
    let http = &idp.http;
    let callback = format!("{}/api/v1/auth/oidc/test-idp/callback", server.url());
    // A state this server never made.
    let r = http
        .get(format!("{callback}?code=abc&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], "/#oidc_error=oidc_failed");
    // A real state with a code the provider refuses (made up, or expired there).
    let start = http
        .get(format!("{}/api/v1/auth/oidc/test-idp/start", server.url()))
        .send()
        .await
        .unwrap();
    let to = start.headers()["location"].to_str().unwrap().to_owned();
    let state: String = url_param(&to, "state");
    let r = http
        .get(format!("{callback}?code=not-a-real-code&state={state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/#oidc_error=oidc_failed");
    // The provider said no (the user cancelled).
    idp.control("deny", json!({"on": true})).await;
    let back = sign_in(&server, &idp, "/").await;
    assert_eq!(back, "/#oidc_error=oidc_failed");
    idp.control("deny", json!({"on": false})).await;
    // A one-time code past its 60 s.
    let back = sign_in(&server, &idp, "/").await;
    expire_one_time_codes(&server);
    let err = server
        .client()
        .oidc_exchange(code_of(&back))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some(ErrorCode::Unauthenticated))
    );
}

fn url_param(url: &str, name: &str) -> String {
    url.split_once('?')
        .unwrap()
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

/// Moves every one-time code's expiry into the past, in the server's database.
fn expire_one_time_codes(server: &TestServer) {
    let url = server.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let c = rusqlite::Connection::open(path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute("UPDATE oidc_codes SET expires_at = 0", [])
            .unwrap();
    } else {
        let (base, schema) = url.split_once("?options=-c%20search_path%3D").unwrap();
        let out = Command::new("psql")
            .args([
                base,
                "-qAtc",
                &format!("UPDATE {schema}.oidc_codes SET expires_at = 0"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

#[tokio::test]
async fn an_id_token_signed_with_another_key_is_refused() {
    let Some((server, idp)) = setup("foreign_key", &[]).await else {
        return;
    };
    idp.control("foreign-key", json!({"on": true})).await;
    let back = sign_in(&server, &idp, "/").await;
    assert_eq!(back, "/#oidc_error=oidc_failed");
    // For the right reason: the signature, not the flow.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.log().contains("does not validate") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn closed_registration_keeps_new_people_out() {
    let Some((server, idp)) = setup("registration", &["--registration", "invite"]).await else {
        return;
    };
    idp.control(
        "identity",
        json!({"sub": "sub-new", "email": "new@example.com", "email_verified": true}),
    )
    .await;
    assert_eq!(
        sign_in(&server, &idp, "/").await,
        "/#oidc_error=registration_closed"
    );
}

#[tokio::test]
async fn a_suspended_account_cannot_sign_in() {
    let Some((server, idp)) = setup("suspended", &[]).await else {
        return;
    };
    idp.control(
        "identity",
        json!({"sub": "sub-sus", "preferred_username": "susie"}),
    )
    .await;
    let back = sign_in(&server, &idp, "/").await;
    let user = server.client().oidc_exchange(code_of(&back)).await.unwrap();
    let (admin, au) = register(&server, "adm").await;
    assert!(
        server
            .run(&["admin", "grant", &au.username], &[])
            .status
            .success()
    );
    admin
        .suspend(&user.user.user.id, "testing", None)
        .await
        .unwrap();
    assert_eq!(
        sign_in(&server, &idp, "/").await,
        "/#oidc_error=account_suspended"
    );
}
