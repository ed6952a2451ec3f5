//! The `chatnode` program: startup failures, first-run secrets, logs, connection timeouts.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use chatnode_client::Method;
use chatnode_client::protocol::{ClientFrame, ErrorCode, ServerFrame};
use common::*;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run chatnode");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn startup_failures_exit_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port_in_use = taken.local_addr().unwrap().to_string();
    for (label, args) in [
        (
            "port in use",
            vec![
                "serve",
                "--listen",
                port_in_use.as_str(),
                "--data-dir",
                data,
            ],
        ),
        (
            "bad database url",
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data,
                "--database-url",
                "mysql://x",
            ],
        ),
        (
            "unreachable database",
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data,
                "--database-url",
                "sqlite:///nonexistent/dir/x.db",
            ],
        ),
        (
            "bad log format",
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data,
                "--log-format",
                "xml",
            ],
        ),
        (
            "missing config file",
            vec!["serve", "--data-dir", data, "--config", "/nonexistent.toml"],
        ),
    ] {
        let (code, stderr) = run(&args);
        assert_ne!(code, 0, "{label}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("chatnode:"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{label}: one reason line expected: {stderr}"
        );
    }
    let (code, stderr) = run(&["serve", "--listen", "not-an-address"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, stdout) = {
        let out = Command::new(binary()).arg("--help").output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(code, 0);
    assert!(stdout.contains("serve"));
    let out = Command::new(binary())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--nats-url",
        "--config",
        "CHATNODE_LISTEN",
    ] {
        assert!(help.contains(opt), "serve --help lacks {opt}");
    }
}

#[tokio::test]
async fn config_file_is_read_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("chatnode.toml");
    std::fs::write(&cfg, "ws_burst = 3\nws_rate = 1\nlog_format = \"json\"\n").unwrap();
    let server =
        TestServer::start_with(&["--config", cfg.to_str().unwrap(), "--ws-rate", "1"]).await;
    let (a, _) = register(&server, "cfg").await;
    let mut ws = a.connect_ws().await.unwrap();
    for _ in 0..5 {
        ws.send_frame(ClientFrame::Ping).await.unwrap();
    }
    let mut limited = 0;
    for _ in 0..5 {
        if let Some(ServerFrame::Error { code, .. }) = ws.next_frame(WAIT).await.unwrap() {
            assert_eq!(code, ErrorCode::RateLimited);
            limited += 1;
        }
    }
    assert_eq!(limited, 2, "burst of 3 from the TOML file");
}

#[tokio::test]
async fn first_run_creates_a_private_secret_and_logs_no_credentials() {
    let server = TestServer::start().await;
    let secret = server.data_dir().join("jwt_secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (a, au) = register(&server, "logs").await;
    a.login(&au.username, PASSWORD).await.unwrap();
    a.refresh().await.unwrap();
    let _ = server.client().login(&au.username, "wrong password!").await;
    let mut ws = a.connect_ws().await.unwrap();
    ws.send_frame(ClientFrame::Ping).await.unwrap();
    ws.next_frame(WAIT).await.unwrap();
    let log = server.log();
    assert!(
        log.contains("user registered"),
        "the log is being captured: {log}"
    );
    let access = a.access_token().unwrap();
    let refresh = a.refresh_token().unwrap();
    for secret in [
        PASSWORD,
        "wrong password!",
        access.as_str(),
        refresh.as_str(),
        &access[..20],
    ] {
        assert!(!log.contains(secret), "log contains a credential");
    }
    assert!(!log.contains("$argon2"), "log contains a password hash");
}

#[tokio::test]
async fn unauthenticated_sockets_are_closed_after_10_seconds() {
    let server = TestServer::start().await;
    let mut ws = server.client().connect_ws_unauthenticated().await.unwrap();
    let start = Instant::now();
    let closed = ws.wait_close(Duration::from_secs(15)).await.unwrap();
    assert_eq!(closed.code, Some(4001));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(13),
        "{waited:?}"
    );
}

