//! The authorization matrix: each endpoint and WebSocket action against {no token, bad token,
//! stranger, non-friend, member, admin, owner}, each asserting the exact status or error.

mod common;

use chatnode_client::protocol::{
    ClientFrame, Conversation, CreateGroupRequest, ErrorCode, Role, ServerFrame, User,
};
use chatnode_client::{Client, Method};
use common::*;
use serde_json::{Value, json};

/// Owner O, admin A and member M of a private group G; F is O's friend outside G; S is a
/// stranger to everyone. D is O's direct conversation with F. G has a message by M (seq 2)
/// and one by O (seq 3).
struct World {
    o: Client,
    a: Client,
    m: Client,
    f: Client,
    s: Client,
    ou: User,
    au: User,
    mu: User,
    fu: User,
    su: User,
    g: Conversation,
    d: Conversation,
}

impl World {
    async fn new(server: &TestServer) -> World {
        let (o, ou) = register(server, "owner").await;
        let (a, au) = register(server, "admin").await;
        let (m, mu) = register(server, "member").await;
        let (f, fu) = register(server, "friend").await;
        let (s, su) = register(server, "stranger").await;
        befriend(&o, &ou, &a, &au).await;
        befriend(&o, &ou, &m, &mu).await;
        befriend(&o, &ou, &f, &fu).await;
        let g = o
            .create_group(&CreateGroupRequest {
                name: "private".into(),
                member_ids: Some(vec![au.id.clone(), mu.id.clone()]),
                ..Default::default()
            })
            .await
            .unwrap();
        o.set_role(&g.id, &au.id, Role::Admin).await.unwrap();
        let by_m = m.send_text(&g.id, "m-1", "from m").await.unwrap();
        let by_o = o.send_text(&g.id, "o-1", "from o").await.unwrap();
        assert_eq!((by_m.seq, by_o.seq), (4, 5), "seq 1-3 are system messages");
        let d = o.open_direct(&fu.id).await.unwrap();
        World {
            o,
            a,
            m,
            f,
            s,
            ou,
            au,
            mu,
            fu,
            su,
            g,
            d,
        }
    }

    fn who(&self, name: &str) -> &Client {
        match name {
            "owner" => &self.o,
            "admin" => &self.a,
            "member" => &self.m,
            "friend" => &self.f,
            "stranger" => &self.s,
            _ => unreachable!(),
        }
    }
}

async fn expect(
    c: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: Option<ErrorCode>,
    label: &str,
) {
    let (got, v) = c.raw(method.clone(), path, body).await.unwrap();
    assert_eq!(got, status, "{label}: {method} {path} → {v}");
    if let Some(code) = code {
        assert_eq!(error_code(&v), Some(code), "{label}: {method} {path} → {v}");
    }
    if got >= 400 {
        assert!(
            v["error"]["message"].is_string(),
            "{label}: error shape: {v}"
        );
    }
}

