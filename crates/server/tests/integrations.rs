//! Bots, incoming webhooks and service notifications (contract additions of 2026-12-07),
//! against the real server; and the example bot (`crates/client/examples/echo_bot.rs`) run
//! as its own process.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use chatnode_client::protocol::{ErrorCode, NotifyRequest, ServerFrame};
use chatnode_client::{BotSession, Client, Method};
use common::*;
use serde_json::json;

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn bots_are_made_used_rotated_and_deleted() {
    let server = TestServer::start().await;
    let (owner, ou) = register(&server, "own").await;
    let (stranger, _) = register(&server, "str").await;
    let made = owner
        .create_bot(&unique("helper"), Some("Helper"))
        .await
        .unwrap();
    assert!(made.bot.bot);
    assert!(made.token.starts_with("cnb_"));
    assert_eq!(made.bot.display_name, "Helper");
    let listed = owner.bots().await.unwrap();
    assert_eq!(listed.bots.len(), 1);
    assert!(stranger.bots().await.unwrap().bots.is_empty());

    // The token works on REST and the WebSocket.
    let bot = Client::for_bot(&server.url(), &made.token);
    let me = bot.me().await.unwrap();
    assert_eq!(me.user.id, made.bot.id);
    assert!(me.user.bot);
    let mut bot_ws = bot.connect_ws().await.unwrap();

    // Anyone may open a direct chat with a bot, with no friendship; it answers.
    let conv = stranger.open_direct(&made.bot.id).await.unwrap();
    let hi = stranger
        .send_text(&conv.id, "h1", "hello bot")
        .await
        .unwrap();
    let got = bot_ws
        .next_matching(
            T,
            |f| matches!(f, ServerFrame::Message { message, .. } if message.seq == hi.seq),
        )
        .await
        .unwrap();
    assert!(got.is_some(), "the bot got the message live");
    let reply = bot.send_text(&conv.id, "r1", "hi human").await.unwrap();
    assert_eq!(reply.sender_id, made.bot.id);

    // What bots may not do.
    let err = server
        .client()
        .login(&made.bot.username, PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "a bot has no password");
    let err = bot.send_friend_request(&ou.id).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    let err = owner.send_friend_request(&made.bot.id).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    let (status, _) = bot
        .raw(Method::POST, "/groups", Some(json!({"name": "botgroup"})))
        .await
        .unwrap();
    assert_eq!(status, 403);
    let (status, _) = bot
        .raw(
            Method::POST,
            "/bots",
            Some(json!({"username": unique("sub")})),
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    let (status, _) = bot
        .raw(
            Method::POST,
            "/auth/refresh",
            Some(json!({"refresh_token": made.token})),
        )
        .await
        .unwrap();
    assert_eq!(status, 401);

    // A group admin adds a bot as if it were a friend; a bot cannot be made owner.
    let g = group(&owner, "with bot", &[]).await;
    owner
        .add_members(&g.id, [made.bot.id.as_str()])
        .await
        .unwrap();
    bot.send_text(&g.id, "g1", "bot in a group").await.unwrap();
    let err = owner.transfer(&g.id, &made.bot.id).await.unwrap_err();
    assert_eq!(err.status(), Some(403));

    // Another user's bot: 404 for all of it.
    for (m, path) in [
        (Method::POST, format!("/bots/{}/token", made.bot.id)),
        (Method::DELETE, format!("/bots/{}", made.bot.id)),
    ] {
        let (status, _) = stranger.raw(m, &path, None).await.unwrap();
        assert_eq!(status, 404);
    }

    // Rotating: the old token stops at once and its sockets close with 4001.
    let new_token = owner.rotate_bot_token(&made.bot.id).await.unwrap();
    let closed = bot_ws.wait_close(T).await.unwrap();
    assert_eq!(closed.code, Some(4001));
    assert_eq!(bot.me().await.unwrap_err().status(), Some(401));
    let bot = Client::for_bot(&server.url(), &new_token);
    bot.me().await.unwrap();

    // Deleting: the bot leaves every conversation; the token stops working.
    let mut owner_ws = owner.connect_ws().await.unwrap();
    owner.delete_bot(&made.bot.id).await.unwrap();
    assert_eq!(bot.me().await.unwrap_err().status(), Some(401));
    let gone = owner_ws
        .next_matching(
            T,
            |f| matches!(f, ServerFrame::MemberRemoved { user_id, .. } if *user_id == made.bot.id),
        )
        .await
        .unwrap();
    assert!(gone.is_some());
    let members = owner.members(&g.id).await.unwrap();
    assert!(members.members.iter().all(|m| m.user.id != made.bot.id));
    assert!(owner.bots().await.unwrap().bots.is_empty());
}

#[tokio::test]
async fn at_most_ten_bots_each() {
    let server = TestServer::start().await;
    let (owner, _) = register(&server, "many").await;
    for _ in 0..10 {
        owner.create_bot(&unique("b"), None).await.unwrap();
    }
    let err = owner.create_bot(&unique("b"), None).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    let (status, _) = owner
        .raw(Method::POST, "/bots", Some(json!({"username": "x"})))
        .await
        .unwrap();
    assert_eq!(status, 400, "a bad username");
}

#[tokio::test]
async fn the_example_bot_answers_in_a_direct_chat() {
    let server = TestServer::start().await;
    let exe = std::path::Path::new(binary())
        .parent()
        .unwrap()
        .join("examples/echo_bot");
    assert!(
        exe.exists(),
        "build the example first: cargo build -p chatnode-client --example echo_bot ({})",
        exe.display()
    );
    let (user, _) = register(&server, "fan").await;
    let made = user
        .create_bot(&unique("echo"), Some("Echo"))
        .await
        .unwrap();
    let mut child = Command::new(&exe)
        .env("CHATNODE_URL", server.url())
        .env("CHATNODE_BOT_TOKEN", &made.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says when it listens; messages from then on reach it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        // Keep reading, so the bot's last words find an open pipe.
        for _ in lines {}
    });
    let said = rx.await.unwrap().unwrap().unwrap();
    assert!(said.contains("is listening"), "{said}");
    let conv = user.open_direct(&made.bot.id).await.unwrap();
    let mut ws = user.connect_ws().await.unwrap();
    let sent = ws.send_message(&conv.id, "e1", "ping 42").await.unwrap();
    let answer = ws
        .next_matching(Duration::from_secs(20), |f| {
            matches!(f, ServerFrame::Message { message, .. } if message.sender_id == made.bot.id)
        })
        .await
        .unwrap();
    match answer {
        Some(ServerFrame::Message { message, .. }) => {
            assert_eq!(message.body, "echo: ping 42");
            assert_eq!(message.reply_to_seq, Some(sent.seq));
        }
        other => panic!("no answer from the echo bot: {other:?}"),
    }
    // Deleting the bot stops it.
    user.delete_bot(&made.bot.id).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the bot did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_client_bot_session_receives_and_replies() {
    let server = TestServer::start().await;
    let (user, uu) = register(&server, "lib").await;
    let made = user.create_bot(&unique("lib"), None).await.unwrap();
    let mut bot = BotSession::connect(&server.url(), &made.token)
        .await
        .unwrap();
    let g = group(&user, "botgroup", &[]).await;
    user.add_members(&g.id, [made.bot.id.as_str()])
        .await
        .unwrap();
    let m = user.send_text(&g.id, "q", "question?").await.unwrap();
    let got = tokio::time::timeout(T, bot.next_message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.seq, got.sender_id.as_str()), (m.seq, uu.id.as_str()));
    let a = bot.reply(&got, "answer").await.unwrap();
    let again = bot.reply(&got, "answer").await.unwrap();
    assert_eq!(a.id, again.id, "replies are idempotent");
}

