//! Running a server (contract additions of 2026-12-07, "Operators" and "Backups"): system
//! admins made on the command line while the server runs, every `/admin` endpoint hidden from
//! everyone else, suspensions that end every session at once, reports and moderation, the
//! audit log, statistics, registration modes and invites, upload quotas, and backups.

mod common;

use std::time::Duration;

use chatnode_client::protocol::{
    DeleteScope, ErrorCode, RegisterRequest, ReportRequest, ReportStatus, ServerFrame,
};
use chatnode_client::{ClientError, Method};
use common::*;
use serde_json::json;

const T: Duration = Duration::from_secs(10);

/// Makes `username` a system admin with `chatnode admin grant`, while the server runs.
fn grant_on_cli(server: &TestServer, username: &str) {
    let out = server.run(&["admin", "grant", username], &[]);
    assert!(
        out.status.success(),
        "admin grant: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("is a system admin"), "{said}");
}

#[tokio::test]
async fn admins_are_made_on_the_command_line_and_admin_endpoints_hide_from_others() {
    let server = TestServer::start().await;
    let (admin, au) = register(&server, "adm").await;
    let (user, uu) = register(&server, "usr").await;
    assert!(!admin.me().await.unwrap().system_admin);

    // Unknown users: a clear failure, not a silent success.
    let out = server.run(&["admin", "grant", "nobody_here"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named"));

    grant_on_cli(&server, &au.username);
    assert!(admin.me().await.unwrap().system_admin);

    // Every /admin endpoint: 404 to a user, and to no token at all.
    let anon = server.client().anonymous();
    for (m, path, body) in [
        (Method::GET, "/admin/users".to_string(), None),
        (Method::GET, "/admin/stats".into(), None),
        (Method::GET, "/admin/reports".into(), None),
        (Method::GET, "/admin/audit".into(), None),
        (Method::GET, "/admin/registration-invites".into(), None),
        (
            Method::POST,
            "/admin/registration-invites".into(),
            Some(json!({"uses": 1})),
        ),
        (
            Method::POST,
            format!("/admin/users/{}/suspend", au.id),
            Some(json!({"reason": "x"})),
        ),
        (
            Method::POST,
            format!("/admin/users/{}/grant-admin", uu.id),
            None,
        ),
        (
            Method::DELETE,
            format!("/admin/conversations/{}/messages/1", uu.id),
            None,
        ),
    ] {
        for c in [&user, &anon] {
            let (status, body_back) = c.raw(m.clone(), &path, body.clone()).await.unwrap();
            assert_eq!(status, 404, "{m} {path}: {body_back}");
            assert_eq!(error_code(&body_back), Some(ErrorCode::NotFound));
        }
    }
    assert!(!user.me().await.unwrap().system_admin);

    // Through the API: grant, then revoke.
    admin.set_system_admin(&uu.id, true).await.unwrap();
    assert!(user.me().await.unwrap().system_admin);
    user.admin_stats().await.unwrap();
    admin.set_system_admin(&uu.id, false).await.unwrap();
    let err = user.admin_stats().await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    // The CLI revokes too, and the audit log has all of it, newest first.
    let out = server.run(&["admin", "revoke", &au.username], &[]);
    assert!(out.status.success());
    let err = admin.admin_stats().await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    grant_on_cli(&server, &au.username);
    let audit = admin.admin_audit(None, None).await.unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "grant_admin",
            "revoke_admin",
            "revoke_admin",
            "grant_admin",
            "grant_admin"
        ]
    );
    // The command line acts with no actor; the API with the admin.
    assert!(audit.entries[0].actor.is_none());
    assert_eq!(
        audit.entries[2].actor.as_ref().map(|u| u.id.as_str()),
        Some(au.id.as_str())
    );
    assert_eq!(
        audit.entries[2].target_user.as_ref().map(|u| u.id.as_str()),
        Some(uu.id.as_str())
    );
    // Paginated.
    let page = admin.admin_audit(None, Some(2)).await.unwrap();
    assert_eq!(page.entries.len(), 2);
    let rest = admin
        .admin_audit(page.next_cursor.as_deref(), Some(10))
        .await
        .unwrap();
    assert_eq!(rest.entries.len(), 3);
    assert_eq!(rest.entries[0].id, audit.entries[2].id);
}

#[tokio::test]
async fn admins_list_and_search_users_with_contact_details() {
    let server = TestServer::start().await;
    let (admin, au) = register(&server, "adm").await;
    grant_on_cli(&server, &au.username);
    let c = server.client();
    let name = unique("zed");
    c.register(&RegisterRequest {
        email: Some(format!("{name}@example.org")),
        phone: Some("+14155550199".into()),
        username: name.clone(),
        password: PASSWORD.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let list = admin.admin_users(Some(&name), None, None).await.unwrap();
    assert_eq!(list.users.len(), 1);
    let u = &list.users[0];
    assert_eq!(
        u.email.as_deref(),
        Some(format!("{name}@example.org").as_str())
    );
    assert_eq!(u.phone.as_deref(), Some("+14155550199"));
    assert!(u.suspended_until.is_none() && !u.system_admin);
    // By exact email too, and everyone with no query, paginated.
    let list = admin
        .admin_users(Some(&format!("{name}@example.org")), None, None)
        .await
        .unwrap();
    assert_eq!(list.users.len(), 1);
    let page = admin.admin_users(None, None, Some(1)).await.unwrap();
    assert_eq!(page.users.len(), 1);
    let next = admin
        .admin_users(None, page.next_cursor.as_deref(), Some(1))
        .await
        .unwrap();
    assert_eq!(next.users.len(), 1);
    assert_ne!(next.users[0].user.id, page.users[0].user.id);
}

#[tokio::test]
async fn suspension_ends_every_session_at_once_and_blocks_login_and_refresh() {
    let server = TestServer::start().await;
    let (admin, au) = register(&server, "adm").await;
    grant_on_cli(&server, &au.username);
    let (user, uu) = register(&server, "bad").await;
    let refresh = user.refresh_token().unwrap();
    let mut ws = user.connect_ws().await.unwrap();

    // `until` must be an RFC 3339 time in the future.
    for until in ["yesterday", "2001-01-01T00:00:00Z"] {
        let (status, _) = admin
            .raw(
                Method::POST,
                &format!("/admin/users/{}/suspend", uu.id),
                Some(json!({"reason": "spam", "until": until})),
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{until}");
    }
    admin.suspend(&uu.id, "posting spam", None).await.unwrap();
    let closed = ws.wait_close(T).await.unwrap();
    assert_eq!(closed.code, Some(4001));
    // The access token stops working too (its session ended).
    assert_eq!(user.me().await.unwrap_err().status(), Some(401));

    let err = server
        .client()
        .login(&uu.username, PASSWORD)
        .await
        .unwrap_err();
    match &err {
        ClientError::Api {
            status,
            code,
            message,
        } => {
            assert_eq!(*status, 403);
            assert_eq!(*code, Some(ErrorCode::AccountSuspended));
            assert!(message.contains("posting spam"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    let err = server.client().refresh_with(&refresh).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(403), Some(ErrorCode::AccountSuspended))
    );
    let listed = admin
        .admin_users(Some(&uu.username), None, None)
        .await
        .unwrap();
    assert!(listed.users[0].suspended_until.is_some());
    assert_eq!(
        listed.users[0].suspension_reason.as_deref(),
        Some("posting spam")
    );

    admin.unsuspend(&uu.id).await.unwrap();
    let again = server.client();
    again.login(&uu.username, PASSWORD).await.unwrap();
    again.me().await.unwrap();

    // A timed suspension says until when.
    admin
        .suspend(&uu.id, "cool down", Some("2999-01-01T00:00:00Z"))
        .await
        .unwrap();
    let err = server
        .client()
        .login(&uu.username, PASSWORD)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("2999-01-01"), "{err}");
    let audit = admin.admin_audit(None, None).await.unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(&actions[..3], &["suspend", "unsuspend", "suspend"]);
}

#[tokio::test]
async fn reports_moderation_and_resolution() {
    let server = TestServer::start().await;
    let (admin, au) = register(&server, "adm").await;
    grant_on_cli(&server, &au.username);
    let (a, _aa, b, bu, conv) = friends_with_direct(&server).await;
    let (outsider, _) = register(&server, "out").await;
    for i in 1..=4 {
        a.send_text(&conv.id, &format!("c{i}"), &format!("context {i}"))
            .await
            .unwrap();
    }
    let bad = b
        .send_text(&conv.id, "bad", "buy cheap pills")
        .await
        .unwrap();
    a.send_text(&conv.id, "after", "what?").await.unwrap();

    // Only what the reporter can read.
    let req = ReportRequest {
        reason: "spam".into(),
        conversation_id: Some(conv.id.clone()),
        seq: Some(bad.seq),
        ..Default::default()
    };
    let err = outsider.report(&req).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    // One of a user or a message; a reason.
    for body in [
        json!({"reason": "x"}),
        json!({"reason": "x", "user_id": bu.id, "conversation_id": conv.id, "seq": 1}),
        json!({"reason": "", "user_id": bu.id}),
        json!({"reason": "x", "conversation_id": conv.id}),
    ] {
        let (status, v) = a
            .raw(Method::POST, "/reports", Some(body.clone()))
            .await
            .unwrap();
        assert_eq!(status, 400, "{body} → {v}");
    }
    let report_id = a.report(&req).await.unwrap();
    let user_report = outsider
        .report(&ReportRequest {
            reason: "rude".into(),
            user_id: Some(bu.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();

    let open = admin.admin_reports(ReportStatus::Open).await.unwrap();
    assert_eq!(open.reports.len(), 2);
    let r = open.reports.iter().find(|r| r.id == report_id).unwrap();
    assert_eq!(r.reason, "spam");
    assert_eq!(r.user.as_ref().unwrap().id, bu.id);
    assert_eq!(r.message.as_ref().unwrap().body, "buy cheap pills");
    // The message in context: three before and the one after.
    let ctx: Vec<i64> = r.context.iter().map(|m| m.seq).collect();
    assert_eq!(
        ctx,
        vec![bad.seq - 3, bad.seq - 2, bad.seq - 1, bad.seq, bad.seq + 1]
    );
    let ur = open.reports.iter().find(|r| r.id == user_report).unwrap();
    assert!(ur.message.is_none());
    assert_eq!(ur.user.as_ref().unwrap().id, bu.id);

    // A moderator deletes it for everyone, in a conversation they are not in.
    let mut aws = a.connect_ws().await.unwrap();
    admin.moderate_delete(&conv.id, bad.seq).await.unwrap();
    let f = aws
        .next_matching(T, |f| matches!(f, ServerFrame::MessageDeleted { .. }))
        .await
        .unwrap()
        .expect("message.deleted");
    match f {
        ServerFrame::MessageDeleted { seq, scope, .. } => {
            assert_eq!(seq, bad.seq);
            assert_eq!(scope, Some(DeleteScope::Everyone));
        }
        _ => unreachable!(),
    }
    let page = a.messages(&conv.id, None, None, None).await.unwrap();
    let gone = page.messages.iter().find(|m| m.seq == bad.seq).unwrap();
    assert!(gone.deleted && gone.body.is_empty());
    let err = admin.moderate_delete(&conv.id, 999).await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    admin
        .resolve_report(&report_id, Some("deleted the spam"))
        .await
        .unwrap();
    let err = admin.resolve_report(&report_id, None).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    let open = admin.admin_reports(ReportStatus::Open).await.unwrap();
    assert_eq!(open.reports.len(), 1);
    let done = admin.admin_reports(ReportStatus::Resolved).await.unwrap();
    assert_eq!(done.reports[0].id, report_id);
    assert_eq!(done.reports[0].resolved_by.as_deref(), Some(au.id.as_str()));
    assert_eq!(done.reports[0].note.as_deref(), Some("deleted the spam"));
    let audit = admin.admin_audit(None, None).await.unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(&actions[..2], &["resolve_report", "delete_message"]);
    assert_eq!(
        audit.entries[1].conversation_id.as_deref(),
        Some(conv.id.as_str())
    );
    assert_eq!(audit.entries[1].seq, Some(bad.seq));
}

#[tokio::test]
async fn stats_count_users_messages_and_connections() {
    let server = TestServer::start().await;
    let (admin, au) = register(&server, "adm").await;
    grant_on_cli(&server, &au.username);
    let (a, _au2, b, bu, conv) = friends_with_direct(&server).await;
    let _g = group(&a, "stats", &[&bu]).await;
    for i in 0..5 {
        a.send_text(&conv.id, &format!("s{i}"), "hi").await.unwrap();
    }
    let _ws1 = a.connect_ws().await.unwrap();
    let _ws2 = b.connect_ws().await.unwrap();
    let s = admin.admin_stats().await.unwrap();
    assert_eq!(s.users, 3);
    // Signing in over REST is activity too (all three did, at registration).
    assert_eq!(s.users_active_24h, 3, "{s:?}");
    assert_eq!(s.conversations, 2);
    assert_eq!(s.groups, 1);
    // Five texts, and the group's system message that it was made.
    assert!(s.messages_24h >= 5, "{s:?}");
    assert_eq!(s.messages_per_hour.len(), 24);
    assert_eq!(s.messages_per_hour.iter().sum::<i64>(), s.messages_24h);
    assert_eq!(s.connections, 2);
    assert_eq!(s.nodes.len(), 1);
    assert_eq!(s.nodes[0].connections, 2);
    // A connection is noted as activity in the background: wait for it.
    let deadline = std::time::Instant::now() + T;
    loop {
        let s = admin.admin_stats().await.unwrap();
        if s.users_active_24h >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn registration_can_be_closed_or_by_invite() {
    let server = TestServer::start_with(&["--registration", "closed"]).await;
    let c = server.client();
    assert_eq!(
        c.registration_mode().await.unwrap().mode,
        chatnode_client::protocol::RegistrationMode::Closed
    );
    let err = c
        .register(&RegisterRequest {
            email: Some("x@example.com".into()),
            username: unique("x"),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(403), Some(ErrorCode::RegistrationClosed))
    );
    drop(server);

    let server = TestServer::start_with_env(&[], &[("CHATNODE_REGISTRATION", "invite")]).await;
    let c = server.client();
    assert_eq!(
        c.registration_mode().await.unwrap().mode,
        chatnode_client::protocol::RegistrationMode::Invite
    );
    let attempt = |code: Option<String>| {
        let c = server.client();
        async move {
            c.register(&RegisterRequest {
                email: Some(format!("{}@example.com", unique("i"))),
                username: unique("inv"),
                password: PASSWORD.into(),
                invite_code: code,
                ..Default::default()
            })
            .await
        }
    };
    let err = attempt(None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RegistrationClosed));
    let err = attempt(Some("made-up".into())).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RegistrationClosed));
    drop(server);

    // The usual way in: the operator registers while registration is open, makes that
    // account an admin, and restarts by invite; the admin makes codes.
    let mut server = TestServer::start().await;
    let (admin, au) = register(&server, "adm").await;
    grant_on_cli(&server, &au.username);
    server.set_envs(&[("CHATNODE_REGISTRATION", "invite")]);
    server.restart().await;
    let admin = server.client().with_token(admin.access_token().unwrap());
    let invite = admin.create_registration_invite(2, None).await.unwrap();
    assert_eq!(invite.uses, 2);
    let listed = admin.registration_invites().await.unwrap();
    assert_eq!(listed.invites.len(), 1);
    assert!(
        !listed.invites[0].code.contains(&invite.code),
        "codes are not shown again"
    );
    let try_with = |code: &str| {
        let c = server.client();
        let code = code.to_owned();
        async move {
            c.register(&RegisterRequest {
                email: Some(format!("{}@example.com", unique("i"))),
                username: unique("inv"),
                password: PASSWORD.into(),
                invite_code: Some(code),
                ..Default::default()
            })
            .await
        }
    };
    try_with(&invite.code).await.unwrap();
    try_with(&invite.code).await.unwrap();
    let err = try_with(&invite.code).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RegistrationClosed));
    assert!(
        admin
            .registration_invites()
            .await
            .unwrap()
            .invites
            .is_empty()
    );
    // A revoked invite stops working at once.
    let other = admin
        .create_registration_invite(5, Some("2999-01-01T00:00:00Z"))
        .await
        .unwrap();
    let id = admin.registration_invites().await.unwrap().invites[0]
        .id
        .clone()
        .unwrap();
    admin.revoke_registration_invite(&id).await.unwrap();
    let err = try_with(&other.code).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RegistrationClosed));
    // Bad requests.
    for body in [
        json!({"uses": 0}),
        json!({"uses": 1, "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        let (status, _) = admin
            .raw(Method::POST, "/admin/registration-invites", Some(body))
            .await
            .unwrap();
        assert_eq!(status, 400);
    }
}

#[tokio::test]
async fn upload_quotas_refuse_with_the_numbers() {
    let server = TestServer::start_with(&[
        "--upload-quota-daily",
        "3000",
        "--upload-quota-total",
        "100000",
    ])
    .await;
    let (c, _) = register(&server, "up").await;
    c.upload(vec![b'a'; 2000], "text/plain", "one.txt")
        .await
        .unwrap();
    let usage = c.upload_usage().await.unwrap();
    assert_eq!(usage.bytes_today, 2000);
    assert_eq!(usage.daily_limit, Some(3000));
    // 2,000 of 3,000 used: a 2,000-byte file does not fit (refused while it streams).
    let err = c
        .upload(vec![b'b'; 2000], "text/plain", "two.txt")
        .await
        .unwrap_err();
    match &err {
        ClientError::Api {
            status,
            code,
            message,
        } => {
            assert_eq!((*status, *code), (413, Some(ErrorCode::QuotaExceeded)));
            assert!(
                message.contains("2.0 KiB of 2.9 KiB uploaded in the last 24 hours")
                    && message.contains("1000 bytes left"),
                "{message}"
            );
        }
        e => panic!("{e:?}"),
    }
    // What was refused is not counted.
    assert_eq!(c.upload_usage().await.unwrap().bytes_today, 2000);
    c.upload(vec![b'c'; 900], "text/plain", "three.txt")
        .await
        .unwrap();
}

#[tokio::test]
async fn uploads_stop_below_the_free_space_floor() {
    let server = TestServer::start_with(&["--min-free-disk", "99.9%"]).await;
    let (c, _) = register(&server, "up").await;
    let err = c
        .upload(vec![b'a'; 100], "text/plain", "one.txt")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(503), Some(ErrorCode::Unavailable))
    );
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_every_acked_message() {
    let server = TestServer::start().await;
    if !server.database_url().starts_with("sqlite") {
        return pg_dump_recipe(server).await;
    }
    let (a, au, b, bu, conv) = friends_with_direct(&server).await;
    let mut ws = a.connect_ws().await.unwrap();
    let mut acked = Vec::new();
    for i in 0..200 {
        acked.push(
            ws.send_message(&conv.id, &format!("b{i}"), &format!("before backup {i}"))
                .await
                .unwrap(),
        );
    }
    // Sends keep going while the backup runs.
    let conv_id = conv.id.clone();
    let sender = tokio::spawn(async move {
        for i in 0..200 {
            ws.send_message(&conv_id, &format!("d{i}"), "during backup")
                .await
                .unwrap();
        }
    });
    let file = server.dir.path().join("backup.db");
    let out = server.run(&["backup", file.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup:"));
    sender.await.unwrap();
    // The original goes on after the backup: these are not in the copy.
    for i in 0..5 {
        a.send_text(&conv.id, &format!("late{i}"), "after the backup")
            .await
            .unwrap();
    }
    // Where a client of the original server stands after everything was sent.
    let bws = b.connect_ws().await.unwrap();
    let seen = bws.last_stream_pos();
    // It will not overwrite.
    let again = server.run(&["backup", file.to_str().unwrap()], &[]);
    assert!(!again.status.success());

    // A new data dir with the copy and the same encryption key.
    let key = server.data_dir().join("encryption_key");
    let copy = TestServer::start_with_files(
        &[],
        &[],
        &[
            (file.as_path(), "chatnode.db"),
            (key.as_path(), "encryption_key"),
        ],
    )
    .await;
    let c = copy.client();
    c.login(&au.username, PASSWORD).await.unwrap();
    let convs = c.conversations().await.unwrap();
    let id = &convs.conversations[0].id;
    let mut bodies = Vec::new();
    let mut after = 0;
    loop {
        let page = c.messages(id, None, Some(after), Some(200)).await.unwrap();
        if page.messages.is_empty() {
            break;
        }
        after = page.messages.last().unwrap().seq;
        bodies.extend(page.messages.into_iter().map(|m| m.body));
    }
    for m in &acked {
        assert!(bodies.contains(&m.body), "{} lost", m.body);
    }
    // A client of the original server resumes from where it stood: what is sent after the
    // restore reaches it (positions were moved on), nothing twice.
    let b2 = copy.client();
    b2.login(&bu.username, PASSWORD).await.unwrap();
    let after = c
        .send_text(id, "after-restore", "after the restore")
        .await
        .unwrap();
    let mut ws = b2.connect_ws().await.unwrap();
    let (frames, _) = ws.sync(seen).await.unwrap();
    let got: Vec<i64> = frames
        .iter()
        .filter_map(|f| match f {
            chatnode_client::protocol::ServerFrame::Message { message, .. } => Some(message.seq),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![after.seq], "{frames:?}");
}

/// PostgreSQL: `chatnode backup` points to pg_dump, and the recipe of docs/deployment.md
/// ("Backups") works: `pg_dump -Fc` while the server runs, `CREATE DATABASE` + `pg_restore`
/// into it, a server on it has every acked message.
async fn pg_dump_recipe(server: TestServer) {
    let out = server.run(&["backup", "/tmp/never.db"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));

    let (a, au, _b, _bu, conv) = friends_with_direct(&server).await;
    let mut acked = Vec::new();
    for i in 0..50 {
        acked.push(
            a.send_text(&conv.id, &format!("p{i}"), &format!("pg {i}"))
                .await
                .unwrap()
                .body,
        );
    }
    let url = server.database_url();
    // The test server's URL: BASE?options=-c%20search_path%3DSCHEMA.
    let (base, schema) = url.split_once("?options=-c%20search_path%3D").unwrap();
    let dump = server.dir.path().join("chatnode.dump");
    let run = |cmd: &str, args: &[&str]| {
        let out = std::process::Command::new(cmd).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        "pg_dump",
        &["-Fc", "-n", schema, "-f", dump.to_str().unwrap(), base],
    );
    let db = unique("restore");
    let admin_url = base.rsplit_once('/').unwrap().0.to_owned();
    run("psql", &[base, "-qAtc", &format!("CREATE DATABASE {db}")]);
    let restored = format!("{admin_url}/{db}");
    run("pg_restore", &["-d", &restored, dump.to_str().unwrap()]);
    // Positions move on past what clients of the original server saw (docs/deployment.md).
    run(
        "psql",
        &[
            &restored,
            "-qAtc",
            &format!("UPDATE {schema}.stream_head SET pos = pos + 1099511627776 WHERE id = 1"),
        ],
    );
    let key = server.data_dir().join("encryption_key");
    let restored_url = format!("{restored}?options=-c%20search_path%3D{schema}");
    let copy = TestServer::start_with_files(
        &["--database-url", &restored_url],
        &[],
        &[(key.as_path(), "encryption_key")],
    )
    .await;
    let c = copy.client();
    c.login(&au.username, PASSWORD).await.unwrap();
    let page = c
        .messages(&conv.id, None, Some(0), Some(200))
        .await
        .unwrap();
    let bodies: Vec<String> = page.messages.into_iter().map(|m| m.body).collect();
    for body in &acked {
        assert!(bodies.contains(body), "{body} lost");
    }
    drop(copy);
    let _ = std::process::Command::new("psql")
        .args([base, "-qAtc", &format!("DROP DATABASE {db} WITH (FORCE)")])
        .output();
}

#[tokio::test]
async fn a_suspended_owners_bots_stop_and_start_again_when_it_is_lifted() {
    let server = TestServer::start().await;
    let (admin, au) = register(&server, "adm").await;
    grant_on_cli(&server, &au.username);
    let (owner, ou) = register(&server, "own").await;
    let made = owner.create_bot(&unique("b"), None).await.unwrap();
    let bot = chatnode_client::Client::for_bot(&server.url(), &made.token);
    bot.me().await.unwrap();
    let mut ws = bot.connect_ws().await.unwrap();

    admin.suspend(&ou.id, "spam bots", None).await.unwrap();
    // The bot's socket closes now, and its token is refused while the owner is suspended.
    let closed = ws.wait_close(T).await.unwrap();
    assert_eq!(closed.code, Some(4001));
    assert_eq!(bot.me().await.unwrap_err().status(), Some(401));
    assert!(bot.connect_ws().await.is_err());

    // Lifted: the same token works again (the bot's session was kept).
    admin.unsuspend(&ou.id).await.unwrap();
    assert_eq!(bot.me().await.unwrap().user.id, made.bot.id);
    bot.connect_ws().await.unwrap();
}