#[tokio::test]
async fn every_documented_endpoint_needs_a_valid_token() {
    let server = TestServer::start().await;
    let anon = server.client();
    let (_, doc) = anon
        .raw(Method::GET, "/api/v1/openapi.json", None)
        .await
        .unwrap();
    let (real, _) = register(&server, "tok").await;
    // A token with a valid shape but a wrong signature, and one for a revoked session.
    let forged = {
        let t = real.access_token().unwrap();
        let (head, sig) = t.rsplit_once('.').unwrap();
        format!("{head}.{}", sig.chars().rev().collect::<String>())
    };
    let revoked = {
        let (c, _) = register(&server, "gone").await;
        let t = c.access_token().unwrap();
        c.logout().await.unwrap();
        t
    };
    let public = [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/registration",
        "/api/v1/auth/providers",
        "/api/v1/auth/oidc/{provider}/start",
        "/api/v1/auth/oidc/{provider}/callback",
        "/api/v1/auth/oidc/exchange",
    ];
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if public.contains(&path.as_str()) {
            continue;
        }
        let concrete = path
            .replace("{id}", "01900000-0000-7000-8000-000000000000")
            .replace("{user_id}", "01900000-0000-7000-8000-000000000001")
            .replace("{seq}", "1")
            .replace("{code}", "abcdefabcdef");
        for method in ops.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            // Media reads allow anonymous callers (avatars are public): without access they
            // answer 404, like a missing file, so they cannot leak existence.
            // Admin endpoints hide from everyone who is not a system admin (the contract);
            // a webhook's URL is its credential (no token), so without a known one it is 404.
            let (want_status, want_code) = if (method == "get"
                && path.starts_with("/api/v1/media/"))
                || path.starts_with("/api/v1/admin/")
                || path.starts_with("/api/v1/hooks/")
            {
                (404, ErrorCode::NotFound)
            } else {
                (401, ErrorCode::Unauthenticated)
            };
            let body = matches!(method.as_str(), "post" | "patch" | "put").then(|| json!({}));
            for (label, client) in [
                ("no token", anon.clone()),
                ("garbage token", anon.with_token("not-a-jwt")),
                ("forged token", anon.with_token(forged.clone())),
                ("revoked session", anon.with_token(revoked.clone())),
            ] {
                expect(
                    &client,
                    m.clone(),
                    &concrete,
                    body.clone(),
                    want_status,
                    Some(want_code),
                    label,
                )
                .await;
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 34,
        "only {checked} operations in the OpenAPI document"
    );
}

#[tokio::test]
async fn group_read_endpoints_by_role() {
    let server = TestServer::start().await;
    let w = World::new(&server).await;
    let g = &w.g.id;
    for (who, status, code) in [
        ("stranger", 404, Some(ErrorCode::NotFound)),
        ("friend", 404, Some(ErrorCode::NotFound)),
        ("member", 200, None),
        ("admin", 200, None),
        ("owner", 200, None),
    ] {
        let c = w.who(who);
        expect(
            c,
            Method::GET,
            &format!("/conversations/{g}"),
            None,
            status,
            code,
            who,
        )
        .await;
        expect(
            c,
            Method::GET,
            &format!("/groups/{g}/members"),
            None,
            status,
            code,
            who,
        )
        .await;
        expect(
            c,
            Method::GET,
            &format!("/conversations/{g}/messages"),
            None,
            status,
            code,
            who,
        )
        .await;
        expect(
            c,
            Method::POST,
            &format!("/conversations/{g}/read"),
            Some(json!({"seq": 1})),
            status,
            code,
            who,
        )
        .await;
        let send_status = if status == 200 { 201 } else { status };
        let body = json!({"client_id": format!("send-{who}"), "body": "hi"});
        expect(
            c,
            Method::POST,
            &format!("/conversations/{g}/messages"),
            Some(body),
            send_status,
            code,
            who,
        )
        .await;
    }
    // A private group is invisible to outsiders: join says 404, not 403.
    expect(
        &w.s,
        Method::POST,
        &format!("/groups/{g}/join"),
        None,
        404,
        Some(ErrorCode::NotFound),
        "stranger join",
    )
    .await;
}

