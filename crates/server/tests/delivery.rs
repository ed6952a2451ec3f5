//! Real-time delivery: ordering, no loss, no duplicates, resume with `sync`, crash safety,
//! presence, typing, receipts, membership events, slow consumers, rate limits, shutdown.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chatnode_client::protocol::{ClientFrame, DeleteScope, ErrorCode, Message, ServerFrame};
use chatnode_client::{ClientError, WsConnection};
use common::*;

fn send_frame(conv: &str, client_id: &str, body: &str) -> ClientFrame {
    ClientFrame::Send {
        conversation_id: conv.into(),
        client_id: client_id.into(),
        body: body.into(),
        kind: None,
        attachment_ids: None,
        reply_to_seq: None,
    }
}

/// Reads `message` events for `conv` until `n` have arrived; panics on a timeout.
async fn collect_messages(
    ws: &mut WsConnection,
    conv: &str,
    n: usize,
    within: Duration,
) -> Vec<Message> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.next_frame(left).await.unwrap() {
            Some(ServerFrame::Message { message, .. }) if message.conversation_id == conv => {
                out.push(message)
            }
            Some(_) => {}
            None => panic!("timed out with {} of {n} messages", out.len()),
        }
    }
    out
}

#[tokio::test]
async fn burst_of_1000_arrives_in_seq_order_with_none_missing() {
    let server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let mut rx = b.connect_ws().await.unwrap();
    let mut tx = a.connect_ws().await.unwrap();
    for i in 0..1000 {
        tx.send_frame(send_frame(
            &conv.id,
            &format!("burst-{i}"),
            &format!("m{i}"),
        ))
        .await
        .unwrap();
    }
    // Every send is acked, in the order sent (one connection's sends commit in order).
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 1000 {
        match tx
            .next_frame(deadline.saturating_duration_since(Instant::now()))
            .await
            .unwrap()
        {
            Some(ServerFrame::Ack { client_id, message }) => {
                assert_eq!(client_id, message.client_id);
                acked.push(message.seq);
            }
            Some(ServerFrame::Error { code, message, .. }) => {
                panic!("send failed: {code} {message}")
            }
            Some(_) => {}
            None => panic!("timed out with {} acks", acked.len()),
        }
    }
    let got = collect_messages(&mut rx, &conv.id, 1000, Duration::from_secs(60)).await;
    let seqs: Vec<i64> = got.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=1000).collect::<Vec<_>>(),
        "receiver sees every message once, in seq order"
    );
    let bodies_in_order = got
        .iter()
        .enumerate()
        .all(|(i, m)| m.body == format!("m{i}"));
    assert!(bodies_in_order, "send order is seq order");
    let mut sorted = acked.clone();
    sorted.sort();
    assert_eq!(sorted, (1..=1000).collect::<Vec<_>>());
    // Group commit happened: far fewer transactions than messages.
    let metrics = a.metrics().await.unwrap();
    let batches: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("chatnode_message_batches_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(batches < 1000, "1000 messages took {batches} transactions");
}

