//! Tests that would catch a wrong design of stream positions in a cluster (three nodes, one
//! PostgreSQL schema, a private NATS): many senders commit concurrently on every node, while
//! devices disconnect and resume on random nodes from random earlier tokens. Each resumed
//! connection must receive exactly the events addressed to its user after its token, once
//! each, in stream order (and `seq` order within a conversation), none skipped. And a node
//! frozen (SIGSTOP) in the middle of its traffic must not stop the others' sends from being
//! acked; killed afterwards, it loses nothing acked, and no `sync` skips or repeats.
//! Needs `CHATNODE_TEST_PG` and nats-server; SKIPPED otherwise.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use chatnode_client::protocol::ServerFrame;
use chatnode_client::{Client, WsConnection};
use common::cluster::*;
use common::*;
use rand::Rng;
use rand::seq::IndexedRandom;

/// A durable event as a device received it: (stream_pos, conversation, seq of a message).
type Seen = (i64, Option<String>, Option<i64>);

fn seen(f: &ServerFrame) -> Option<Seen> {
    let pos = f.stream_pos()?;
    Some(match f {
        ServerFrame::Message { message, .. } => (
            pos,
            Some(message.conversation_id.clone()),
            Some(message.seq),
        ),
        _ => (pos, None, None),
    })
}

/// Everything addressed to a user, from the start: one `sync(0)` once the traffic stopped.
async fn truth(node: &TestServer, c: &Client) -> Vec<Seen> {
    let mut ws = on(node, c).connect_ws().await.unwrap();
    let (frames, _) = ws.sync_timeout(0, Duration::from_secs(30)).await.unwrap();
    frames.iter().filter_map(seen).collect()
}

/// One device session: connect to `node`, resume from `since`, keep reading live for a while.
async fn session(node: &TestServer, c: &Client, since: i64, live: Duration) -> Vec<Seen> {
    let mut ws: WsConnection = match on(node, c).connect_ws().await {
        Ok(ws) => ws,
        Err(_) => return Vec::new(),
    };
    let mut got: Vec<Seen> = Vec::new();
    let Ok((frames, _)) = ws.sync_timeout(since, Duration::from_secs(30)).await else {
        return got;
    };
    got.extend(frames.iter().filter_map(seen));
    let until = Instant::now() + live;
    while Instant::now() < until {
        match ws.next_frame(until - Instant::now()).await {
            Ok(Some(f)) => got.extend(seen(&f)),
            _ => break,
        }
    }
    got
}