#[tokio::test]
async fn group_management_by_role() {
    let server = TestServer::start().await;
    let w = World::new(&server).await;
    let g = &w.g.id;
    for (who, manage, owner_only) in [
        (
            "stranger",
            (404, Some(ErrorCode::NotFound)),
            (404, Some(ErrorCode::NotFound)),
        ),
        (
            "member",
            (403, Some(ErrorCode::Forbidden)),
            (403, Some(ErrorCode::Forbidden)),
        ),
        ("admin", (200, None), (403, Some(ErrorCode::Forbidden))),
        ("owner", (200, None), (200, None)),
    ] {
        let c = w.who(who);
        expect(
            c,
            Method::PATCH,
            &format!("/groups/{g}"),
            Some(json!({"description": who})),
            manage.0,
            manage.1,
            who,
        )
        .await;
        let invite_status = if manage.0 == 200 { 201 } else { manage.0 };
        expect(
            c,
            Method::POST,
            &format!("/groups/{g}/invites"),
            None,
            invite_status,
            manage.1,
            who,
        )
        .await;
        // Roles: owner only. Changing M to member is a no-op for the owner.
        let path = format!("/groups/{g}/members/{}", w.mu.id);
        expect(
            c,
            Method::PATCH,
            &path,
            Some(json!({"role": "member"})),
            owner_only.0,
            owner_only.1,
            who,
        )
        .await;
    }
    // Adding members: admin/owner, and only their own friends.
    let add = |id: &str| Some(json!({"user_ids": [id]}));
    expect(
        &w.m,
        Method::POST,
        &format!("/groups/{g}/members"),
        add(&w.fu.id),
        403,
        Some(ErrorCode::Forbidden),
        "member adds",
    )
    .await;
    expect(
        &w.a,
        Method::POST,
        &format!("/groups/{g}/members"),
        add(&w.fu.id),
        403,
        Some(ErrorCode::NotFriends),
        "admin adds non-friend",
    )
    .await;
    expect(
        &w.o,
        Method::POST,
        &format!("/groups/{g}/members"),
        add(&w.fu.id),
        200,
        None,
        "owner adds friend",
    )
    .await;
    // Nobody may promote someone to owner through the role endpoint.
    let path = format!("/groups/{g}/members/{}", w.mu.id);
    expect(
        &w.o,
        Method::PATCH,
        &path,
        Some(json!({"role": "owner"})),
        400,
        Some(ErrorCode::InvalidRequest),
        "role owner",
    )
    .await;
    // Transfer: owner only.
    let t = format!("/groups/{g}/transfer");
    expect(
        &w.a,
        Method::POST,
        &t,
        Some(json!({"user_id": w.mu.id})),
        403,
        Some(ErrorCode::Forbidden),
        "admin transfers",
    )
    .await;
    expect(
        &w.m,
        Method::POST,
        &t,
        Some(json!({"user_id": w.mu.id})),
        403,
        Some(ErrorCode::Forbidden),
        "member transfers",
    )
    .await;
    expect(
        &w.s,
        Method::POST,
        &t,
        Some(json!({"user_id": w.mu.id})),
        404,
        Some(ErrorCode::NotFound),
        "stranger transfers",
    )
    .await;
    expect(
        &w.o,
        Method::POST,
        &t,
        Some(json!({"user_id": w.su.id})),
        404,
        Some(ErrorCode::NotFound),
        "transfer to non-member",
    )
    .await;
}

#[tokio::test]
async fn removing_members_by_role() {
    let server = TestServer::start().await;
    let w = World::new(&server).await;
    let g = &w.g.id;
    let rm = |id: &str| format!("/groups/{g}/members/{id}");
    expect(
        &w.s,
        Method::DELETE,
        &rm(&w.mu.id),
        None,
        404,
        Some(ErrorCode::NotFound),
        "stranger removes",
    )
    .await;
    expect(
        &w.m,
        Method::DELETE,
        &rm(&w.au.id),
        None,
        403,
        Some(ErrorCode::Forbidden),
        "member removes admin",
    )
    .await;
    expect(
        &w.a,
        Method::DELETE,
        &rm(&w.ou.id),
        None,
        403,
        Some(ErrorCode::Forbidden),
        "admin removes owner",
    )
    .await;
    expect(
        &w.o,
        Method::DELETE,
        &rm(&w.ou.id),
        None,
        403,
        Some(ErrorCode::Forbidden),
        "owner leaves without transfer",
    )
    .await;
    expect(
        &w.a,
        Method::DELETE,
        &rm(&w.mu.id),
        None,
        204,
        None,
        "admin removes member",
    )
    .await;
    // The removed member is now an outsider.
    expect(
        &w.m,
        Method::GET,
        &format!("/conversations/{g}"),
        None,
        404,
        Some(ErrorCode::NotFound),
        "removed member",
    )
    .await;
    expect(
        &w.o,
        Method::DELETE,
        &rm(&w.au.id),
        None,
        204,
        None,
        "owner removes admin",
    )
    .await;
    expect(
        &w.o,
        Method::DELETE,
        &rm(&w.au.id),
        None,
        404,
        Some(ErrorCode::NotFound),
        "already removed",
    )
    .await;
}