#[tokio::test]
async fn retried_client_id_gives_the_same_message_and_no_second_delivery() {
    let server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let mut rx = b.connect_ws().await.unwrap();
    let mut tx = a.connect_ws().await.unwrap();
    let first = tx.send_message(&conv.id, "once", "hello").await.unwrap();
    let again = tx
        .send_message(&conv.id, "once", "hello (retry)")
        .await
        .unwrap();
    assert_eq!(first, again);
    // Over REST too, even from another connection.
    let (rest, created) = a
        .send_message(
            &conv.id,
            &chatnode_client::protocol::SendMessageRequest {
                client_id: "once".into(),
                body: "x".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(rest.id, first.id);
    tx.send_message(&conv.id, "twice", "second").await.unwrap();
    let got = collect_messages(&mut rx, &conv.id, 2, WAIT).await;
    assert_eq!(
        got.iter().map(|m| m.client_id.as_str()).collect::<Vec<_>>(),
        vec!["once", "twice"]
    );
    let extra = rx
        .next_matching(Duration::from_millis(300), |f| {
            matches!(f, ServerFrame::Message { .. })
        })
        .await
        .unwrap();
    assert!(extra.is_none(), "no second delivery: {extra:?}");
    assert_eq!(
        b.messages(&conv.id, None, None, None)
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
}

#[tokio::test]
async fn every_device_of_every_recipient_gets_each_event() {
    let server = TestServer::start().await;
    let (a, au, b, bu, _conv) = friends_with_direct(&server).await;
    let (c, cu) = register(&server, "carol").await;
    befriend(&a, &au, &c, &cu).await;
    let g = group(&a, "trio", &[&bu, &cu]).await;
    let b2 = server.client();
    b2.login(&bu.username, PASSWORD).await.unwrap();
    let mut devices = [
        b.connect_ws().await.unwrap(),
        b2.connect_ws().await.unwrap(),
        c.connect_ws().await.unwrap(),
        a.connect_ws().await.unwrap(),
    ];
    let sent = a.send_text(&g.id, "multi", "to all devices").await.unwrap();
    for ws in devices.iter_mut() {
        let got = collect_messages(ws, &g.id, 1, WAIT).await;
        assert_eq!(got[0].id, sent.id);
    }
}

#[tokio::test]
async fn sync_replays_exactly_what_was_missed() {
    let server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let mut ws = b.connect_ws().await.unwrap();
    a.send_text(&conv.id, "s1", "seen live").await.unwrap();
    collect_messages(&mut ws, &conv.id, 1, WAIT).await;
    let pos = ws.last_stream_pos();
    assert!(pos > 0);
    ws.close().await.unwrap();

    // While b is away: messages, an edit, a delete, a typing burst (ephemeral).
    let mut aws = a.connect_ws().await.unwrap();
    for i in 0..5 {
        aws.send_message(&conv.id, &format!("missed-{i}"), &format!("missed {i}"))
            .await
            .unwrap();
    }
    aws.send_frame(ClientFrame::Typing {
        conversation_id: conv.id.clone(),
        typing: true,
    })
    .await
    .unwrap();
    a.edit_message(&conv.id, 2, "missed 0, edited")
        .await
        .unwrap();
    a.delete_message(&conv.id, 3, DeleteScope::Everyone)
        .await
        .unwrap();

    let mut ws = b.connect_ws().await.unwrap();
    let (frames, synced) = ws.sync(pos).await.unwrap();
    let kinds: Vec<&str> = frames.iter().map(ServerFrame::type_name).collect();
    assert_eq!(
        kinds,
        vec![
            "message",
            "message",
            "message",
            "message",
            "message",
            "message.updated",
            "message.deleted"
        ],
        "{frames:?}"
    );
    assert!(
        matches!(
            frames.last(),
            Some(ServerFrame::MessageDeleted {
                seq: 3,
                scope: Some(DeleteScope::Everyone),
                ..
            })
        ),
        "{frames:?}"
    );
    let positions: Vec<i64> = frames.iter().map(|f| f.stream_pos().unwrap()).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in stream order: {positions:?}"
    );
    assert!(positions[0] > pos);
    assert_eq!(synced, *positions.last().unwrap());
    let seqs: Vec<i64> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message { message, .. } => Some(message.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![2, 3, 4, 5, 6]);
    // Syncing again from the new position yields nothing.
    let (again, _) = ws.sync(synced).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    // A stranger's sync does not see this conversation.
    let (s, _) = register(&server, "snoop").await;
    let mut sws = s.connect_ws().await.unwrap();
    let (theirs, _) = sws.sync(0).await.unwrap();
    assert!(
        theirs
            .iter()
            .all(|f| !matches!(f, ServerFrame::Message { .. })),
        "{theirs:?}"
    );
}

#[tokio::test]
async fn a_first_sync_from_the_head_is_answered_without_a_replay_and_misses_nothing() {
    let server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    a.send_text(&conv.id, "before", "before b connects")
        .await
        .unwrap();
    let mut ws = b.connect_ws().await.unwrap();
    let head = ws.ready().unwrap().stream_pos;
    // Committed after `ready`, before the first `sync`: it comes live, once, after `synced`.
    a.send_text(&conv.id, "between", "between ready and sync")
        .await
        .unwrap();
    let (replayed, synced) = ws.sync(head).await.unwrap();
    assert!(replayed.is_empty(), "nothing stored is owed: {replayed:?}");
    assert_eq!(synced, head);
    let live = collect_messages(&mut ws, &conv.id, 1, WAIT).await;
    assert_eq!(live[0].body, "between ready and sync");
    let again = ws
        .next_matching(Duration::from_millis(500), |f| {
            matches!(f, ServerFrame::Message { .. })
        })
        .await
        .unwrap();
    assert!(again.is_none(), "delivered twice: {again:?}");
    // A later sync on the same connection queries as always (here: from before both).
    let (both, _) = ws.sync(head - 1).await.unwrap();
    let bodies: Vec<&str> = both
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message { message, .. } => Some(message.body.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, vec!["before b connects", "between ready and sync"]);
}

#[tokio::test]
async fn acked_messages_survive_kill_9() {
    let mut server = TestServer::start().await;
    let (a, _au, _b, _bu, conv) = friends_with_direct(&server).await;
    let mut ws = a.connect_ws().await.unwrap();
    for i in 0..300 {
        ws.send_frame(send_frame(
            &conv.id,
            &format!("k{i}"),
            &format!("durable {i}"),
        ))
        .await
        .unwrap();
    }
    let mut acked = HashSet::new();
    while acked.len() < 300 {
        match ws.next_frame(Duration::from_secs(30)).await.unwrap() {
            Some(ServerFrame::Ack { message, .. }) => {
                acked.insert(message.seq);
            }
            Some(_) => {}
            None => panic!("no ack"),
        }
    }
    // Killed right after the last ack: no shutdown code runs.
    server.kill9();
    server.restart().await;
    // A new HTTP connection pool: the old one holds sockets to the dead process.
    let a = {
        let fresh = server.client();
        fresh.set_tokens(a.access_token().unwrap(), a.refresh_token().unwrap());
        fresh
    };
    let history = a
        .messages(&conv.id, None, Some(0), Some(200))
        .await
        .unwrap();
    let mut seqs: Vec<i64> = history.messages.iter().map(|m| m.seq).collect();
    let more = a
        .messages(&conv.id, None, Some(200), Some(200))
        .await
        .unwrap();
    seqs.extend(more.messages.iter().map(|m| m.seq));
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    // And idempotency survives the restart: the unique key is in the database.
    let again = a
        .send_text(&conv.id, "k0", "retry after crash")
        .await
        .unwrap();
    assert_eq!((again.seq, again.body.as_str()), (1, "durable 0"));
}

#[tokio::test]
async fn typing_is_ephemeral_and_reaches_other_members() {
    let server = TestServer::start().await;
    let (a, au, b, _bu, conv) = friends_with_direct(&server).await;
    let mut bws = b.connect_ws().await.unwrap();
    let start = bws.ready().unwrap().stream_pos;
    let mut aws = a.connect_ws().await.unwrap();
    aws.send_frame(ClientFrame::Typing {
        conversation_id: conv.id.clone(),
        typing: true,
    })
    .await
    .unwrap();
    let t = bws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::Typing { .. }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.stream_pos(), None);
    match t {
        ServerFrame::Typing {
            conversation_id,
            user_id,
            typing,
        } => {
            assert_eq!(
                (conversation_id.as_str(), user_id.as_str(), typing),
                (conv.id.as_str(), au.id.as_str(), true)
            );
        }
        _ => unreachable!(),
    }
    // The typist does not get their own typing event, and it is never stored.
    let own = aws
        .next_matching(Duration::from_millis(300), |f| {
            matches!(f, ServerFrame::Typing { .. })
        })
        .await
        .unwrap();
    assert!(own.is_none());
    let (replayed, _) = bws.sync(start).await.unwrap();
    assert!(
        replayed
            .iter()
            .all(|f| !matches!(f, ServerFrame::Typing { .. }))
    );
}

#[tokio::test]
async fn presence_goes_to_friends_with_last_seen() {
    let server = TestServer::start().await;
    let (a, au, b, bu, _conv) = friends_with_direct(&server).await;
    let (s, _su) = register(&server, "outsider").await;
    let mut bws = b.connect_ws().await.unwrap();
    let mut sws = s.connect_ws().await.unwrap();
    // a comes online with two devices, then leaves with both.
    let a2 = server.client();
    a2.login(&au.username, PASSWORD).await.unwrap();
    let first = a.connect_ws().await.unwrap();
    let online = bws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::Presence { .. }))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(online, ServerFrame::Presence { ref user_id, online: true, .. } if *user_id == au.id),
        "{online:?}"
    );
    assert!(
        b.friends()
            .await
            .unwrap()
            .friends
            .iter()
            .any(|f| f.id == au.id && f.online)
    );
    let second = a2.connect_ws().await.unwrap();
    first.close().await.unwrap();
    // Still online on the second device: no offline event yet.
    let early = bws
        .next_matching(Duration::from_millis(400), |f| {
            matches!(f, ServerFrame::Presence { .. })
        })
        .await
        .unwrap();
    assert!(early.is_none(), "{early:?}");
    second.close().await.unwrap();
    let offline = bws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::Presence { .. }))
        .await
        .unwrap()
        .unwrap();
    match offline {
        ServerFrame::Presence {
            user_id,
            online,
            last_seen_at,
        } => {
            assert_eq!(user_id, au.id);
            assert!(!online);
            assert!(last_seen_at.is_some());
        }
        _ => unreachable!(),
    }
    let seen = b.get_user(&au.id).await.unwrap();
    assert!(!seen.online && seen.last_seen_at.is_some());
    // The outsider saw none of it, and cannot read a's presence.
    let leaked = sws
        .next_matching(Duration::from_millis(200), |f| {
            matches!(f, ServerFrame::Presence { .. })
        })
        .await
        .unwrap();
    assert!(leaked.is_none());
    let public = s.get_user(&au.id).await.unwrap();
    assert!(!public.online && public.last_seen_at.is_none());
    // A block stops presence: b blocks a, a reconnects, b hears nothing.
    b.block(&au.id).await.unwrap();
    let _again = a.connect_ws().await.unwrap();
    let after_block = bws
        .next_matching(Duration::from_millis(400), |f| {
            matches!(f, ServerFrame::Presence { .. })
        })
        .await
        .unwrap();
    assert!(after_block.is_none(), "{after_block:?}");
    let _ = bu;
}

