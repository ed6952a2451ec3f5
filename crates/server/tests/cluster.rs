//! Three real `chatnode` processes sharing one PostgreSQL schema and a private NATS server:
//! they must behave as one service. Needs `CHATNODE_TEST_PG` (a PostgreSQL base URL) and
//! `/usr/sbin/nats-server`; without either, each test prints SKIPPED and passes.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use chatnode_client::WsConnection;
use chatnode_client::protocol::{ClientFrame, Message, ServerFrame};
use common::cluster::*;
use common::*;

fn send(conv: &str, client_id: &str, body: &str) -> ClientFrame {
    ClientFrame::Send {
        conversation_id: conv.into(),
        client_id: client_id.into(),
        body: body.into(),
        kind: None,
        attachment_ids: None,
        reply_to_seq: None,
    }
}

/// Waits for a `message` in `conv` whose body is `body`.
async fn expect_message(ws: &mut WsConnection, conv: &str, body: &str) -> Message {
    let found = ws
        .next_matching(WAIT, |f| {
            matches!(f, ServerFrame::Message { message, .. }
                if message.conversation_id == conv && message.body == body)
        })
        .await
        .expect("socket open");
    match found {
        Some(ServerFrame::Message { message, .. }) => message,
        other => panic!("no message {body:?} in {conv} within {WAIT:?}: {other:?}"),
    }
}

/// Collects `message` seqs of `conv` until every one of `want` has arrived (or `within`).
async fn collect_until(
    ws: &mut WsConnection,
    conv: &str,
    want: &HashSet<i64>,
    within: Duration,
) -> Vec<i64> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while !want.iter().all(|s| got.contains(s)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.next_frame(left).await.expect("socket open") {
            Some(ServerFrame::Message { message, .. }) if message.conversation_id == conv => {
                got.push(message.seq)
            }
            Some(_) => {}
            None => {
                let mut missing: Vec<_> = want.iter().filter(|s| !got.contains(s)).collect();
                missing.sort();
                panic!("timed out; missing {missing:?}; got {got:?}");
            }
        }
    }
    got
}

fn assert_strictly_increasing(seqs: &[i64], who: &str) {
    for w in seqs.windows(2) {
        assert!(w[0] < w[1], "{who}: out of order or duplicated: {seqs:?}");
    }
}

#[tokio::test]
async fn direct_and_group_messages_cross_nodes_in_real_time() {
    let Some(c) = cluster("direct_and_group_messages_cross_nodes_in_real_time").await else {
        return;
    };
    let (ann, au) = register(&c.nodes[0], "ann").await;
    let (bob, bu) = register(&c.nodes[1], "bob").await;
    let (cat, cu) = register(&c.nodes[2], "cat").await;
    befriend(&ann, &au, &bob, &bu).await;
    befriend(&ann, &au, &cat, &cu).await;
    let direct = ann.open_direct(&bu.id).await.unwrap();
    let grp = group(&ann, "trio", &[&bu, &cu]).await;

    let mut ann_ws = ann.connect_ws().await.unwrap();
    let mut bob_ws = bob.connect_ws().await.unwrap();
    let mut cat_ws = cat.connect_ws().await.unwrap();

    let m = ann_ws
        .send_message(&direct.id, "d1", "hello bob")
        .await
        .unwrap();
    assert_eq!(
        expect_message(&mut bob_ws, &direct.id, "hello bob").await,
        m
    );

    let g = ann_ws
        .send_message(&grp.id, "g1", "hello all")
        .await
        .unwrap();
    assert_eq!(expect_message(&mut bob_ws, &grp.id, "hello all").await, g);
    assert_eq!(expect_message(&mut cat_ws, &grp.id, "hello all").await, g);

    // And back, from the third node to the other two.
    let r = cat_ws
        .send_message(&grp.id, "c1", "hi from cat")
        .await
        .unwrap();
    assert_eq!(r.seq, g.seq + 1);
    assert_eq!(expect_message(&mut ann_ws, &grp.id, "hi from cat").await, r);
    assert_eq!(expect_message(&mut bob_ws, &grp.id, "hi from cat").await, r);

    // A member added later, connected to another node, gets the group's new messages.
    let (dan, du) = register(&c.nodes[2], "dan").await;
    befriend(&ann, &au, &dan, &du).await;
    let mut dan_ws = dan.connect_ws().await.unwrap();
    on(&c.nodes[1], &ann)
        .add_members(&grp.id, [du.id.as_str()])
        .await
        .unwrap();
    let later = ann_ws
        .send_message(&grp.id, "g2", "welcome dan")
        .await
        .unwrap();
    assert_eq!(
        expect_message(&mut dan_ws, &grp.id, "welcome dan").await,
        later
    );
}