#[tokio::test]
async fn webhooks_post_slack_payloads_live() {
    let server = TestServer::start().await;
    let (owner, ou) = register(&server, "own").await;
    let (member, mu) = register(&server, "mem").await;
    let (outsider, _) = register(&server, "out").await;
    befriend(&owner, &ou, &member, &mu).await;
    let g = group(&owner, "alerts", &[&mu]).await;

    // Admins and the owner make them; members may not; outsiders do not see the group.
    let err = member.create_webhook(&g.id, "CI").await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    let err = outsider.create_webhook(&g.id, "CI").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let hook = owner.create_webhook(&g.id, "CI").await.unwrap();
    assert!(hook.url.starts_with("http://"), "{}", hook.url);
    assert!(hook.url.contains(&format!("/api/v1/hooks/{}/", hook.id)));
    let listed = member.webhooks(&g.id).await.unwrap();
    assert_eq!(listed.webhooks.len(), 1);
    assert_eq!(listed.webhooks[0].name, "CI");

    let mut ws = member.connect_ws().await.unwrap();
    let anon = server.client().anonymous();
    let ok = anon
        .post_hook(
            &hook.url,
            &json!({"text": "build #42 passed", "icon_emoji": ":ok:"}),
        )
        .await
        .unwrap();
    assert!(ok.ok);
    let live = ws
        .next_matching(
            T,
            |f| matches!(f, ServerFrame::Message { message, .. } if message.seq == ok.seq),
        )
        .await
        .unwrap();
    match live {
        Some(ServerFrame::Message { message, .. }) => {
            assert_eq!(message.body, "build #42 passed");
            assert_eq!(message.sender_id, ou.id);
            let via = message.via_webhook.unwrap();
            assert_eq!(
                (via.id.as_str(), via.name.as_str()),
                (hook.id.as_str(), "CI")
            );
        }
        other => panic!("{other:?}"),
    }
    // `username` names the post.
    let ok = anon
        .post_hook(
            &hook.url,
            &json!({"text": "deploying", "username": "Deploy bot"}),
        )
        .await
        .unwrap();
    let page = owner.messages(&g.id, None, None, Some(1)).await.unwrap();
    assert_eq!(page.messages[0].seq, ok.seq);
    assert_eq!(
        page.messages[0].via_webhook.as_ref().unwrap().name,
        "Deploy bot"
    );
    // A webhook's posts are not its creator's writing: unread for them like for the others.
    let mine = owner.conversation(&g.id).await.unwrap();
    assert!(mine.last_read_seq < ok.seq, "{mine:?}");
    assert!(mine.unread_count >= 2, "{mine:?}");
    // Slack's form encoding works too.
    let resp = anon
        .raw_bytes(
            Method::POST,
            &hook.url,
            Some("application/x-www-form-urlencoded"),
            b"payload=%7B%22text%22%3A%22from%20a%20form%22%7D".to_vec(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));

    // Errors: wrong secret or id 404; no text 400; too long 413.
    let (base, _secret) = hook.url.rsplit_once('/').unwrap();
    for url in [
        format!("{base}/wrong-secret"),
        hook.url
            .replace(&hook.id, "01900000-0000-7000-8000-000000000000"),
    ] {
        let (status, v) = anon
            .raw(Method::POST, &url, Some(json!({"text": "x"})))
            .await
            .unwrap();
        assert_eq!(status, 404, "{url}: {v}");
    }
    for body in [
        json!({}),
        json!({"text": ""}),
        json!({"text": "   "}),
        json!({"text": 5}),
    ] {
        let (status, v) = anon
            .raw(Method::POST, &hook.url, Some(body.clone()))
            .await
            .unwrap();
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(error_code(&v), Some(ErrorCode::InvalidRequest));
    }
    let (status, _) = anon
        .raw(
            Method::POST,
            &hook.url,
            Some(json!({"text": "x".repeat(17 * 1024)})),
        )
        .await
        .unwrap();
    assert_eq!(status, 413);

    // A webhook stops when its creator leaves (404) and when deleted.
    let hook2 = owner.create_webhook(&g.id, "two").await.unwrap();
    owner.delete_webhook(&g.id, &hook2.id).await.unwrap();
    let (status, _) = anon
        .raw(Method::POST, &hook2.url, Some(json!({"text": "x"})))
        .await
        .unwrap();
    assert_eq!(status, 404);
    owner
        .set_role(&g.id, &mu.id, chatnode_client::protocol::Role::Admin)
        .await
        .unwrap();
    let hook3 = member.create_webhook(&g.id, "three").await.unwrap();
    member.remove_member(&g.id, &mu.id).await.unwrap();
    let (status, _) = anon
        .raw(Method::POST, &hook3.url, Some(json!({"text": "x"})))
        .await
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn webhooks_are_rate_limited_and_work_in_direct_chats() {
    let server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let hook = b.create_webhook(&conv.id, "alerts").await.unwrap();
    assert_eq!(a.webhooks(&conv.id).await.unwrap().webhooks.len(), 1);
    let anon = server.client().anonymous();
    let mut limited = None;
    for i in 0..70 {
        let body = serde_json::to_vec(&json!({"text": format!("n{i}")})).unwrap();
        let resp = anon
            .raw_bytes(
                Method::POST,
                &hook.url,
                Some("application/json"),
                body,
                false,
            )
            .await
            .unwrap();
        if resp.status == 429 {
            limited = Some((i, resp));
            break;
        }
        assert_eq!(resp.status, 200);
    }
    let (at, resp) = limited.expect("never rate limited");
    assert_eq!(at, 60, "60 posts a minute");
    assert!(resp.header("retry-after").is_some());
}

#[tokio::test]
async fn services_notify_users_durably() {
    let server = TestServer::start().await;
    let (user, uu) = register(&server, "n").await;
    let out = server.run(&["service-token", "create", "billing"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("cns_") && !token.contains(' '), "{token}");
    // A second token with the same name is refused.
    let again = server.run(&["service-token", "create", "billing"], &[]);
    assert!(!again.status.success());

    let mut ws = user.connect_ws().await.unwrap();
    let since = ws.last_stream_pos();
    let req = NotifyRequest {
        user_id: uu.id.clone(),
        title: "Invoice ready".into(),
        body: "Your invoice for December is ready.".into(),
        url: Some("https://billing.example.com/inv/12".into()),
    };
    let c = server.client().anonymous();
    let id = c.notify(&token, &req).await.unwrap();
    let live = ws
        .next_matching(T, |f| matches!(f, ServerFrame::Notification { .. }))
        .await
        .unwrap();
    match live {
        Some(ServerFrame::Notification {
            id: got,
            title,
            url,
            stream_pos,
            ..
        }) => {
            assert_eq!(got, id);
            assert_eq!(title, "Invoice ready");
            assert_eq!(url.as_deref(), Some("https://billing.example.com/inv/12"));
            assert!(stream_pos.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Replayed by sync.
    let mut other = user.connect_ws().await.unwrap();
    let (frames, _) = other.sync(since).await.unwrap();
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Notification { id: got, .. } if *got == id))
    );
    // Listed newest first, with unread counts.
    c.notify(
        &token,
        &NotifyRequest {
            title: "Second".into(),
            url: Some("/settings".into()),
            ..req.clone()
        },
    )
    .await
    .unwrap();
    let list = user.notifications(None, None).await.unwrap();
    assert_eq!(list.notifications.len(), 2);
    assert_eq!(list.notifications[0].title, "Second");
    assert_eq!(list.unread_count, 2);
    let page = user.notifications(None, Some(1)).await.unwrap();
    let rest = user
        .notifications(page.next_cursor.as_deref(), Some(1))
        .await
        .unwrap();
    assert_eq!(rest.notifications[0].id, id);
    user.mark_notifications_read(None).await.unwrap();
    assert_eq!(
        user.notifications(None, None).await.unwrap().unread_count,
        0
    );

    // Who may notify: a service token only.
    for t in [
        user.access_token().unwrap(),
        "cns_made-up".to_string(),
        String::new(),
    ] {
        let err = c.notify(&t, &req).await.unwrap_err();
        assert_eq!(err.status(), Some(401));
    }
    let made = user.create_bot(&unique("nb"), None).await.unwrap();
    assert_eq!(
        c.notify(&made.token, &req).await.unwrap_err().status(),
        Some(401)
    );
    // Unknown user 404; bad fields 400.
    let err = c
        .notify(
            &token,
            &NotifyRequest {
                user_id: "01900000-0000-7000-8000-000000000000".into(),
                ..req.clone()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    for bad in [
        NotifyRequest {
            title: "x".repeat(101),
            ..req.clone()
        },
        NotifyRequest {
            body: "x".repeat(1001),
            ..req.clone()
        },
        NotifyRequest {
            title: String::new(),
            ..req.clone()
        },
        NotifyRequest {
            url: Some("http://plain.example.com".into()),
            ..req.clone()
        },
        NotifyRequest {
            url: Some("javascript:alert(1)".into()),
            ..req.clone()
        },
        NotifyRequest {
            url: Some("//evil.example.com".into()),
            ..req.clone()
        },
    ] {
        let err = c.notify(&token, &bad).await.unwrap_err();
        assert_eq!(err.status(), Some(400), "{bad:?}");
    }
    // Revoked: it stops working at once.
    let out = server.run(&["service-token", "revoke", "billing"], &[]);
    assert!(out.status.success());
    assert_eq!(
        c.notify(&token, &req).await.unwrap_err().status(),
        Some(401)
    );
    let out = server.run(&["service-token", "revoke", "billing"], &[]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn tokens_and_webhook_secrets_stay_out_of_the_log() {
    // Debug level: the most the server ever logs about a request.
    let server = TestServer::start_with_env(&[], &[("CHATNODE_LOG", "debug")]).await;
    let (owner, _) = register(&server, "logs").await;
    let made = owner.create_bot(&unique("b"), None).await.unwrap();
    let bot = Client::for_bot(&server.url(), &made.token);
    bot.me().await.unwrap();
    let mut ws = bot.connect_ws().await.unwrap();
    ws.sync(0).await.unwrap();
    let wrong_bot = format!("{}x", made.token);
    let err = Client::for_bot(&server.url(), &wrong_bot)
        .me()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));

    let g = group(&owner, "hooks", &[]).await;
    let hook = owner.create_webhook(&g.id, "CI").await.unwrap();
    let secret = hook.url.rsplit('/').next().unwrap().to_owned();
    assert!(secret.len() >= 16, "{}", hook.url);
    let anon = server.client().anonymous();
    anon.post_hook(&hook.url, &json!({"text": "built"}))
        .await
        .unwrap();
    let wrong_url = format!("{}x", hook.url);
    assert!(
        anon.post_hook(&wrong_url, &json!({"text": "no"}))
            .await
            .is_err()
    );

    let out = server.run(&["service-token", "create", "svc"], &[]);
    assert!(out.status.success());
    let service = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (_, uu) = register(&server, "to").await;
    let req = NotifyRequest {
        user_id: uu.id.clone(),
        title: "t".into(),
        body: "b".into(),
        url: None,
    };
    anon.notify(&service, &req).await.unwrap();
    let wrong_service = format!("{service}x");
    assert!(anon.notify(&wrong_service, &req).await.is_err());

    let log = server.log();
    assert!(
        log.contains(r#""level":"DEBUG""#),
        "the log was written at debug level: {log}"
    );
    for (what, secret) in [
        ("bot token", made.token.as_str()),
        ("webhook secret", secret.as_str()),
        ("service token", service.as_str()),
    ] {
        assert!(!log.contains(secret), "the {what} is in the log");
    }
}