#[tokio::test]
async fn read_receipts_and_membership_events_reach_members() {
    let server = TestServer::start().await;
    let (a, au, b, bu, _conv) = friends_with_direct(&server).await;
    let (c, cu) = register(&server, "cat").await;
    befriend(&a, &au, &c, &cu).await;
    let g = group(&a, "club", &[&bu]).await;
    let mut aws = a.connect_ws().await.unwrap();
    let mut bws = b.connect_ws().await.unwrap();
    let mut cws = c.connect_ws().await.unwrap();
    let m = a.send_text(&g.id, "r1", "read me").await.unwrap();
    bws.send_frame(ClientFrame::Read {
        conversation_id: g.id.clone(),
        seq: m.seq,
    })
    .await
    .unwrap();
    let r = aws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::Read { .. }))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(r, ServerFrame::Read { ref user_id, seq, .. } if *user_id == bu.id && seq == m.seq),
        "{r:?}"
    );

    // c is added: members hear member.added; c gets the conversation and then its messages.
    a.add_members(&g.id, [cu.id.clone()]).await.unwrap();
    let added = bws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::MemberAdded { .. }))
        .await
        .unwrap();
    assert!(
        matches!(added, Some(ServerFrame::MemberAdded { ref user_id, .. }) if *user_id == cu.id)
    );
    let conv_ev = cws
        .next_matching(WAIT, |f| {
            matches!(f, ServerFrame::ConversationUpdated { .. })
        })
        .await
        .unwrap();
    assert!(
        matches!(conv_ev, Some(ServerFrame::ConversationUpdated { ref conversation, .. }) if conversation.id == g.id)
    );

    // Role change.
    a.set_role(&g.id, &bu.id, chatnode_client::protocol::Role::Admin)
        .await
        .unwrap();
    let upd = cws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::MemberUpdated { .. }))
        .await
        .unwrap();
    assert!(
        matches!(upd, Some(ServerFrame::MemberUpdated { ref user_id, role: Some(chatnode_client::protocol::Role::Admin), .. }) if *user_id == bu.id)
    );

    // c is removed: c learns it, then receives nothing more from the group.
    a.remove_member(&g.id, &cu.id).await.unwrap();
    let removed = cws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::MemberRemoved { .. }))
        .await
        .unwrap();
    assert!(
        matches!(removed, Some(ServerFrame::MemberRemoved { ref user_id, .. }) if *user_id == cu.id)
    );
    let pos_after_removal = cws.last_stream_pos();
    a.send_text(&g.id, "after", "c must not see this")
        .await
        .unwrap();
    let got = collect_messages(&mut bws, &g.id, 1, WAIT).await;
    assert!(got.iter().any(|m| m.body == "c must not see this") || !got.is_empty());
    let leaked = cws.next_matching(Duration::from_millis(400), |f| matches!(f, ServerFrame::Message { message, .. } if message.body == "c must not see this")).await.unwrap();
    assert!(leaked.is_none());
    let (replay, _) = cws.sync(pos_after_removal).await.unwrap();
    assert!(
        replay
            .iter()
            .all(|f| !matches!(f, ServerFrame::Message { .. })),
        "{replay:?}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_with_4008() {
    let server = TestServer::start_with(&["--ws-queue", "8"]).await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let mut slow = b.connect_ws().await.unwrap();
    // ~12 MB of messages: more than the socket buffers can hide while `slow` reads nothing.
    // Sent over REST by 8 concurrent senders (a has no socket, so only b can be slow).
    let body = "x".repeat(15_000);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (a, conv, body) = (a.clone(), conv.id.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                a.send_text(&conv, &format!("slow-{t}-{i}"), &body)
                    .await
                    .expect("send is never held up");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The sender was never held up, and the slow one was cut off with 4008.
    let closed = slow.wait_close(Duration::from_secs(30)).await.unwrap();
    assert_eq!(closed.code, Some(4008));
    let metrics = a.metrics().await.unwrap();
    assert!(
        metrics.contains("chatnode_ws_slow_closed_total 1"),
        "{metrics}"
    );
    // It resumes with sync and misses nothing.
    let mut again = b.connect_ws().await.unwrap();
    let (frames, _) = again.sync(0).await.unwrap();
    let n = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Message { .. }))
        .count();
    assert_eq!(n, 800);
}