/// What a session received must be exactly the truth after its token, up to the last
/// position it received: strictly increasing, nothing missing, nothing extra.
fn check(who: &str, since: i64, got: &[Seen], truth: &[Seen]) {
    let Some(last) = got.last().map(|s| s.0) else {
        return;
    };
    let want: Vec<&Seen> = truth
        .iter()
        .filter(|s| s.0 > since && s.0 <= last)
        .collect();
    let got_refs: Vec<&Seen> = got.iter().collect();
    if got_refs != want {
        let g: Vec<i64> = got.iter().map(|s| s.0).collect();
        let w: Vec<i64> = want.iter().map(|s| s.0).collect();
        panic!("{who} from {since}: got {g:?}\nwanted {w:?}");
    }
    // Within a conversation, messages in seq order.
    let mut last_seq: HashMap<&str, i64> = HashMap::new();
    for (_, conv, seq) in got {
        if let (Some(c), Some(s)) = (conv, seq) {
            let prev = last_seq.insert(c.as_str(), *s).unwrap_or(0);
            assert!(*s > prev, "{who}: seq {s} after {prev} in {c}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resumed_devices_get_exactly_the_committed_events_once() {
    let Some(c) = cluster("resumed_devices_get_exactly_the_committed_events_once").await else {
        return;
    };
    let c = Arc::new(c);
    // Six people: one group of all, and three direct chats.
    let mut people = Vec::new();
    for i in 0..6 {
        people.push(register(&c.nodes[i % 3], &format!("p{i}")).await);
    }
    for i in 0..6 {
        for j in (i + 1)..6 {
            befriend(&people[i].0, &people[i].1, &people[j].0, &people[j].1).await;
        }
    }
    let others: Vec<&chatnode_client::protocol::User> = people[1..].iter().map(|p| &p.1).collect();
    let g = group(&people[0].0, "all", &others).await;
    let mut convs_of: Vec<Vec<String>> = vec![vec![g.id.clone()]; 6];
    for (a, b) in [(0, 1), (2, 3), (4, 5)] {
        let d = people[a].0.open_direct(&people[b].1.id).await.unwrap();
        convs_of[a].push(d.id.clone());
        convs_of[b].push(d.id);
    }
    let people = Arc::new(people);
    let convs_of = Arc::new(convs_of);

    // Senders: every person, on random nodes, concurrently.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut senders = Vec::new();
    for p in 0..6 {
        let (c, people, convs_of) = (c.clone(), people.clone(), convs_of.clone());
        senders.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let (node, conv) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(0..3),
                        convs_of[p].choose(&mut rng).unwrap().clone(),
                    )
                };
                let client = on(&c.nodes[node], &people[p].0);
                client
                    .send_text(&conv, &format!("m{p}-{n}"), &format!("from {p}: {n}"))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        }));
    }
    // Devices: every person, resuming on random nodes from random tokens they had.
    let mut devices = Vec::new();
    for p in 0..6 {
        let (c, people) = (c.clone(), people.clone());
        devices.push(tokio::spawn(async move {
            let mut tokens: Vec<i64> = vec![0];
            let mut sessions: Vec<(i64, Vec<Seen>)> = Vec::new();
            while Instant::now() < deadline {
                let (node, since, live) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(0..3),
                        *tokens.choose(&mut rng).unwrap(),
                        Duration::from_millis(rng.random_range(50..600)),
                    )
                };
                let got = session(&c.nodes[node], &people[p].0, since, live).await;
                if let Some(last) = got.last() {
                    tokens.push(last.0);
                }
                sessions.push((since, got));
            }
            sessions
        }));
    }
    let mut sent = 0;
    for s in senders {
        sent += s.await.unwrap();
    }
    let mut all_sessions = Vec::new();
    for d in devices {
        all_sessions.push(d.await.unwrap());
    }
    assert!(sent > 100, "only {sent} messages sent");
    let mut checked = 0;
    for (p, sessions) in all_sessions.iter().enumerate() {
        let t = truth(&c.nodes[p % 3], &people[p].0).await;
        // The truth itself is in order with no repeats.
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        for (since, got) in sessions {
            check(&format!("person {p}"), *since, got, &t);
            checked += got.len();
        }
    }
    assert!(
        checked > 1000,
        "too little was received to judge: {checked}"
    );
    println!("{sent} messages sent; {checked} events received and checked");
}

/// A batch of node 2 inside its `batch-hold` wait (only the frozen-node test arms it).
const HOLDING: &str = "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()
     AND state = 'active' AND query LIKE '%chatnode failpoint batch-hold%'";
