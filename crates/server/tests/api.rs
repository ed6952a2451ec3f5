//! Every REST endpoint's success path, through the client library against the real server.

mod common;

use chatnode_client::protocol::{
    ConversationKind, CreateGroupRequest, DeleteScope, ErrorCode, RegisterRequest, Role,
    SendMessageRequest, UpdateGroupRequest, UpdateProfileRequest,
};
use chatnode_client::{FriendRequestOutcome, Method};
use common::*;

#[tokio::test]
async fn operations_endpoints_answer() {
    let server = TestServer::start().await;
    let c = server.client();
    assert!(c.healthz().await.unwrap().contains("ok"));
    let ready = c.readyz().await.unwrap();
    let backend = if std::env::var("CHATNODE_TEST_PG").is_ok_and(|v| !v.is_empty()) {
        "postgres"
    } else {
        "sqlite"
    };
    assert!(
        ready.contains(&format!("\"store\":\"{backend}\"")),
        "{ready}"
    );
    let (status, doc) = c
        .raw(Method::GET, "/api/v1/openapi.json", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(
        doc["paths"]["/api/v1/auth/register"]["post"].is_object(),
        "{doc}"
    );
    register(&server, "m").await;
    let metrics = c.metrics().await.unwrap();
    assert!(
        metrics.contains("chatnode_http_request_duration_seconds_count"),
        "{metrics}"
    );
    assert!(metrics.contains("chatnode_ws_connections 0"));
}

#[tokio::test]
async fn register_login_refresh_logout_and_profile() {
    let server = TestServer::start().await;
    let c = server.client();
    let auth = c
        .register(&RegisterRequest {
            phone: Some("+14155550123".into()),
            email: Some("Phoebe@Example.com".into()),
            username: "Phoebe".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(auth.user.phone.as_deref(), Some("+14155550123"));
    assert_eq!(
        auth.user.user.display_name, "Phoebe",
        "display name defaults to the username"
    );
    let me = c.me().await.unwrap();
    assert_eq!(me.user.id, auth.user.user.id);

    // Login by username (any case), by phone; refresh rotates.
    assert_eq!(auth.user.email.as_deref(), Some("phoebe@example.com"));
    for login in [
        "phoebe",
        "PHOEBE",
        "+14155550123",
        "phoebe@example.com",
        "PHOEBE@EXAMPLE.COM",
    ] {
        let other = server.client();
        let a = other.login(login, PASSWORD).await.unwrap();
        assert_eq!(a.user.user.id, me.user.id);
    }
    let before = c.refresh_token().unwrap();
    let pair = c.refresh().await.unwrap();
    assert_ne!(pair.refresh_token, before);
    c.me().await.unwrap();

    let updated = c
        .update_me(&UpdateProfileRequest {
            display_name: Some("Phoebe B.".into()),
            bio: Some("hello there".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.user.display_name, "Phoebe B.");
    assert_eq!(updated.user.bio.as_deref(), Some("hello there"));

    let token = c.access_token().unwrap();
    c.logout().await.unwrap();
    // The session is over: its access token no longer works, nor its refresh token.
    let stale = server.client().with_token(token);
    assert_eq!(stale.me().await.unwrap_err().status(), Some(401));
    assert_eq!(
        server
            .client()
            .refresh_with(&pair.refresh_token)
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
}

#[tokio::test]
async fn search_and_profiles_never_show_contact_data() {
    let server = TestServer::start().await;
    let (a, _au) = register(&server, "searcher").await;
    let (_b, bu) = register(&server, "zelda").await;
    let found = a.search_users(&bu.username[..5], None, None).await.unwrap();
    assert!(found.users.iter().any(|u| u.id == bu.id));
    let by_email = a
        .search_users(&format!("{}@example.com", bu.username), None, None)
        .await
        .unwrap();
    assert_eq!(by_email.users.len(), 1);
    let (_, raw) = a
        .raw(
            Method::GET,
            &format!("/users?q={}", &bu.username[..5]),
            None,
        )
        .await
        .unwrap();
    let text = raw.to_string();
    assert!(
        !text.contains("example.com") && !text.contains("\"email\"") && !text.contains("\"phone\""),
        "{text}"
    );
    let (_, raw) = a
        .raw(Method::GET, &format!("/users/{}", bu.id), None)
        .await
        .unwrap();
    assert_eq!(raw["id"], bu.id.as_str());
    assert!(raw.get("email").is_none() && raw.get("phone").is_none());
}

#[tokio::test]
async fn friend_requests_accept_decline_cancel_mutual_remove() {
    let server = TestServer::start().await;
    let (a, au) = register(&server, "a").await;
    let (b, bu) = register(&server, "b").await;
    let (c, cu) = register(&server, "c").await;

    // a → b, accepted.
    let FriendRequestOutcome::Requested(req) = a.send_friend_request(&bu.id).await.unwrap() else {
        panic!("expected a pending request")
    };
    let lists = b.friend_requests().await.unwrap();
    assert_eq!(lists.incoming.len(), 1);
    assert_eq!(lists.incoming[0].id, req.id);
    assert_eq!(a.friend_requests().await.unwrap().outgoing.len(), 1);
    b.accept_request(&req.id).await.unwrap();
    assert!(
        a.friends()
            .await
            .unwrap()
            .friends
            .iter()
            .any(|f| f.id == bu.id)
    );
    assert!(
        b.friends()
            .await
            .unwrap()
            .friends
            .iter()
            .any(|f| f.id == au.id)
    );

    // a → c, declined; c → a, cancelled.
    let FriendRequestOutcome::Requested(r2) = a.send_friend_request(&cu.id).await.unwrap() else {
        panic!()
    };
    c.decline_request(&r2.id).await.unwrap();
    assert!(c.friend_requests().await.unwrap().incoming.is_empty());
    let FriendRequestOutcome::Requested(r3) = c.send_friend_request(&au.id).await.unwrap() else {
        panic!()
    };
    c.cancel_request(&r3.id).await.unwrap();
    assert!(a.friend_requests().await.unwrap().incoming.is_empty());

    // Mutual requests become a friendship at once (200 {friend}).
    let FriendRequestOutcome::Requested(_) = b.send_friend_request(&cu.id).await.unwrap() else {
        panic!()
    };
    match c.send_friend_request(&bu.id).await.unwrap() {
        FriendRequestOutcome::Friends(u) => assert_eq!(u.id, bu.id),
        other => panic!("expected friends, got {other:?}"),
    }
    assert!(c.friend_requests().await.unwrap().outgoing.is_empty());

    // Remove.
    a.remove_friend(&bu.id).await.unwrap();
    assert!(a.friends().await.unwrap().friends.is_empty());
    assert!(
        !b.friends()
            .await
            .unwrap()
            .friends
            .iter()
            .any(|f| f.id == au.id)
    );
}

#[tokio::test]
async fn blocks_end_friendship_and_stop_requests_and_direct_messages() {
    let server = TestServer::start().await;
    let (a, au, b, bu, conv) = friends_with_direct(&server).await;
    b.send_text(&conv.id, "before", "hi").await.unwrap();
    a.block(&bu.id).await.unwrap();
    let blocks = a.blocks().await.unwrap();
    assert_eq!(blocks.blocks.len(), 1);
    assert_eq!(blocks.blocks[0].user.id, bu.id);
    assert!(a.friends().await.unwrap().friends.is_empty());
    assert_eq!(
        b.send_friend_request(&au.id).await.unwrap_err().status(),
        Some(403)
    );
    let e = b
        .send_text(&conv.id, "after", "still there?")
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some(ErrorCode::Blocked))
    );
    a.unblock(&bu.id).await.unwrap();
    assert!(a.blocks().await.unwrap().blocks.is_empty());
    // Unblocking does not restore the friendship.
    let e = b.send_text(&conv.id, "after2", "hello?").await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some(ErrorCode::NotFriends))
    );
}

#[tokio::test]
async fn direct_conversations_are_one_per_pair() {
    let server = TestServer::start().await;
    let (a, _au, b, bu, conv) = friends_with_direct(&server).await;
    let again = a.open_direct(&bu.id).await.unwrap();
    assert_eq!(again.id, conv.id);
    assert_eq!(conv.kind, ConversationKind::Direct);
    assert_eq!(conv.peer.as_ref().unwrap().id, bu.id);
    let from_b = b.open_direct(&_au.id).await.unwrap();
    assert_eq!(from_b.id, conv.id);
    assert_eq!(from_b.member_count, 2);
}

#[tokio::test]
async fn groups_members_roles_invites_directory() {
    let server = TestServer::start().await;
    let (owner, ou) = register(&server, "owner").await;
    let (m1, m1u) = register(&server, "m1").await;
    let (m2, m2u) = register(&server, "m2").await;
    let (stranger, su) = register(&server, "stranger").await;
    befriend(&owner, &ou, &m1, &m1u).await;
    befriend(&owner, &ou, &m2, &m2u).await;

    let g = owner
        .create_group(&CreateGroupRequest {
            name: "Rustaceans".into(),
            description: Some("crabs".into()),
            public: Some(true),
            member_ids: Some(vec![m1u.id.clone()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (g.kind, g.my_role, g.member_count),
        (ConversationKind::Group, Role::Owner, 2)
    );

    owner.add_members(&g.id, [m2u.id.clone()]).await.unwrap();
    assert_eq!(owner.members(&g.id).await.unwrap().members.len(), 3);

    owner.set_role(&g.id, &m1u.id, Role::Admin).await.unwrap();
    let members = m1.members(&g.id).await.unwrap().members;
    assert_eq!(
        members.iter().find(|m| m.user.id == m1u.id).unwrap().role,
        Role::Admin
    );

    let renamed = m1
        .update_group(
            &g.id,
            &UpdateGroupRequest {
                name: Some("Ferris fans".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Ferris fans"));

    // Directory and join.
    let dir = stranger.group_directory(Some("ferris")).await.unwrap();
    assert!(dir.groups.iter().any(|x| x.id == g.id && !x.joined));
    stranger.join_group(&g.id).await.unwrap();
    assert_eq!(stranger.conversation(&g.id).await.unwrap().member_count, 4);

    // Admin removes a member; the member leaves on their own otherwise.
    m1.remove_member(&g.id, &su.id).await.unwrap();
    assert_eq!(
        stranger.conversation(&g.id).await.unwrap_err().status(),
        Some(404)
    );
    m2.remove_member(&g.id, &m2u.id).await.unwrap();

    // Invite links.
    let invite = m1.create_invite(&g.id, None).await.unwrap();
    assert!(invite.code.len() >= 10);
    let joined = stranger.accept_invite(&invite.code).await.unwrap();
    assert_eq!(joined.id, g.id);
    assert_eq!(joined.my_role, Role::Member);

    // Transfer ownership; the old owner becomes admin and may then leave.
    owner.transfer(&g.id, &m1u.id).await.unwrap();
    let as_old_owner = owner.conversation(&g.id).await.unwrap();
    assert_eq!(as_old_owner.my_role, Role::Admin);
    assert_eq!(m1.conversation(&g.id).await.unwrap().my_role, Role::Owner);
    owner.remove_member(&g.id, &ou.id).await.unwrap();

    // The timeline tells the story with system messages.
    let history = m1.messages(&g.id, None, None, Some(200)).await.unwrap();
    let bodies: Vec<&str> = history
        .messages
        .iter()
        .rev()
        .map(|m| m.body.as_str())
        .collect();
    let joined_text = bodies.join(" | ");
    for needle in [
        "created the group",
        "added",
        "an admin",
        "renamed the group to Ferris fans",
        "joined",
        "removed",
        "left",
        "the owner",
    ] {
        assert!(
            joined_text.contains(needle),
            "missing {needle:?} in {joined_text}"
        );
    }
    assert!(
        history
            .messages
            .iter()
            .all(|m| m.kind == chatnode_client::protocol::MessageKind::System)
    );
}

#[tokio::test]
async fn messages_history_edit_delete_reply_read() {
    let server = TestServer::start().await;
    let (a, au, b, _bu, conv) = friends_with_direct(&server).await;
    let mut seqs = Vec::new();
    for i in 0..5 {
        let m = a
            .send_text(&conv.id, &format!("c{i}"), &format!("hello {i} 👋"))
            .await
            .unwrap();
        seqs.push(m.seq);
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);

    // Idempotent REST send: same client_id → same message, 200.
    let (again, created) = a
        .send_message(
            &conv.id,
            &SendMessageRequest {
                client_id: "c0".into(),
                body: "other".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!((again.seq, again.body.as_str()), (1, "hello 0 👋"));

    // Unread counts come from read markers.
    assert_eq!(b.conversation(&conv.id).await.unwrap().unread_count, 5);
    assert_eq!(
        a.conversation(&conv.id).await.unwrap().unread_count,
        0,
        "own messages are never unread"
    );

    // Reply.
    let (reply, created) = b
        .send_message(
            &conv.id,
            &SendMessageRequest {
                client_id: "r1".into(),
                body: "re".into(),
                reply_to_seq: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(reply.reply_to_seq, Some(2));

    // Pagination: newest first with before_seq, oldest first with after_seq.
    let page = b.messages(&conv.id, None, None, Some(2)).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![6, 5]
    );
    let next = page.next_cursor.unwrap();
    let page2 = b
        .messages(&conv.id, Some(next), None, Some(10))
        .await
        .unwrap();
    assert_eq!(
        page2.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 3, 2, 1]
    );
    assert_eq!(page2.next_cursor, None);
    let fwd = b.messages(&conv.id, None, Some(3), Some(2)).await.unwrap();
    assert_eq!(
        fwd.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );

    // Edit (author), delete for everyone (tombstone), delete for me.
    let edited = a.edit_message(&conv.id, 1, "edited").await.unwrap();
    assert_eq!(edited.body, "edited");
    assert!(edited.edited_at.is_some());
    a.delete_message(&conv.id, 2, DeleteScope::Everyone)
        .await
        .unwrap();
    let m2 = b
        .messages(&conv.id, None, Some(1), Some(1))
        .await
        .unwrap()
        .messages
        .remove(0);
    assert_eq!((m2.seq, m2.deleted, m2.body.as_str()), (2, true, ""));
    b.delete_message(&conv.id, 3, DeleteScope::Me)
        .await
        .unwrap();
    let seen_by_b: Vec<i64> = b
        .messages(&conv.id, None, None, None)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.seq)
        .collect();
    assert!(!seen_by_b.contains(&3));
    let seen_by_a: Vec<i64> = a
        .messages(&conv.id, None, None, None)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.seq)
        .collect();
    assert!(seen_by_a.contains(&3));

    // Replying means b read everything before it; a now has one unread (the reply).
    assert_eq!(b.conversation(&conv.id).await.unwrap().unread_count, 0);
    assert_eq!(a.conversation(&conv.id).await.unwrap().unread_count, 1);
    assert_eq!(
        b.conversation(&conv.id).await.unwrap().peer_last_read_seq,
        Some(5),
        "a wrote up to 5"
    );
    let marker = a.mark_read(&conv.id, 6).await.unwrap();
    assert_eq!(
        b.conversation(&conv.id).await.unwrap().peer_last_read_seq,
        Some(6),
        "b sees how far a read"
    );
    assert_eq!((marker.last_read_seq, marker.unread_count), (6, 0));
    let back = a.mark_read(&conv.id, 2).await.unwrap();
    assert_eq!(back.last_read_seq, 6, "read markers never move back");
    let beyond = a.mark_read(&conv.id, 1000).await.unwrap();
    assert_eq!(
        beyond.last_read_seq, 6,
        "read markers stop at the last message"
    );
    let list = b.conversations().await.unwrap();
    let entry = list.conversations.iter().find(|x| x.id == conv.id).unwrap();
    assert_eq!(entry.last_read_seq, 6);
    assert_eq!(entry.last_message.as_ref().unwrap().seq, 6);
    let _ = au;
}

#[tokio::test]
async fn conversations_are_listed_by_recent_activity() {
    let server = TestServer::start().await;
    let (a, _au, _b, bu, direct) = friends_with_direct(&server).await;
    let g = group(&a, "later", &[&bu]).await;
    let first = a.conversations().await.unwrap().conversations;
    assert_eq!(first[0].id, g.id);
    a.send_text(&direct.id, "x1", "bump").await.unwrap();
    let second = a.conversations().await.unwrap().conversations;
    assert_eq!(second[0].id, direct.id);
    assert_eq!(second.len(), 2);
}

#[tokio::test]
async fn change_password_revokes_other_sessions_and_closes_their_sockets() {
    let server = TestServer::start().await;
    let (a, au) = register(&server, "pw").await;
    let phone = server.client();
    phone.login(&au.username, PASSWORD).await.unwrap();
    let mut phone_ws = phone.connect_ws().await.unwrap();
    let (_, list) = a.raw(Method::GET, "/sessions", None).await.unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);

    let wrong = serde_json::json!({"current_password": "not my password", "new_password": "a brand new secret"});
    let (status, v) = a
        .raw(Method::POST, "/users/me/password", Some(wrong))
        .await
        .unwrap();
    assert_eq!((status, error_code(&v)), (403, Some(ErrorCode::Forbidden)));
    let short = serde_json::json!({"current_password": PASSWORD, "new_password": "short"});
    assert_eq!(
        a.raw(Method::POST, "/users/me/password", Some(short))
            .await
            .unwrap()
            .0,
        400
    );
    let ok =
        serde_json::json!({"current_password": PASSWORD, "new_password": "a brand new secret"});
    assert_eq!(
        a.raw(Method::POST, "/users/me/password", Some(ok))
            .await
            .unwrap()
            .0,
        204
    );

    // The other device is logged out at once; this one stays.
    assert_eq!(phone_ws.wait_close(WAIT).await.unwrap().code, Some(4001));
    assert_eq!(phone.me().await.unwrap_err().status(), Some(401));
    a.me().await.unwrap();
    assert!(server.client().login(&au.username, PASSWORD).await.is_err());
    server
        .client()
        .login(&au.username, "a brand new secret")
        .await
        .unwrap();

    // Revoking a session by ID (a lost phone).
    let (_, list) = a.raw(Method::GET, "/sessions", None).await.unwrap();
    let other = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        a.raw(Method::DELETE, &format!("/sessions/{other}"), None)
            .await
            .unwrap()
            .0,
        204
    );
    assert_eq!(
        a.raw(Method::DELETE, &format!("/sessions/{other}"), None)
            .await
            .unwrap()
            .0,
        404
    );
    let (b, _) = register(&server, "other").await;
    let (_, mine) = a.raw(Method::GET, "/sessions", None).await.unwrap();
    let my_id = mine["sessions"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        b.raw(Method::DELETE, &format!("/sessions/{my_id}"), None)
            .await
            .unwrap()
            .0,
        404,
        "not theirs"
    );
}

#[tokio::test]
async fn deleting_an_account_erases_contact_data_and_keeps_messages_as_deleted_user() {
    let server = TestServer::start().await;
    let (a, au, b, bu, conv) = friends_with_direct(&server).await;
    let g = group(&a, "team", &[&bu]).await;
    a.send_text(&conv.id, "d1", "remember me").await.unwrap();
    let mut bws = b.connect_ws().await.unwrap();

    let export = a
        .raw(Method::GET, "/users/me/export", None)
        .await
        .unwrap()
        .1;
    assert_eq!(export["profile"]["id"], au.id.as_str());
    assert!(
        export["profile"]["email"]
            .as_str()
            .unwrap()
            .ends_with("@example.com")
    );
    assert_eq!(export["messages_sent"].as_array().unwrap().len(), 1);
    assert_eq!(export["friends"].as_array().unwrap().len(), 1);
    assert!(export["conversations"].as_array().unwrap().len() >= 2);

    let (status, _) = a
        .raw(
            Method::POST,
            "/users/me/delete",
            Some(serde_json::json!({"password": "wrong password"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    let (status, _) = a
        .raw(
            Method::POST,
            "/users/me/delete",
            Some(serde_json::json!({"password": PASSWORD})),
        )
        .await
        .unwrap();
    assert_eq!(status, 204);

    // Gone: cannot log in, tokens dead, friends told, group ownership passed on.
    assert_eq!(a.me().await.unwrap_err().status(), Some(401));
    assert!(server.client().login(&au.username, PASSWORD).await.is_err());
    let email = format!("{}@example.com", au.username);
    assert!(server.client().login(&email, PASSWORD).await.is_err());
    let removed = bws
        .next_matching(WAIT, |f| {
            matches!(
                f,
                chatnode_client::protocol::ServerFrame::FriendRemoved { .. }
            )
        })
        .await
        .unwrap();
    assert!(removed.is_some());
    assert_eq!(b.conversation(&g.id).await.unwrap().my_role, Role::Owner);
    // Messages stay, under "Deleted user"; contact data is not findable.
    let history = b.messages(&conv.id, None, None, None).await.unwrap();
    assert_eq!(history.messages[0].body, "remember me");
    let ghost = b.get_user(&au.id).await.unwrap();
    assert_eq!(ghost.display_name, "Deleted user");
    assert!(
        b.search_users(&email, None, None)
            .await
            .unwrap()
            .users
            .is_empty()
    );
    // The email can be registered again.
    server
        .client()
        .register(&RegisterRequest {
            email: Some(email),
            username: "fresh_start".into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}