#[tokio::test]
async fn presence_and_typing_cross_nodes() {
    let Some(c) = cluster("presence_and_typing_cross_nodes").await else {
        return;
    };
    let (ann, au) = register(&c.nodes[0], "ann").await;
    let (bob, bu) = register(&c.nodes[1], "bob").await;
    befriend(&ann, &au, &bob, &bu).await;
    let direct = ann.open_direct(&bu.id).await.unwrap();
    let mut ann_ws = ann.connect_ws().await.unwrap();

    let mut bob_ws = bob.connect_ws().await.unwrap();
    let online = ann_ws
        .next_matching(WAIT, |f| {
            matches!(f, ServerFrame::Presence { user_id, online: true, .. } if *user_id == bu.id)
        })
        .await
        .unwrap();
    assert!(online.is_some(), "ann saw bob come online on another node");
    // The REST view on the third node agrees.
    let seen = on(&c.nodes[2], &ann).get_user(&bu.id).await.unwrap();
    assert!(seen.online, "bob is online as seen from node 3");

    // A second connection on another node is not a new "online"; closing it is not "offline".
    let bob_ws2 = on(&c.nodes[2], &bob).connect_ws().await.unwrap();
    bob_ws2.close().await.unwrap();

    ann_ws
        .send_frame(ClientFrame::Typing {
            conversation_id: direct.id.clone(),
            typing: true,
        })
        .await
        .unwrap();
    let typing = bob_ws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::Typing { .. }))
        .await
        .unwrap();
    match typing {
        Some(ServerFrame::Typing {
            conversation_id,
            user_id,
            typing,
        }) => {
            assert_eq!(conversation_id, direct.id);
            assert_eq!(user_id, au.id);
            assert!(typing);
        }
        other => panic!("bob got no typing from another node: {other:?}"),
    }

    bob_ws.close().await.unwrap();
    let offline = ann_ws
        .next_matching(
            WAIT,
            |f| matches!(f, ServerFrame::Presence { user_id, .. } if *user_id == bu.id),
        )
        .await
        .unwrap();
    match offline {
        Some(ServerFrame::Presence {
            online,
            last_seen_at,
            ..
        }) => {
            assert!(!online, "the first presence after closing both is offline");
            assert!(last_seen_at.is_some());
        }
        other => panic!("ann saw no offline: {other:?}"),
    }
    let seen = on(&c.nodes[2], &ann).get_user(&bu.id).await.unwrap();
    assert!(!seen.online);
}

#[tokio::test]
async fn a_client_resumes_on_another_node_with_nothing_missing() {
    let Some(c) = cluster("a_client_resumes_on_another_node_with_nothing_missing").await else {
        return;
    };
    let (ann, au) = register(&c.nodes[0], "ann").await;
    let (bob, bu) = register(&c.nodes[0], "bob").await;
    befriend(&ann, &au, &bob, &bu).await;
    let direct = ann.open_direct(&bu.id).await.unwrap();

    let bob_ws = on(&c.nodes[1], &bob).connect_ws().await.unwrap();
    let since = bob_ws.ready().expect("ready").stream_pos;
    bob_ws.close().await.unwrap();
    let mut sent = Vec::new();
    for i in 0..20 {
        let m = on(&c.nodes[i % 3], &ann)
            .send_text(&direct.id, &format!("r{i}"), &format!("missed {i}"))
            .await
            .unwrap();
        sent.push(m.seq);
    }

    // The same sync on two different nodes gives the same, complete replay.
    let mut replays = Vec::new();
    for node in [&c.nodes[2], &c.nodes[0]] {
        let mut ws = on(node, &bob).connect_ws().await.unwrap();
        let (frames, _pos) = ws.sync(since).await.unwrap();
        let seqs: Vec<i64> = frames
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Message { message, .. } => Some(message.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, sent, "replay on {}", node.addr);
        replays.push(format!("{frames:?}"));
        ws.close().await.unwrap();
    }
    assert_eq!(replays[0], replays[1]);
}

