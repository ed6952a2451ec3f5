//! Bad input on every endpoint and frame type gets the contract's error shape and a 4xx:
//! malformed JSON, wrong types, missing fields, oversize values, unknown IDs. Never a 500.

mod common;

use chatnode_client::protocol::{ClientFrame, ErrorCode, ServerFrame};
use chatnode_client::{Client, Method};
use common::*;
use serde_json::{Value, json};

fn assert_error_shape(status: u16, body: &[u8], expect_status: u16, label: &str) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!(
            "{label}: body is not JSON: {:?}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(status, expect_status, "{label}: {v}");
    // A code of the protocol's closed list (a misspelt one would decode as `Unknown`).
    assert!(
        error_code(&v).is_some_and(|c| c != ErrorCode::Unknown),
        "{label}: {v}"
    );
    assert!(v["error"]["message"].is_string(), "{label}: {v}");
    v
}

async fn raw(
    c: &Client,
    method: Method,
    path: &str,
    ct: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let r = c
        .raw_bytes(method, path, ct, body.to_vec(), true)
        .await
        .unwrap();
    (r.status, r.body.to_vec())
}

#[tokio::test]
async fn every_json_endpoint_rejects_malformed_bodies() {
    let server = TestServer::start().await;
    let (c, me) = register(&server, "fuzz").await;
    // A system admin, so the admin endpoints parse bodies too (to others they are 404s).
    assert!(
        server
            .run(&["admin", "grant", &me.username], &[])
            .status
            .success()
    );
    let g = group(&c, "g", &[]).await;
    // `/notify` takes a service token.
    let out = server.run(&["service-token", "create", "fuzz"], &[]);
    assert!(out.status.success());
    let svc = c.with_token(String::from_utf8(out.stdout).unwrap().trim());
    let (_, doc) = c
        .raw(Method::GET, "/api/v1/openapi.json", None)
        .await
        .unwrap();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        // Real IDs, so that body parsing (not the lookup) is what fails.
        let concrete = path
            .replace("{id}", &g.id)
            .replace("{user_id}", &me.id)
            .replace("{seq}", "1")
            .replace("{code}", "nope");
        for (method, op) in ops.as_object().unwrap() {
            // A webhook's URL is its credential: an unknown one is 404 whatever the body
            // (its bad bodies are tested in integrations.rs).
            if path.starts_with("/api/v1/hooks/") {
                continue;
            }
            // Only JSON bodies here; uploads have their own tests (media.rs).
            if op["requestBody"]["content"]
                .get("application/json")
                .is_none()
            {
                continue;
            }
            // Logout and invites accept an empty body; everything else needs JSON.
            let optional = concrete.ends_with("/logout")
                || concrete.ends_with("/invites")
                || concrete.ends_with("/resolve")
                || concrete.ends_with("/notifications/read");
            // `{}` must fail where the body schema has required fields.
            let schema_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or("");
            let schema = &doc["components"]["schemas"][schema_ref.rsplit('/').next().unwrap_or("")];
            let has_required = schema["required"].as_array().is_some_and(|r| !r.is_empty());
            let m: Method = method.to_uppercase().parse().unwrap();
            let caller = if path == "/api/v1/notify" { &svc } else { &c };
            let label = format!("{method} {path}");
            let json_ct = Some("application/json");
            for (what, body) in [
                ("truncated", &b"{\"a\":"[..]),
                ("not json", b"hello"),
                ("array", b"[1,2]"),
                ("wrong types", br#"{"name":1,"username":[],"password":{},"user_id":5,"user_ids":"x","client_id":7,"body":false,"seq":"one","role":"king","login":null,"refresh_token":3,"display_name":9,"bio":[],"public":"yes","description":1,"expires_in":"soon","note":5,"reason":[],"uses":"x","until":3,"expires_at":4,"mentions":"no","text":1,"title":2,"code":3,"up_to":7}"#),
                ("invalid utf8", b"{\"name\":\"\xff\xfe\"}"),
            ] {
                let (s, b) = raw(caller, m.clone(), &concrete, json_ct, body).await;
                assert_error_shape(s, &b, 400, &format!("{label} {what}"));
            }
            let (s, b) = raw(caller, m.clone(), &concrete, Some("text/plain"), b"{}").await;
            assert_error_shape(s, &b, 415, &format!("{label} text/plain"));
            if !optional && has_required {
                let (s, b) = raw(caller, m.clone(), &concrete, json_ct, b"{}").await;
                assert_error_shape(s, &b, 400, &format!("{label} missing fields"));
            }
            let huge = format!("{{\"body\":\"{}\"}}", "x".repeat(300 * 1024));
            let (s, b) = raw(caller, m.clone(), &concrete, json_ct, huge.as_bytes()).await;
            assert_error_shape(s, &b, 413, &format!("{label} huge"));
            checked += 1;
        }
    }
    assert_eq!(checked, 30, "operations with bodies");
    assert_no_server_errors(&c).await;
}