/// That batch's transaction open with its writes, its node not going on.
const FROZEN_OPEN: &str = "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()
     AND state = 'idle in transaction' AND backend_xid IS NOT NULL
     AND query LIKE '%chatnode failpoint batch-hold%'";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_node_does_not_stop_the_others_and_loses_nothing_acked() {
    let Some(mut c) = cluster("a_frozen_node_does_not_stop_the_others").await else {
        return;
    };
    let (a, au) = register(&c.nodes[0], "a").await;
    let (b, bu) = register(&c.nodes[1], "b").await;
    let (f, fu) = register(&c.nodes[2], "f").await;
    befriend(&a, &au, &b, &bu).await;
    befriend(&a, &au, &f, &fu).await;
    let ab = a.open_direct(&bu.id).await.unwrap();
    let af = a.open_direct(&fu.id).await.unwrap();
    // A listener on node 1 for everything of a's.
    let mut listener = on(&c.nodes[1], &a).connect_ws().await.unwrap();
    let since = listener.last_stream_pos();

    // Node 2 holds each batch transaction open for half a second before its commit
    // (failpoint `batch-hold`), so it can be frozen while it holds one, with its row locks.
    c.nodes[2].set_envs(&[("CHATNODE_FAILPOINTS", "batch-hold=always")]);
    c.nodes[2].restart().await;
    let f_node2 = on(&c.nodes[2], &f);
    let af_id = af.id.clone();
    let acks = Arc::new(AtomicUsize::new(0));
    let counted = acks.clone();
    let busy = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut ws = f_node2.connect_ws().await.unwrap();
        for i in 0..100_000 {
            match tokio::time::timeout(
                Duration::from_secs(3),
                ws.send_message(&af_id, &format!("f{i}"), &format!("frozen side {i}")),
            )
            .await
            {
                Ok(Ok(m)) => {
                    acked.push(m.body);
                    counted.fetch_add(1, SeqCst);
                }
                _ => break,
            }
        }
        acked
    });
    // Once node 2 has acked some, freeze it while one of its batches is inside the hold, and
    // check in PostgreSQL that it is frozen with the transaction open (its writes done, not
    // committed); if the batch committed in between, let it go on and try again.
    let db = sqlx::PgPool::connect(&c.nodes[0].database_url())
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.load(SeqCst) < 2 {
        assert!(Instant::now() < deadline, "node 2 acked nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let frozen = c.nodes[2].pid();
    let signal = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &frozen.to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    loop {
        assert!(
            Instant::now() < deadline,
            "node 2 was never frozen inside an open batch transaction"
        );
        if count(HOLDING).await == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        signal("-STOP");
        // The sleep ends in PostgreSQL; the stopped node never sends its COMMIT.
        tokio::time::sleep(Duration::from_millis(700)).await;
        if count(FROZEN_OPEN).await == 1 {
            break;
        }
        signal("-CONT");
    }
    // Sends on the other nodes are acked promptly meanwhile, the frozen transaction still open.
    let mut acked_ab = Vec::new();
    for i in 0..30 {
        let t = Instant::now();
        let m = on(&c.nodes[i % 2], &a)
            .send_text(&ab.id, &format!("ab{i}"), &format!("while frozen {i}"))
            .await
            .unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "send {i} took {:?}",
            t.elapsed()
        );
        acked_ab.push(m.body);
    }
    assert_eq!(
        count(FROZEN_OPEN).await,
        1,
        "the frozen transaction ended early"
    );
    db.close().await;
    // Then the frozen node is killed for good (its open transaction aborts) and restarted.
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &frozen.to_string()])
            .status()
            .unwrap()
            .success()
    );
    c.nodes[2].kill9();
    let acked_f = busy.await.unwrap();
    assert!(!acked_f.is_empty(), "node 2 acked nothing before it froze");
    c.nodes[2].set_envs(&[]);
    c.nodes[2].restart().await;

    // Nothing acked is lost; the live listener and a fresh sync agree, once each, in order.
    let t = truth(&c.nodes[0], &a).await;
    let mut live: Vec<Seen> = Vec::new();
    let quiet = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet {
        match listener.next_frame(quiet - Instant::now()).await {
            Ok(Some(f)) => live.extend(seen(&f)),
            _ => break,
        }
    }
    check("the listener", since, &live, &t);
    let page = a.messages(&af.id, None, Some(0), Some(200)).await.unwrap();
    let mut bodies: Vec<String> = page.messages.into_iter().map(|m| m.body).collect();
    let mut after = bodies.len();
    while after.is_multiple_of(200) && after > 0 {
        let more = a
            .messages(&af.id, None, Some(after as i64), Some(200))
            .await
            .unwrap();
        if more.messages.is_empty() {
            break;
        }
        after += more.messages.len();
        bodies.extend(more.messages.into_iter().map(|m| m.body));
    }
    for m in &acked_f {
        assert!(
            bodies.contains(m),
            "acked on the frozen node, then lost: {m}"
        );
    }
    let ab_page = a.messages(&ab.id, None, Some(0), Some(200)).await.unwrap();
    let ab_bodies: Vec<String> = ab_page.messages.into_iter().map(|m| m.body).collect();
    for m in &acked_ab {
        assert!(ab_bodies.contains(m), "{m} lost");
    }
    // Positions are dense: no hole where the aborted transaction was.
    let all: BTreeMap<i64, ()> = t.iter().map(|s| (s.0, ())).collect();
    assert_eq!(all.len(), t.len());
}