#[tokio::test]
async fn a_killed_node_under_traffic_loses_no_acked_message() {
    let Some(mut c) = cluster("a_killed_node_under_traffic_loses_no_acked_message").await else {
        return;
    };
    let (ann, au) = register(&c.nodes[0], "ann").await;
    let (bob, bu) = register(&c.nodes[0], "bob").await;
    let (cat, cu) = register(&c.nodes[0], "cat").await;
    befriend(&ann, &au, &bob, &bu).await;
    befriend(&ann, &au, &cat, &cu).await;
    befriend(&bob, &bu, &cat, &cu).await;
    let grp = group(&ann, "kill", &[&bu, &cu]).await;

    // Ann and Bob on the victim node (1); Cat watches from node 0.
    let mut cat_ws = cat.connect_ws().await.unwrap();
    let mut ann_ws = on(&c.nodes[1], &ann).connect_ws().await.unwrap();
    let mut bob_ws = on(&c.nodes[1], &bob).connect_ws().await.unwrap();
    // Cat sees Bob online (he is on node 1).
    let seen = cat_ws
        .next_matching(WAIT, |f| {
            matches!(f, ServerFrame::Presence { user_id, online: true, .. } if *user_id == bu.id)
        })
        .await
        .unwrap();
    assert!(seen.is_some(), "cat saw bob online");

    // Traffic: 30 acked, then 20 more in flight when the node is killed.
    let mut acked: Vec<i64> = Vec::new();
    for i in 0..30 {
        acked.push(
            ann_ws
                .send_message(&grp.id, &format!("k{i}"), &format!("k{i}"))
                .await
                .unwrap()
                .seq,
        );
    }
    for i in 30..50 {
        ann_ws
            .send_frame(send(&grp.id, &format!("k{i}"), &format!("k{i}")))
            .await
            .unwrap();
    }
    // Whatever acks made it out before the kill count as acked.
    let _ = ann_ws
        .next_matching(Duration::from_millis(30), |_| false)
        .await;
    for f in ann_ws.take_buffered() {
        if let ServerFrame::Ack { message, .. } = f {
            acked.push(message.seq);
        }
    }
    // What bob received live before the kill.
    let mut bob_live = Vec::new();
    let _ = bob_ws
        .next_matching(Duration::from_millis(10), |_| false)
        .await;
    for f in bob_ws.take_buffered() {
        if let ServerFrame::Message { message, .. } = f {
            bob_live.push(message.seq);
        }
    }
    let bob_pos = bob_ws.last_stream_pos();
    c.nodes[1].kill9();

    // Ann reconnects elsewhere and resends what was not acked (same client_ids: no doubles).
    let mut ann2 = on(&c.nodes[2], &ann).connect_ws().await.unwrap();
    for i in 0..50 {
        let m = ann2
            .send_message(&grp.id, &format!("k{i}"), &format!("k{i}"))
            .await
            .unwrap();
        if !acked.contains(&m.seq) {
            acked.push(m.seq);
        }
    }
    let last = ann2.send_message(&grp.id, "k-end", "end").await.unwrap();
    acked.push(last.seq);
    acked.sort();
    // The group's own system messages come first; ours are the 51 after them.
    let first = acked[0];
    assert_eq!(
        acked,
        (first..first + 51).collect::<Vec<_>>(),
        "50 distinct messages and the end"
    );

    // Bob resumes on node 2 from his last position: every acked message, none twice.
    let mut bob2 = on(&c.nodes[2], &bob).connect_ws().await.unwrap();
    let (frames, _) = bob2.sync(bob_pos).await.unwrap();
    let mut bob_all = bob_live.clone();
    bob_all.extend(frames.iter().filter_map(|f| match f {
        ServerFrame::Message { message, .. } if message.conversation_id == grp.id => {
            Some(message.seq)
        }
        _ => None,
    }));
    assert_strictly_increasing(&bob_all, "bob");
    assert_eq!(bob_all, acked, "bob has every acked message once");

    // Cat, live on a surviving node the whole time, got all of them once, in order.
    let want: HashSet<i64> = acked.iter().copied().collect();
    let cat_seqs = collect_until(&mut cat_ws, &grp.id, &want, Duration::from_secs(15)).await;
    assert_strictly_increasing(&cat_seqs, "cat");
    assert_eq!(cat_seqs, acked);
}