#[tokio::test]
async fn silent_sockets_are_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(&["--ws-idle-timeout", "1"]).await;
    let (a, _) = register(&server, "idle").await;
    let mut quiet = a.connect_ws().await.unwrap();
    let mut chatty = a.connect_ws().await.unwrap();
    // The chatty one keeps talking (pings) and stays; the quiet one is closed.
    let keep = tokio::spawn(async move {
        for _ in 0..8 {
            chatty.send_frame(ClientFrame::Ping).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            while chatty
                .next_frame(Duration::from_millis(10))
                .await
                .unwrap()
                .is_some()
            {}
        }
        chatty
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let closed = quiet.wait_close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(closed.code, Some(1000));
    let mut chatty = keep.await.unwrap();
    chatty.send_frame(ClientFrame::Ping).await.unwrap();
    assert!(chatty.next_frame(WAIT).await.is_ok_and(|f| f.is_some()));
}

#[tokio::test]
async fn websocket_upgrades_from_other_sites_are_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start_with(&["--allowed-origins", "https://app.example.com"]).await;
    let url = format!("ws://{}/api/v1/ws", server.addr);
    let attempt = |origin: Option<String>| {
        let url = url.clone();
        async move {
            let mut req = url.into_client_request().unwrap();
            if let Some(o) = origin {
                req.headers_mut().insert("origin", o.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(attempt(Some("https://evil.example".into())).await, 403);
    assert_eq!(attempt(Some("https://app.example.com".into())).await, 101);
    assert_eq!(
        attempt(Some(format!("http://{}", server.addr))).await,
        101,
        "same origin"
    );
    assert_eq!(attempt(None).await, 101, "no Origin: not a browser page");
}

#[tokio::test]
async fn abuse_limits_answer_429_with_retry_after_and_never_lock_out() {
    let server = TestServer::start_with(&[
        "--limit-login-account",
        "3",
        "--limit-register-address",
        "4",
        "--limit-friend-requests",
        "2",
        "--limit-ws-per-user",
        "2",
    ])
    .await;
    let (a, au) = register(&server, "lim").await;
    // Failed logins for one account: three, then 429 with Retry-After, even with the right
    // password (the guesser cannot tell); other accounts are unaffected.
    for _ in 0..3 {
        let e = server
            .client()
            .login(&au.username, "wrong password!")
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401));
    }
    let r = server
        .client()
        .raw_bytes(
            Method::POST,
            "/auth/login",
            Some("application/json"),
            serde_json::to_vec(&serde_json::json!({"login": au.username, "password": PASSWORD}))
                .unwrap(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(error_code(&r.json().unwrap()), Some(ErrorCode::RateLimited));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // Registrations per address: a burst of 8 against a limit of 4 (one spent by the setup):
    // some are told to wait. The limit is checked before any password hashing.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = server.client();
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"email": format!("r{i}@example.com"), "username": format!("reg_{i}"), "password": PASSWORD});
            c.raw_bytes(Method::POST, "/auth/register", Some("application/json"), serde_json::to_vec(&body).unwrap(), false)
                .await
                .unwrap()
        }));
    }
    let mut created = Vec::new();
    let mut limited = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        match r.status {
            201 => created.push(i),
            429 => {
                limited += 1;
                assert!(r.header("retry-after").is_some());
            }
            other => panic!("{other}: {}", r.text()),
        }
    }
    assert!(
        limited >= 3 && created.len() >= 3,
        "created {created:?}, limited {limited}"
    );
    // Friend requests per user.
    let mut codes = Vec::new();
    for &i in &created[..3] {
        let (_c, cu) = {
            let c = server.client();
            let auth = c.login(&format!("reg_{i}"), PASSWORD).await.unwrap();
            (c, auth.user.user)
        };
        codes.push(
            a.raw(
                Method::POST,
                "/friends/requests",
                Some(serde_json::json!({"user_id": cu.id})),
            )
            .await
            .unwrap()
            .0,
        );
    }
    assert_eq!(codes, vec![201, 201, 429]);
    // WebSocket connections per user.
    let _w1 = a.connect_ws().await.unwrap();
    let _w2 = a.connect_ws().await.unwrap();
    let mut w3 = a.connect_ws_unauthenticated().await.unwrap();
    w3.send_frame(ClientFrame::Auth {
        token: a.access_token().unwrap(),
    })
    .await
    .unwrap();
    assert_eq!(w3.wait_close(WAIT).await.unwrap().code, Some(4029));
}