async fn assert_no_server_errors(c: &Client) {
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("chatnode_http_server_errors_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_not_found() {
    let server = TestServer::start().await;
    let (c, _) = register(&server, "ids").await;
    let (_, doc) = c
        .raw(Method::GET, "/api/v1/openapi.json", None)
        .await
        .unwrap();
    for id in [
        "01900000-0000-7000-8000-00000000abcd",
        "not-a-uuid",
        "%27%20OR%201%3D1",
        "..%2F..%2Fetc",
    ] {
        for (path, ops) in doc["paths"].as_object().unwrap() {
            // The sign-in callback answers browsers with redirects, whatever it is given
            // (tests/sso.rs).
            if !path.contains('{') || path.contains("/oidc/") {
                continue;
            }
            let concrete = path
                .replace("{id}", id)
                .replace("{user_id}", id)
                .replace("{seq}", "1")
                .replace("{code}", id)
                .replace("{emoji}", "%F0%9F%91%8D");
            for (method, _) in ops.as_object().unwrap() {
                let m: Method = method.to_uppercase().parse().unwrap();
                let body = match path.as_str() {
                    p if p.ends_with("/messages/{seq}") && method == "patch" => {
                        json!({"body": "x"})
                    }
                    p if p.ends_with("/messages") && method == "post" => {
                        json!({"client_id": "x", "body": "x"})
                    }
                    p if p.ends_with("/members") && method == "post" => json!({"user_ids": [id]}),
                    p if p.ends_with("/members/{user_id}") && method == "patch" => {
                        json!({"role": "admin"})
                    }
                    p if p.ends_with("/transfer") => json!({"user_id": id}),
                    p if p.ends_with("/webhooks") => json!({"name": "x"}),
                    p if p.ends_with("/read") => json!({"seq": 1}),
                    p if p.starts_with("/api/v1/groups/{id}") && method == "patch" => {
                        json!({"name": "x"})
                    }
                    _ => json!({}),
                };
                let body = matches!(method.as_str(), "post" | "patch" | "put").then_some(body);
                let (status, v) = c.raw(m, &concrete, body).await.unwrap();
                assert_eq!(status, 404, "{method} {concrete} → {v}");
                assert_eq!(
                    error_code(&v),
                    Some(ErrorCode::NotFound),
                    "{method} {concrete}"
                );
            }
        }
    }
    // Unknown IDs inside bodies too.
    let ghost = "01900000-0000-7000-8000-00000000dead";
    for (path, body) in [
        ("/friends/requests", json!({"user_id": ghost})),
        ("/conversations/direct", json!({"user_id": ghost})),
        ("/groups", json!({"name": "g", "member_ids": [ghost]})),
    ] {
        let (status, v) = c.raw(Method::POST, path, Some(body)).await.unwrap();
        assert_eq!(
            (status, error_code(&v)),
            (404, Some(ErrorCode::NotFound)),
            "{path}: {v}"
        );
    }
    assert_no_server_errors(&c).await;
}

#[tokio::test]
async fn field_validation() {
    let server = TestServer::start().await;
    let anon = server.client();
    let ok =
        json!({"email": "val@example.com", "username": "valid_user", "password": "long enough pw"});
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let with = |k: &str, v: Value| {
        let mut o = ok.clone();
        o[k] = v;
        o
    };
    cases.push(("short username", with("username", json!("ab"))));
    cases.push(("long username", with("username", json!("x".repeat(33)))));
    cases.push(("bad username chars", with("username", json!("bad name!"))));
    cases.push(("short password", with("password", json!("short"))));
    cases.push(("huge password", with("password", json!("p".repeat(10_000)))));
    cases.push(("bad email", with("email", json!("not-an-email"))));
    cases.push((
        "bad phone",
        json!({"phone": "0123", "username": "phoneuser", "password": "long enough pw"}),
    ));
    cases.push((
        "no email or phone",
        json!({"username": "nocontact", "password": "long enough pw"}),
    ));
    cases.push((
        "huge display name",
        with("display_name", json!("d".repeat(1000))),
    ));
    for (label, body) in cases {
        let (status, v) = anon
            .raw(Method::POST, "/auth/register", Some(body))
            .await
            .unwrap();
        assert_eq!(status, 400, "{label}: {v}");
        assert_eq!(error_code(&v), Some(ErrorCode::InvalidRequest), "{label}");
    }
    // Duplicates are 409 with a specific code.
    anon.raw(Method::POST, "/auth/register", Some(ok.clone()))
        .await
        .unwrap();
    let (s, v) = anon
        .raw(Method::POST, "/auth/register", Some(ok.clone()))
        .await
        .unwrap();
    assert_eq!((s, error_code(&v)), (409, Some(ErrorCode::EmailTaken)));
    let (s, v) = anon
        .raw(Method::POST, "/auth/register", Some(json!({"email": "other@example.com", "username": "VALID_USER", "password": "long enough pw"})))
        .await
        .unwrap();
    assert_eq!(
        (s, error_code(&v)),
        (409, Some(ErrorCode::UsernameTaken)),
        "usernames are case-insensitive"
    );

    let (c, _) = register(&server, "val").await;
    let g = group(&c, "g", &[]).await;
    let send = format!("/conversations/{}/messages", g.id);
    for (label, path, method, body) in [
        (
            "empty body",
            send.as_str(),
            Method::POST,
            json!({"client_id": "a", "body": "   "}),
        ),
        (
            "too long body",
            send.as_str(),
            Method::POST,
            json!({"client_id": "a", "body": "x".repeat(17 * 1024)}),
        ),
        (
            "long client_id",
            send.as_str(),
            Method::POST,
            json!({"client_id": "c".repeat(200), "body": "x"}),
        ),
        (
            "empty client_id",
            send.as_str(),
            Method::POST,
            json!({"client_id": "", "body": "x"}),
        ),
        (
            "system kind",
            send.as_str(),
            Method::POST,
            json!({"client_id": "a", "body": "x", "kind": "system"}),
        ),
        (
            "image w/o attachments",
            send.as_str(),
            Method::POST,
            json!({"client_id": "a", "body": "", "kind": "image"}),
        ),
        (
            "unknown kind",
            send.as_str(),
            Method::POST,
            json!({"client_id": "a", "body": "x", "kind": "gif"}),
        ),
        (
            "reply to nothing",
            send.as_str(),
            Method::POST,
            json!({"client_id": "a", "body": "x", "reply_to_seq": 99}),
        ),
        (
            "reply to zero",
            send.as_str(),
            Method::POST,
            json!({"client_id": "a", "body": "x", "reply_to_seq": 0}),
        ),
        (
            "empty group name",
            "/groups",
            Method::POST,
            json!({"name": " "}),
        ),
        (
            "long group name",
            "/groups",
            Method::POST,
            json!({"name": "n".repeat(101)}),
        ),
        (
            "negative read",
            &format!("/conversations/{}/read", g.id),
            Method::POST,
            json!({"seq": -1}),
        ),
        (
            "bad role",
            &format!("/groups/{}/members/{}", g.id, g.id),
            Method::PATCH,
            json!({"role": "king"}),
        ),
        (
            "empty user_ids",
            &format!("/groups/{}/members", g.id),
            Method::POST,
            json!({"user_ids": []}),
        ),
        (
            "invite ttl",
            &format!("/groups/{}/invites", g.id),
            Method::POST,
            json!({"expires_in": 1}),
        ),
        (
            "befriend self",
            "/friends/requests",
            Method::POST,
            json!({"user_id": c.me().await.unwrap().user.id}),
        ),
    ] {
        let (status, v) = c.raw(method, path, Some(body)).await.unwrap();
        assert_eq!(status, 400, "{label}: {v}");
        assert_eq!(error_code(&v), Some(ErrorCode::InvalidRequest), "{label}");
    }
    for q in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "before_seq=x",
        "before_seq=3&after_seq=1",
    ] {
        let (status, v) = c
            .raw(Method::GET, &format!("{send}?{q}"), None)
            .await
            .unwrap();
        assert_eq!(status, 400, "{q}: {v}");
    }
    for q in ["limit=-1", "cursor=abc", "cursor=-5"] {
        let (status, v) = c
            .raw(Method::GET, &format!("/users?q=a&{q}"), None)
            .await
            .unwrap();
        assert_eq!(status, 400, "{q}: {v}");
    }
    for q in ["for=nobody", "for="] {
        let (status, v) = c
            .raw(Method::DELETE, &format!("{send}/1?{q}"), None)
            .await
            .unwrap();
        assert_eq!(
            (status, error_code(&v), v["error"]["field"].as_str()),
            (400, Some(ErrorCode::InvalidRequest), Some("for")),
            "{q}: {v}"
        );
    }
    assert_no_server_errors(&c).await;
}