#[tokio::test]
async fn a_killed_nodes_user_shows_offline_within_the_bound() {
    let Some(mut c) = cluster("a_killed_nodes_user_shows_offline_within_the_bound").await else {
        return;
    };
    let (ann, au) = register(&c.nodes[0], "ann").await;
    let (bob, bu) = register(&c.nodes[0], "bob").await;
    befriend(&ann, &au, &bob, &bu).await;
    let mut ann_ws = ann.connect_ws().await.unwrap();
    let _bob_ws = on(&c.nodes[1], &bob).connect_ws().await.unwrap();
    let online = ann_ws
        .next_matching(WAIT, |f| {
            matches!(f, ServerFrame::Presence { user_id, online: true, .. } if *user_id == bu.id)
        })
        .await
        .unwrap();
    assert!(online.is_some());

    let killed = Instant::now();
    c.nodes[1].kill9();
    let offline = ann_ws
        .next_matching(OFFLINE_BOUND, |f| {
            matches!(f, ServerFrame::Presence { user_id, online: false, .. } if *user_id == bu.id)
        })
        .await
        .unwrap();
    let took = killed.elapsed();
    match offline {
        Some(ServerFrame::Presence { last_seen_at, .. }) => assert!(last_seen_at.is_some()),
        other => panic!("no offline for bob within {OFFLINE_BOUND:?}: {other:?}"),
    }
    println!("bob shown offline {took:?} after his node was killed");
    // Not earlier than the timeout (a live node is never declared dead by one late beat)...
    assert!(took >= Duration::from_secs(8), "offline after {took:?}");
    // ...and the REST view on the third node agrees (its own check runs within a second).
    let n3 = on(&c.nodes[2], &ann);
    let deadline = Instant::now() + Duration::from_secs(3);
    while n3.get_user(&bu.id).await.unwrap().online {
        assert!(Instant::now() < deadline, "node 3 still shows bob online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn nats_restart_under_traffic_loses_and_doubles_nothing_live() {
    let Some(mut c) = cluster("nats_restart_under_traffic_loses_and_doubles_nothing_live").await
    else {
        return;
    };
    let (ann, au) = register(&c.nodes[0], "ann").await;
    let (bob, bu) = register(&c.nodes[0], "bob").await;
    let (cat, cu) = register(&c.nodes[0], "cat").await;
    befriend(&ann, &au, &bob, &bu).await;
    befriend(&ann, &au, &cat, &cu).await;
    let grp = group(&ann, "outage", &[&bu, &cu]).await;
    let mut ann_ws = ann.connect_ws().await.unwrap();
    let mut bob_ws = on(&c.nodes[1], &bob).connect_ws().await.unwrap();
    let mut cat_ws = on(&c.nodes[2], &cat).connect_ws().await.unwrap();
    // Cat also sends, from node 2, so two nodes publish into the conversation.
    let mut cat_tx = on(&c.nodes[2], &cat).connect_ws().await.unwrap();

    let mut acked = Vec::new();
    let mut n = 0;
    let mut burst = async |ann_ws: &mut WsConnection, cat_tx: &mut WsConnection, k: usize| {
        let mut out = Vec::new();
        for _ in 0..k {
            n += 1;
            let (ws, who) = if n % 3 == 0 {
                (&mut *cat_tx, "c")
            } else {
                (&mut *ann_ws, "a")
            };
            let m = ws
                .send_message(&grp.id, &format!("{who}{n}"), &format!("n{n}"))
                .await
                .unwrap();
            out.push(m.seq);
        }
        out
    };
    acked.extend(burst(&mut ann_ws, &mut cat_tx, 20).await);
    // Bob's second device was last connected here: it resumes from this position later.
    let bob_token = {
        let ws = on(&c.nodes[2], &bob).connect_ws().await.unwrap();
        ws.ready().expect("ready").stream_pos
    };

    c.nats.stop();
    // The nodes notice: readiness drops on every node.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut all_down = true;
        for node in &c.nodes {
            if node.client().readyz().await.is_ok() {
                all_down = false;
            }
        }
        if all_down {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz stayed ready without NATS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Messages still commit (and are acked) while NATS is away.
    acked.extend(burst(&mut ann_ws, &mut cat_tx, 20).await);
    // Bob's second device connects to another node during the outage and resumes: it must
    // get each owed message once, in seq order, however the node's own catch-up from the
    // database and this `sync` interleave.
    let mut bob2 = on(&c.nodes[0], &bob).connect_ws().await.unwrap();
    let (replayed, _) = bob2.sync(bob_token).await.unwrap();
    let mut bob2_seqs: Vec<i64> = replayed
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message { message, .. } if message.conversation_id == grp.id => {
                Some(message.seq)
            }
            _ => None,
        })
        .collect();
    c.nats.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.nodes[1].client().readyz().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "node 1 did not reconnect to NATS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    acked.extend(burst(&mut ann_ws, &mut cat_tx, 10).await);

    acked.sort();
    let first = acked[0];
    assert_eq!(acked, (first..first + 50).collect::<Vec<_>>());
    let want: HashSet<i64> = acked.iter().copied().collect();
    let rest: HashSet<i64> = acked[20..]
        .iter()
        .filter(|s| !bob2_seqs.contains(s))
        .copied()
        .collect();
    bob2_seqs.extend(collect_until(&mut bob2, &grp.id, &rest, Duration::from_secs(20)).await);
    let extra = bob2
        .next_matching(Duration::from_millis(500), |f| {
            matches!(f, ServerFrame::Message { .. })
        })
        .await
        .unwrap();
    assert!(
        extra.is_none(),
        "bob's second device got an extra {extra:?}"
    );
    assert_eq!(
        bob2_seqs,
        acked[20..].to_vec(),
        "bob's second device got each owed message once, in seq order"
    );
    for (who, ws) in [
        ("bob", &mut bob_ws),
        ("cat", &mut cat_ws),
        ("ann", &mut ann_ws),
    ] {
        let got = collect_until(ws, &grp.id, &want, Duration::from_secs(20)).await;
        assert_eq!(
            got, acked,
            "{who} got every message once, in seq order, live"
        );
        // Nothing more trickles in afterwards.
        let extra = ws
            .next_matching(Duration::from_millis(300), |f| {
                matches!(f, ServerFrame::Message { .. })
            })
            .await
            .unwrap();
        assert!(extra.is_none(), "{who} got an extra {extra:?}");
    }
}

/// Runs `chatnode serve ARGS` to its exit; returns the exit code and stderr.
fn serve_fails(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let out = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(args)
        .output()
        .expect("run chatnode");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn nats_with_sqlite_is_refused_with_one_line() {
    let (code, err) = serve_fails(&["--nats-url", "nats://127.0.0.1:1"]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("postgres://"), "{err}");
}

#[test]
fn unreachable_nats_exits_non_zero_with_one_line() {
    let Some(schema) = PgSchema::create() else {
        println!(
            "SKIPPED cluster::unreachable_nats_exits_non_zero_with_one_line: CHATNODE_TEST_PG is not set"
        );
        return;
    };
    let db = schema.url();
    let dead = format!("nats://127.0.0.1:{}", free_port());
    let (code, err) = serve_fails(&["--database-url", &db, "--nats-url", &dead]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("NATS"), "{err}");
}

/// Every `message` seq of `conv` that arrives within `quiet` of the last one.
async fn drain_seqs(ws: &mut WsConnection, conv: &str, quiet: Duration) -> Vec<i64> {
    let mut got = Vec::new();
    while let Some(f) = ws.next_frame(quiet).await.expect("socket open") {
        if let ServerFrame::Message { message, .. } = f
            && message.conversation_id == conv
        {
            got.push(message.seq);
        }
    }
    got
}

#[tokio::test]
async fn members_on_other_nodes_see_the_message_that_adds_them_live_and_once() {
    let Some(c) =
        cluster("members_on_other_nodes_see_the_message_that_adds_them_live_and_once").await
    else {
        return;
    };
    let (ann, au) = register(&c.nodes[0], "ann").await;
    let (bob, bu) = register(&c.nodes[1], "bob").await;
    let (cat, cu) = register(&c.nodes[2], "cat").await;
    let (dan, du) = register(&c.nodes[2], "dan").await;
    for (x, xu) in [(&bob, &bu), (&cat, &cu), (&dan, &du)] {
        befriend(&ann, &au, x, xu).await;
    }
    // Everyone is connected, each to their own node, before the group exists.
    let mut ann_ws = ann.connect_ws().await.unwrap();
    let mut bob_ws = bob.connect_ws().await.unwrap();
    let mut cat_ws = cat.connect_ws().await.unwrap();
    let mut dan_ws = dan.connect_ws().await.unwrap();

    // Created on node 0 with members connected to nodes 1 and 2: seq 1 "created" (before
    // they joined), seq 2 "ann added bob, cat" (theirs), then a message, seq 3.
    let grp = group(&ann, "trio", &[&bu, &cu]).await;
    let m3 = ann_ws.send_message(&grp.id, "t1", "hello").await.unwrap();
    assert_eq!(m3.seq, 3);
    let quiet = Duration::from_millis(1500);
    assert_eq!(drain_seqs(&mut ann_ws, &grp.id, quiet).await, [1, 2, 3]);
    assert_eq!(
        drain_seqs(&mut bob_ws, &grp.id, quiet).await,
        [2, 3],
        "bob (node 1) got the message that added him, then the next, once each"
    );
    assert_eq!(drain_seqs(&mut cat_ws, &grp.id, quiet).await, [2, 3]);

    // Dan is added later from node 1 while connected to node 2, where cat already follows
    // the group: seq 4 "ann added dan" reaches him, and cat, once.
    on(&c.nodes[1], &ann)
        .add_members(&grp.id, [du.id.as_str()])
        .await
        .unwrap();
    let m5 = on(&c.nodes[1], &ann)
        .send_text(&grp.id, "t2", "welcome dan")
        .await
        .unwrap();
    assert_eq!(m5.seq, 5);
    assert_eq!(drain_seqs(&mut dan_ws, &grp.id, quiet).await, [4, 5]);
    assert_eq!(drain_seqs(&mut cat_ws, &grp.id, quiet).await, [4, 5]);
    assert_eq!(drain_seqs(&mut bob_ws, &grp.id, quiet).await, [4, 5]);
    assert_eq!(drain_seqs(&mut ann_ws, &grp.id, quiet).await, [4, 5]);

    // A second group where the new member's node follows nothing of it yet, and the message
    // that adds him is the last one for a while: it must not wait for a next message.
    let (eve, eu) = register(&c.nodes[1], "eve").await;
    befriend(&ann, &au, &eve, &eu).await;
    let mut eve_ws = eve.connect_ws().await.unwrap();
    let duo = group(&ann, "duo", &[]).await;
    on(&c.nodes[2], &ann)
        .add_members(&duo.id, [eu.id.as_str()])
        .await
        .unwrap();
    assert_eq!(drain_seqs(&mut eve_ws, &duo.id, quiet).await, [2]);
}

#[tokio::test]
async fn ending_a_session_closes_its_sockets_on_every_node() {
    let Some(c) = cluster("ending_a_session_closes_its_sockets_on_every_node").await else {
        return;
    };
    let (ann, au) = register(&c.nodes[0], "ann").await;
    let (bob, bu) = register(&c.nodes[0], "bob").await;
    befriend(&ann, &au, &bob, &bu).await;
    let direct = ann.open_direct(&bu.id).await.unwrap();

    // Logout on node 0 ends the session's sockets on nodes 1 and 2 too, and they can no
    // longer send.
    let mut ws1 = on(&c.nodes[1], &ann).connect_ws().await.unwrap();
    let mut ws2 = on(&c.nodes[2], &ann).connect_ws().await.unwrap();
    ann.logout().await.unwrap();
    assert_eq!(ws1.wait_close(WAIT).await.unwrap().code, Some(4001));
    assert_eq!(ws2.wait_close(WAIT).await.unwrap().code, Some(4001));
    assert!(
        ws1.send_message(&direct.id, "after", "after logout")
            .await
            .is_err()
    );

    // A password change on node 0 ends the other sessions' sockets on other nodes.
    let laptop = c.nodes[0].client();
    laptop.login(&au.username, PASSWORD).await.unwrap();
    let phone = c.nodes[1].client();
    phone.login(&au.username, PASSWORD).await.unwrap();
    let mut phone_ws = phone.connect_ws().await.unwrap();
    let mut laptop_ws = on(&c.nodes[2], &laptop).connect_ws().await.unwrap();
    let new =
        serde_json::json!({"current_password": PASSWORD, "new_password": "a brand new secret"});
    let (status, _) = laptop
        .raw(
            chatnode_client::Method::POST,
            "/users/me/password",
            Some(new),
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    assert_eq!(phone_ws.wait_close(WAIT).await.unwrap().code, Some(4001));
    // The session that changed the password keeps its socket.
    laptop_ws.send_frame(ClientFrame::Ping).await.unwrap();
    assert!(matches!(
        laptop_ws.next_frame(WAIT).await.unwrap(),
        Some(ServerFrame::Pong)
    ));

    // DELETE /sessions/{id} on node 2 ends a session whose socket is on node 0.
    let tablet = c.nodes[0].client();
    tablet
        .login(&au.username, "a brand new secret")
        .await
        .unwrap();
    let mut tablet_ws = tablet.connect_ws().await.unwrap();
    let (_, list) = on(&c.nodes[2], &laptop)
        .raw(chatnode_client::Method::GET, "/sessions", None)
        .await
        .unwrap();
    let tablet_session = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] != true)
        .max_by_key(|s| s["created_at"].as_str().unwrap_or("").to_owned())
        .and_then(|s| s["id"].as_str())
        .unwrap()
        .to_owned();
    let (status, _) = on(&c.nodes[2], &laptop)
        .raw(
            chatnode_client::Method::DELETE,
            &format!("/sessions/{tablet_session}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    assert_eq!(tablet_ws.wait_close(WAIT).await.unwrap().code, Some(4001));

    // Reusing a spent refresh token (on node 1) ends that session's socket on node 2.
    let spent = laptop.refresh_token().unwrap();
    laptop.refresh().await.unwrap();
    let mut fresh_ws = on(&c.nodes[2], &laptop).connect_ws().await.unwrap();
    assert!(c.nodes[1].client().refresh_with(&spent).await.is_err());
    assert_eq!(fresh_ws.wait_close(WAIT).await.unwrap().code, Some(4001));
    let _ = laptop_ws.wait_close(WAIT).await;
}
