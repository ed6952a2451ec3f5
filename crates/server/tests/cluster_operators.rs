//! Operators' and integrations' actions across a cluster (three nodes, one PostgreSQL schema,
//! a private NATS): a suspension closes the user's sockets on every node, the statistics count
//! every node's connections, and webhook posts and service notifications reach sockets on
//! other nodes. Needs `CHATNODE_TEST_PG` and nats-server; SKIPPED otherwise.

mod common;

use std::time::{Duration, Instant};

use chatnode_client::protocol::{NotifyRequest, ServerFrame};
use common::cluster::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_suspension_closes_sockets_on_every_node_and_stats_count_every_node() {
    let Some(c) = cluster("a_suspension_closes_sockets_on_every_node").await else {
        return;
    };
    let (admin, au) = register(&c.nodes[0], "adm").await;
    let out = c.nodes[0].run(&["admin", "grant", &au.username], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (user, uu) = register(&c.nodes[1], "usr").await;
    // The user is connected to every node.
    let mut sockets = Vec::new();
    for node in &c.nodes {
        sockets.push(on(node, &user).connect_ws().await.unwrap());
    }

    // Each node's heartbeat (every 3 s) carries its connections.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = admin.admin_stats().await.unwrap();
        if s.nodes.len() == 3 && s.connections == 3 {
            assert!(s.nodes.iter().all(|n| n.connections == 1), "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "stats never saw 3 nodes: {s:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    on(&c.nodes[2], &admin)
        .suspend(&uu.id, "spam", None)
        .await
        .unwrap();
    for (i, ws) in sockets.iter_mut().enumerate() {
        let closed = ws.wait_close(Duration::from_secs(10)).await.unwrap();
        assert_eq!(closed.code, Some(4001), "node {i}");
    }
    for node in &c.nodes {
        let err = node
            .client()
            .login(&uu.username, PASSWORD)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(403));
    }
}

#[tokio::test]
async fn webhook_posts_and_notifications_reach_sockets_on_other_nodes() {
    let Some(c) = cluster("webhook_posts_and_notifications_reach_sockets_on_other_nodes").await
    else {
        return;
    };
    let (owner, ou) = register(&c.nodes[0], "own").await;
    let (member, mu) = register(&c.nodes[1], "mem").await;
    befriend(&owner, &ou, &member, &mu).await;
    let g = group(&owner, "alerts", &[&mu]).await;
    let hook = owner.create_webhook(&g.id, "CI").await.unwrap();
    // The member listens on node 2; the post goes to node 0 (the URL's host); the
    // notification through node 1.
    let mut ws = on(&c.nodes[2], &member).connect_ws().await.unwrap();
    let ok = c.nodes[0]
        .client()
        .anonymous()
        .post_hook(&hook.url, &json!({"text": "cross-node"}))
        .await
        .unwrap();
    let got = ws
        .next_matching(
            Duration::from_secs(10),
            |f| matches!(f, ServerFrame::Message { message, .. } if message.seq == ok.seq),
        )
        .await
        .unwrap();
    assert!(got.is_some(), "the webhook's post reached another node");
    let out = c.nodes[0].run(&["service-token", "create", "ops"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let id = c.nodes[1]
        .client()
        .anonymous()
        .notify(
            &token,
            &NotifyRequest {
                user_id: mu.id.clone(),
                title: "hello".into(),
                body: "from ops".into(),
                url: None,
            },
        )
        .await
        .unwrap();
    let got = ws
        .next_matching(
            Duration::from_secs(10),
            |f| matches!(f, ServerFrame::Notification { id: n, .. } if *n == id),
        )
        .await
        .unwrap();
    assert!(got.is_some(), "the notification reached another node");
}