#[tokio::test]
async fn serves_https_with_hsts_when_given_a_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca = dir.path().join("ca.pem");
    // A test CA, and a server certificate for 127.0.0.1 signed by it.
    let d = dir.path().to_str().unwrap().to_owned();
    let script = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem; \
         openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out leaf.csr; \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext.cnf; \
         openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -out cert.pem -extfile ext.cnf"
    );
    let made = Command::new("sh").args(["-c", &script]).output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        println!(
            "SKIPPED serves_https_with_hsts_when_given_a_certificate: openssl could not make a test certificate: {made:?}"
        );
        return;
    }
    let server = TestServer::start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let pem = std::fs::read(&ca).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let resp = https
        .get(format!("https://{}/healthz", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let hsts = resp
        .headers()
        .get("strict-transport-security")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(hsts.contains("max-age="), "{hsts}");
    // The API works over TLS too, and plain HTTP is not served on that port.
    let body = serde_json::json!({"email": "tls@example.com", "username": "tls_user", "password": PASSWORD});
    let r = https
        .post(format!("https://{}/api/v1/auth/register", server.addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let registered: serde_json::Value = r.json().await.unwrap();
    let token = registered["access_token"].as_str().unwrap().to_owned();
    // The WebSocket over TLS (wss) goes through the same accept loop and gateway.
    {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(server.addr.clone())
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let url = format!("wss://{}/api/v1/ws", server.addr);
        let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
        use futures_util::{SinkExt, StreamExt};
        let auth = serde_json::json!({"type": "auth", "token": token}).to_string();
        ws.send(tokio_tungstenite::tungstenite::Message::text(auth))
            .await
            .unwrap();
        let first = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
        assert_eq!(ready["type"], "ready", "{ready}");
        assert_eq!(ready["user"]["username"], "tls_user");
    }
    let plain = server.client().healthz().await;
    assert!(
        plain.is_err(),
        "plain HTTP must not be answered on the TLS port"
    );
    // Without TLS there is no HSTS header.
    let http_server = TestServer::start().await;
    let r = reqwest::get(format!("{}/healthz", http_server.url()))
        .await
        .unwrap();
    assert!(r.headers().get("strict-transport-security").is_none());
    // A certificate without its key is refused at start with one line.
    let out = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}

#[tokio::test]
async fn overload_is_shed_with_503_and_the_server_recovers() {
    let server = TestServer::start_with(&["--max-inflight", "2", "--hash-concurrency", "1"]).await;
    // Registrations are slow on purpose (argon2 behind one slot): 16 at once overload a
    // server that takes 2 requests at a time.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = server.client();
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"email": format!("o{i}@example.com"), "username": format!("over_{i}"), "password": PASSWORD});
            c.raw_bytes(Method::POST, "/auth/register", Some("application/json"), serde_json::to_vec(&body).unwrap(), false)
                .await
                .unwrap()
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => ok += 1,
            503 => {
                shed += 1;
                assert_eq!(error_code(&r.json().unwrap()), Some(ErrorCode::Unavailable));
                assert_eq!(r.header("retry-after"), Some("1"));
            }
            other => panic!("{other}: {}", r.text()),
        }
    }
    assert!(ok >= 2 && shed >= 1, "ok {ok}, shed {shed}");
    // Health checks are never shed, and once the load is gone everything works again.
    assert!(server.client().healthz().await.is_ok());
    let (c, _) = register(&server, "after").await;
    c.me().await.unwrap();
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains(&format!("chatnode_http_shed_total {shed}")),
        "{metrics}"
    );
}