#[tokio::test]
async fn bad_websocket_frames_get_errors_not_disconnects() {
    let server = TestServer::start().await;
    let (c, _) = register(&server, "wsbad").await;
    let g = group(&c, "g", &[]).await;
    let mut ws = c.connect_ws().await.unwrap();
    let frames: Vec<(String, Option<&str>)> = vec![
        ("{not json".into(), None),
        ("[]".into(), None),
        (r#"{"type":"warp"}"#.into(), None),
        (r#"{"no_type":1}"#.into(), None),
        (r#"{"type":"send","client_id":"k1"}"#.into(), Some("k1")),
        (
            format!(
                r#"{{"type":"send","conversation_id":"{}","client_id":"k2","body":12}}"#,
                g.id
            ),
            Some("k2"),
        ),
        (
            format!(
                r#"{{"type":"send","conversation_id":"{}","client_id":"k3","body":""}}"#,
                g.id
            ),
            Some("k3"),
        ),
        (
            format!(
                r#"{{"type":"send","conversation_id":"{}","client_id":"k4","body":"{}"}}"#,
                g.id,
                "x".repeat(20_000)
            ),
            Some("k4"),
        ),
        (
            r#"{"type":"send","conversation_id":"nope","client_id":"k5","body":"x"}"#.into(),
            Some("k5"),
        ),
        (
            r#"{"type":"typing","conversation_id":"nope","typing":true}"#.into(),
            None,
        ),
        (r#"{"type":"typing","conversation_id":5}"#.into(), None),
        (
            format!(
                r#"{{"type":"read","conversation_id":"{}","seq":"x"}}"#,
                g.id
            ),
            None,
        ),
        (r#"{"type":"sync","since":-4}"#.into(), None),
        (r#"{"type":"auth","token":"again"}"#.into(), None),
    ];
    for (text, client_id) in frames {
        ws.send_raw_text(text.clone()).await.unwrap();
        match ws.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::Error {
                client_id: got,
                code,
                ..
            }) => {
                assert!(
                    [ErrorCode::InvalidRequest, ErrorCode::NotFound].contains(&code),
                    "{text}: {code}"
                );
                if let Some(id) = client_id {
                    assert_eq!(got.as_deref(), Some(id), "{text}");
                }
            }
            other => panic!("{text}: expected an error frame, got {other:?}"),
        }
    }
    ws.send_raw_binary(vec![1, 2, 3]).await.unwrap();
    assert!(matches!(
        ws.next_frame(WAIT).await.unwrap(),
        Some(ServerFrame::Error { .. })
    ));
    // Still connected and working.
    ws.send_frame(ClientFrame::Ping).await.unwrap();
    assert!(matches!(
        ws.next_frame(WAIT).await.unwrap(),
        Some(ServerFrame::Pong)
    ));
    let m = ws.send_message(&g.id, "fine", "still here").await.unwrap();
    assert_eq!(m.body, "still here");

    // A frame over 64 KiB closes the socket with 4009.
    ws.send_raw_text(format!(
        r#"{{"type":"ping","pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    ))
    .await
    .unwrap();
    let closed = ws.wait_close(WAIT).await.unwrap();
    assert_eq!(closed.code, Some(4009));

    // Anything but auth as the first frame closes with 4001.
    let mut ws = c.connect_ws_unauthenticated().await.unwrap();
    ws.send_frame(ClientFrame::Ping).await.unwrap();
    assert_eq!(ws.wait_close(WAIT).await.unwrap().code, Some(4001));
    assert_no_server_errors(&c).await;
}