#[tokio::test]
async fn message_edit_and_delete_by_role() {
    let server = TestServer::start().await;
    let w = World::new(&server).await;
    let g = &w.g.id;
    let by_m = format!("/conversations/{g}/messages/4");
    let by_o = format!("/conversations/{g}/messages/5");
    let edit = Some(json!({"body": "changed"}));
    expect(
        &w.s,
        Method::PATCH,
        &by_m,
        edit.clone(),
        404,
        Some(ErrorCode::NotFound),
        "stranger edits",
    )
    .await;
    expect(
        &w.o,
        Method::PATCH,
        &by_m,
        edit.clone(),
        403,
        Some(ErrorCode::Forbidden),
        "owner edits another's",
    )
    .await;
    expect(
        &w.a,
        Method::PATCH,
        &by_m,
        edit.clone(),
        403,
        Some(ErrorCode::Forbidden),
        "admin edits another's",
    )
    .await;
    expect(
        &w.m,
        Method::PATCH,
        &by_m,
        edit.clone(),
        200,
        None,
        "author edits",
    )
    .await;
    expect(
        &w.m,
        Method::PATCH,
        &format!("/conversations/{g}/messages/1"),
        edit,
        403,
        Some(ErrorCode::Forbidden),
        "system",
    )
    .await;
    expect(
        &w.s,
        Method::DELETE,
        &format!("{by_m}?for=everyone"),
        None,
        404,
        Some(ErrorCode::NotFound),
        "stranger",
    )
    .await;
    expect(
        &w.m,
        Method::DELETE,
        &format!("{by_o}?for=everyone"),
        None,
        403,
        Some(ErrorCode::Forbidden),
        "member, another's",
    )
    .await;
    expect(
        &w.m,
        Method::DELETE,
        &format!("{by_o}?for=me"),
        None,
        204,
        None,
        "member hides for self",
    )
    .await;
    expect(
        &w.a,
        Method::DELETE,
        &format!("{by_m}?for=everyone"),
        None,
        204,
        None,
        "admin moderates",
    )
    .await;
    expect(
        &w.o,
        Method::DELETE,
        &format!("{by_o}?for=everyone"),
        None,
        204,
        None,
        "owner deletes own",
    )
    .await;
    // In a direct conversation only the author deletes for everyone.
    let d = &w.d.id;
    w.o.send_text(d, "d-1", "hi f").await.unwrap();
    expect(
        &w.f,
        Method::DELETE,
        &format!("/conversations/{d}/messages/1?for=everyone"),
        None,
        403,
        Some(ErrorCode::Forbidden),
        "peer",
    )
    .await;
    expect(
        &w.f,
        Method::PATCH,
        &format!("/conversations/{d}/messages/1"),
        Some(json!({"body":"x"})),
        403,
        Some(ErrorCode::Forbidden),
        "peer edit",
    )
    .await;
    expect(
        &w.o,
        Method::DELETE,
        &format!("/conversations/{d}/messages/1?for=everyone"),
        None,
        204,
        None,
        "author",
    )
    .await;
}