#[tokio::test]
async fn per_connection_rate_limit_answers_rate_limited() {
    let server = TestServer::start_with(&["--ws-burst", "5", "--ws-rate", "1"]).await;
    let (a, _) = register(&server, "flood").await;
    let mut ws = a.connect_ws().await.unwrap();
    for _ in 0..10 {
        ws.send_frame(ClientFrame::Ping).await.unwrap();
    }
    let mut pongs = 0;
    let mut limited = 0;
    for _ in 0..10 {
        match ws.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::Pong) => pongs += 1,
            Some(ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pongs, 5);
    assert_eq!(limited, 5);
    // A flood that ignores the errors is disconnected with 4029.
    for _ in 0..300 {
        if ws.send_frame(ClientFrame::Ping).await.is_err() {
            break;
        }
    }
    let closed = ws.wait_close(WAIT).await.unwrap();
    assert_eq!(closed.code, Some(4029));
}

#[tokio::test]
async fn logout_and_refresh_token_reuse_close_that_sessions_sockets() {
    let server = TestServer::start().await;
    let (a, au) = register(&server, "sess").await;
    // Session 2 of the same user (another device).
    let other = server.client();
    other.login(&au.username, PASSWORD).await.unwrap();
    let mut ws1 = a.connect_ws().await.unwrap();
    let mut ws2 = other.connect_ws().await.unwrap();

    // A stolen refresh token used twice revokes that session and closes its sockets.
    let stolen = a.refresh_token().unwrap();
    a.refresh().await.unwrap();
    let reuse = server.client().refresh_with(&stolen).await.unwrap_err();
    assert_eq!(reuse.status(), Some(401));
    assert_eq!(ws1.wait_close(WAIT).await.unwrap().code, Some(4001));
    assert_eq!(
        a.me().await.unwrap_err().status(),
        Some(401),
        "the rotated pair dies with the session"
    );
    assert_eq!(a.refresh().await.unwrap_err().status(), Some(401));

    // The other session is untouched until it logs out.
    ws2.send_frame(ClientFrame::Ping).await.unwrap();
    assert!(matches!(
        ws2.next_frame(WAIT).await.unwrap(),
        Some(ServerFrame::Pong)
    ));
    other.logout().await.unwrap();
    assert_eq!(ws2.wait_close(WAIT).await.unwrap().code, Some(4001));
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let mut server = TestServer::start().await;
    let (a, _) = register(&server, "bye").await;
    let mut ws = a.connect_ws().await.unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let s = server.terminate();
        drop(server);
        s
    });
    let closed = ws.wait_close(WAIT).await.unwrap();
    assert_eq!(closed.code, Some(1001));
    let status = status.await.unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn ready_carries_the_user_and_stream_position() {
    let server = TestServer::start().await;
    let (a, au, _b, _bu, conv) = friends_with_direct(&server).await;
    a.send_text(&conv.id, "p", "x").await.unwrap();
    let ws = a.connect_ws().await.unwrap();
    let ready = ws.ready().unwrap();
    assert_eq!(ready.user.id, au.id);
    assert!(ready.user.online);
    assert!(ready.stream_pos >= 1);
    // Unknown ids still error cleanly over the socket.
    let err: ClientError = a
        .connect_ws()
        .await
        .unwrap()
        .send_message("nope", "c", "x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn a_replay_shows_a_message_as_sent_then_its_edits_and_never_deleted_text() {
    let server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let since = b.connect_ws().await.unwrap().ready().unwrap().stream_pos;
    let kept = a.send_text(&conv.id, "k", "first words").await.unwrap();
    let gone = a
        .send_text(&conv.id, "g", "regrettable words")
        .await
        .unwrap();
    a.edit_message(&conv.id, kept.seq, "better words")
        .await
        .unwrap();
    a.delete_message(&conv.id, gone.seq, DeleteScope::Everyone)
        .await
        .unwrap();

    let mut ws = b.connect_ws().await.unwrap();
    let (frames, _) = ws.sync(since).await.unwrap();
    let seen: Vec<(String, i64, String, bool)> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message { message, .. } => Some((
                "message".into(),
                message.seq,
                message.body.clone(),
                message.deleted,
            )),
            ServerFrame::MessageUpdated { message, .. } => Some((
                "updated".into(),
                message.seq,
                message.body.clone(),
                message.deleted,
            )),
            ServerFrame::MessageDeleted { seq, .. } => {
                Some(("deleted".into(), *seq, String::new(), true))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("message".into(), kept.seq, "first words".into(), false),
            // Deleted for everyone: its event replays it as deleted, without its text.
            ("message".into(), gone.seq, String::new(), true),
            ("updated".into(), kept.seq, "better words".into(), false),
            ("deleted".into(), gone.seq, String::new(), true),
        ]
    );
    assert!(
        !format!("{frames:?}").contains("regrettable"),
        "deleted text replayed: {frames:?}"
    );
}
