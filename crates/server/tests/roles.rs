//! Roles (`serve --roles`, issue 20 §5): a mixed cluster of two WebSocket gateways and one
//! api+push node, end to end, on real PostgreSQL and NATS; and a single node's clear errors
//! for the routes of roles it does not run. The cluster test needs `CHATNODE_TEST_PG` and
//! nats-server; SKIPPED otherwise.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chatnode_client::protocol::{PushPayload, SendMessageRequest, ServerFrame};
use chatnode_client::{ClientError, Method};
use common::cluster::*;
use common::push_service::{Browser, Service, server_key};
use common::*;

/// `(status, message)` of a refused call.
fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api {
            status, message, ..
        }) => (status, message),
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_mixed_cluster_of_gateways_and_an_api_push_node_works_end_to_end() {
    let gw: &[&str] = &["--roles", "gateway"];
    let api: &[&str] = &["--roles", "api,push", "--push-delay-ms", "200"];
    let Some(c) = cluster_with(
        "a_mixed_cluster_of_gateways_and_an_api_push_node_works_end_to_end",
        &[api, gw, gw],
    )
    .await
    else {
        return;
    };
    let (api_node, gw1, gw2) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);

    // Readiness per role, for the load balancer's pools.
    for (node, role, ready) in [
        (api_node, "api", true),
        (api_node, "push", true),
        (api_node, "gateway", false),
        (gw1, "gateway", true),
        (gw1, "api", false),
        (gw1, "push", false),
    ] {
        let (status, v) = node
            .client()
            .raw(Method::GET, &format!("/readyz?role={role}"), None)
            .await
            .unwrap();
        assert_eq!(status == 200, ready, "{role} on {}: {v}", node.addr);
    }

    // Accounts, friends and a group through the api node.
    let (ann, au) = register(api_node, "ann").await;
    let (bob, bu) = register(api_node, "bob").await;
    let (cat, cu) = register(api_node, "cat").await;
    befriend(&ann, &au, &bob, &bu).await;
    befriend(&ann, &au, &cat, &cu).await;
    let grp = group(&ann, "mixed", &[&bu, &cu]).await;

    // The gateway refuses REST, the api node refuses WebSockets: clearly, never silently.
    let (status, message) = refusal(on(gw1, &ann).me().await);
    assert_eq!(status, 503);
    assert!(message.contains("api role"), "{message}");
    let err = on(api_node, &ann).connect_ws().await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");

    // Cat is offline and subscribed to pushes (through the api node).
    let (svc, base) = Service::start().await;
    let browser = Browser::new(&base, "cat");
    browser.subscribe(&cat).await;
    let key = server_key(&cat).await;

    // Ann on one gateway, Bob on the other: live both ways.
    let mut ann_ws = on(gw1, &ann).connect_ws().await.unwrap();
    let mut bob_ws = on(gw2, &bob).connect_ws().await.unwrap();
    let m = ann_ws
        .send_message(&grp.id, "x1", "over gateways")
        .await
        .unwrap();
    let got = bob_ws
        .next_matching(
            WAIT,
            |f| matches!(f, ServerFrame::Message { message, .. } if message.id == m.id),
        )
        .await
        .unwrap();
    assert!(
        got.is_some(),
        "bob got ann's message live on the other gateway"
    );
    // A REST send on the api node reaches both gateways' sockets.
    let req = SendMessageRequest {
        client_id: "r1".into(),
        body: "over rest".into(),
        ..Default::default()
    };
    let (rest_msg, _) = on(api_node, &bob)
        .send_message(&grp.id, &req)
        .await
        .unwrap();
    for (who, ws) in [("ann", &mut ann_ws), ("bob", &mut bob_ws)] {
        let got = ws
            .next_matching(
                WAIT,
                |f| matches!(f, ServerFrame::Message { message, .. } if message.id == rest_msg.id),
            )
            .await
            .unwrap();
        assert!(got.is_some(), "{who} got the REST message live");
    }

    // The push for offline Cat: decided on the gateway that committed ann's message, sent by
    // the api+push node (the gateways send none).
    svc.wait_for_within("cat", 2, Duration::from_secs(15)).await;
    let received = svc.received.lock().unwrap().remove("cat").unwrap();
    let bodies: HashSet<Option<String>> = received
        .iter()
        .map(|r| match browser.open(r, &key) {
            PushPayload::Message { body, .. } => body,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        bodies,
        HashSet::from([
            Some("over gateways".to_owned()),
            Some("over rest".to_owned())
        ])
    );
    let sent = |node: &TestServer| {
        let node = node.client();
        async move {
            let m = node.metrics().await.unwrap();
            m.lines()
                .find_map(|l| l.strip_prefix("chatnode_push_sent_total "))
                .map(|v| v.parse::<u64>().unwrap())
                .unwrap()
        }
    };
    assert_eq!(sent(api_node).await, 2, "the push node sent both");
    assert_eq!(sent(gw1).await + sent(gw2).await, 0, "gateways send none");

    // Cat comes online on a gateway and resumes from the start: everything, once.
    let mut cat_ws = on(gw2, &cat).connect_ws().await.unwrap();
    let (frames, _) = cat_ws.sync(0).await.unwrap();
    let ids: Vec<&str> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message { message, .. } if message.conversation_id == grp.id => {
                Some(message.id.as_str())
            }
            _ => None,
        })
        .filter(|id| *id == m.id || *id == rest_msg.id)
        .collect();
    assert_eq!(ids, vec![m.id.as_str(), rest_msg.id.as_str()]);
}

#[tokio::test]
async fn a_node_without_a_role_answers_its_routes_with_a_clear_error() {
    let gateway = TestServer::start_with(&["--roles", "gateway"]).await;
    // Health and metrics on every node.
    gateway.client().healthz().await.unwrap();
    gateway.client().metrics().await.unwrap();
    let ready: serde_json::Value =
        serde_json::from_str(&gateway.client().readyz().await.unwrap()).unwrap();
    assert_eq!(ready["roles"], serde_json::json!(["gateway"]));
    // REST, media and the web client belong to the api role.
    let anon = gateway.client();
    let root = format!("{}/", gateway.url());
    let index = format!("{}/index.html", gateway.url());
    for path in ["/auth/login", "/users/me", root.as_str(), index.as_str()] {
        let (status, v) = anon.raw(Method::GET, path, None).await.unwrap();
        assert_eq!(status, 503, "{path}: {v}");
        assert_eq!(
            error_code(&v).map(|c| c.as_str()),
            Some("unavailable"),
            "{v}"
        );
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("api role") && message.contains("gateway"),
            "{message}"
        );
    }

    let api = TestServer::start_with(&["--roles", "api"]).await;
    let (c, _) = register(&api, "noroles").await;
    let err = c.connect_ws().await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    let (status, _) = api
        .client()
        .raw(Method::GET, "/readyz?role=gateway", None)
        .await
        .unwrap();
    assert_eq!(status, 503);
    let (status, _) = api
        .client()
        .raw(Method::GET, "/readyz?role=nonsense", None)
        .await
        .unwrap();
    assert_eq!(status, 400);

    // Unknown or empty roles stop the server at start with one line.
    for roles in ["gateway,chat", ""] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--roles",
                roles,
                "--data-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{roles:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("role"), "{err}");
    }
}