#[tokio::test]
async fn direct_conversations_and_friend_requests_by_relationship() {
    let server = TestServer::start().await;
    let w = World::new(&server).await;
    let d = &w.d.id;
    for who in ["stranger", "member", "admin"] {
        let c = w.who(who);
        expect(
            c,
            Method::GET,
            &format!("/conversations/{d}"),
            None,
            404,
            Some(ErrorCode::NotFound),
            who,
        )
        .await;
        let body = json!({"client_id": "x", "body": "sneaky"});
        expect(
            c,
            Method::POST,
            &format!("/conversations/{d}/messages"),
            Some(body),
            404,
            Some(ErrorCode::NotFound),
            who,
        )
        .await;
    }
    // A non-friend cannot open a direct conversation.
    expect(
        &w.s,
        Method::POST,
        "/conversations/direct",
        Some(json!({"user_id": w.ou.id})),
        403,
        Some(ErrorCode::NotFriends),
        "stranger",
    )
    .await;
    expect(
        &w.f,
        Method::POST,
        "/conversations/direct",
        Some(json!({"user_id": w.ou.id})),
        200,
        None,
        "friend",
    )
    .await;

    // Requests: only the recipient accepts or declines, only the sender cancels.
    let (_, req) =
        w.s.raw(
            Method::POST,
            "/friends/requests",
            Some(json!({"user_id": w.fu.id})),
        )
        .await
        .unwrap();
    let id = req["id"].as_str().unwrap();
    expect(
        &w.s,
        Method::POST,
        &format!("/friends/requests/{id}/accept"),
        None,
        403,
        Some(ErrorCode::Forbidden),
        "sender accepts",
    )
    .await;
    expect(
        &w.o,
        Method::POST,
        &format!("/friends/requests/{id}/accept"),
        None,
        404,
        Some(ErrorCode::NotFound),
        "third party",
    )
    .await;
    expect(
        &w.f,
        Method::DELETE,
        &format!("/friends/requests/{id}"),
        None,
        403,
        Some(ErrorCode::Forbidden),
        "recipient cancels",
    )
    .await;
    expect(
        &w.o,
        Method::DELETE,
        &format!("/friends/requests/{id}"),
        None,
        404,
        Some(ErrorCode::NotFound),
        "third party cancels",
    )
    .await;
    expect(
        &w.s,
        Method::POST,
        &format!("/friends/requests/{id}/decline"),
        None,
        403,
        Some(ErrorCode::Forbidden),
        "sender declines",
    )
    .await;
    expect(
        &w.f,
        Method::POST,
        &format!("/friends/requests/{id}/accept"),
        None,
        200,
        None,
        "recipient",
    )
    .await;
    expect(
        &w.f,
        Method::POST,
        "/friends/requests",
        Some(json!({"user_id": w.ou.id})),
        409,
        Some(ErrorCode::Conflict),
        "already friends",
    )
    .await;
    expect(
        &w.a,
        Method::DELETE,
        &format!("/friends/{}", w.fu.id),
        None,
        404,
        Some(ErrorCode::NotFound),
        "not friends",
    )
    .await;
}

#[tokio::test]
async fn websocket_actions_by_membership() {
    let server = TestServer::start().await;
    let w = World::new(&server).await;
    let g = w.g.id.clone();

    // Bad tokens are refused with close code 4001.
    let mut ws = w.s.connect_ws_unauthenticated().await.unwrap();
    ws.send_frame(ClientFrame::Auth {
        token: "forged".into(),
    })
    .await
    .unwrap();
    let closed = ws.wait_close(WAIT).await.unwrap();
    assert_eq!(closed.code, Some(4001));

    // A stranger's send, typing and read get errors; nothing reaches the members.
    let mut member_ws = w.m.connect_ws().await.unwrap();
    let mut ws = w.s.connect_ws().await.unwrap();
    let err = ws.send_message(&g, "s-1", "let me in").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    for frame in [
        ClientFrame::Typing {
            conversation_id: g.clone(),
            typing: true,
        },
        ClientFrame::Read {
            conversation_id: g.clone(),
            seq: 1,
        },
    ] {
        ws.send_frame(frame).await.unwrap();
        match ws.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::Error { code, .. }) => assert_eq!(code, ErrorCode::NotFound),
            other => panic!("expected an error, got {other:?}"),
        }
    }
    // A member's send is acked, and the member's own socket also sees the message event.
    let msg = member_ws.send_message(&g, "m-ws-1", "hello").await.unwrap();
    assert_eq!(msg.seq, 6);
    let ev = member_ws
        .next_matching(
            WAIT,
            |f| matches!(f, ServerFrame::Message { message, .. } if message.seq == 6),
        )
        .await
        .unwrap();
    assert!(ev.is_some());
    // The stranger saw nothing of it.
    let leaked = ws
        .next_matching(std::time::Duration::from_millis(300), |f| {
            matches!(f, ServerFrame::Message { .. } | ServerFrame::Typing { .. })
        })
        .await
        .unwrap();
    assert!(leaked.is_none(), "{leaked:?}");
}
