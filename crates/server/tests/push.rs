//! Web Push against a test push service on loopback (playing the browser vendor's service):
//! it verifies each request's VAPID JWT and decrypts the payload with the subscription's
//! private key, exactly as a browser would.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatnode_client::Method;
use chatnode_client::protocol::{ClientFrame, PushPayload, ServerFrame};
use common::push_service::*;
use common::*;
use serde_json::json;

async fn push_server() -> TestServer {
    TestServer::start_with(&["--push-delay-ms", "300", "--push-timeout-secs", "2"]).await
}

/// Lets the push delay (300 ms) pass with margin, to check that nothing was sent.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn an_offline_recipient_gets_exactly_one_push_with_the_right_content() {
    let server = push_server().await;
    let (svc, base) = Service::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let browser = Browser::new(&base, "b1");
    browser.subscribe(&b).await;
    let key = server_key(&a).await;
    let mut aws = a.connect_ws().await.unwrap();
    // Typing and presence never push.
    aws.send_frame(ClientFrame::Typing {
        conversation_id: conv.id.clone(),
        typing: true,
    })
    .await
    .unwrap();
    aws.send_message(&conv.id, "p1", "hello Bob").await.unwrap();
    svc.wait_for("b1", 1).await;
    settle().await;
    assert_eq!(svc.count("b1"), 1, "exactly one push");
    let got = svc.received.lock().unwrap().remove("b1").unwrap();
    match browser.open(&got[0], &key) {
        PushPayload::Message {
            conversation_id,
            seq,
            group,
            sender,
            body,
            url,
            ..
        } => {
            assert_eq!(
                (conversation_id.as_str(), seq, group),
                (conv.id.as_str(), 1, None)
            );
            assert_eq!(
                (sender.as_str(), body.as_deref()),
                ("ann", Some("hello Bob"))
            );
            assert_eq!(url, format!("/c/{}", conv.id));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(got[0].headers["topic"], conv.id.replace('-', ""));
    assert_eq!(got[0].headers["urgency"], "high");
    // The decision queue drained; the metrics say what happened.
    let metrics = server.client().metrics().await.unwrap();
    for line in [
        "chatnode_push_sent_total 1",
        "chatnode_push_waiting 0",
        "chatnode_push_dropped_total 0",
        "chatnode_push_queued 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn many_messages_wait_for_their_push_decision_in_one_queue() {
    // A long delay: every message is still waiting when the metrics are read, and none has
    // a task or timer of its own (the queue is one FIFO on the notifier's task).
    let server = TestServer::start_with(&["--push-delay-ms", "2000"]).await;
    let (svc, base) = Service::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    Browser::new(&base, "many").subscribe(&b).await;
    let mut aws = a.connect_ws().await.unwrap();
    for i in 0..50 {
        aws.send_message(&conv.id, &format!("m{i}"), "hi")
            .await
            .unwrap();
    }
    let metrics = server.client().metrics().await.unwrap();
    assert!(
        metrics.lines().any(|l| l == "chatnode_push_waiting 50"),
        "{metrics}"
    );
    // Then each is decided and pushed (one topic per conversation: the service keeps the
    // newest, but every decision sends).
    svc.wait_for("many", 50).await;
}

#[tokio::test]
async fn a_recipient_viewing_the_conversation_gets_none_being_online_is_not_enough() {
    let server = push_server().await;
    let (svc, base) = Service::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    Browser::new(&base, "b1").subscribe(&b).await;
    let mut bws = b.connect_ws().await.unwrap();
    bws.send_frame(ClientFrame::View {
        conversation_id: Some(conv.id.clone()),
    })
    .await
    .unwrap();
    bws.send_frame(ClientFrame::Ping).await.unwrap();
    bws.next_matching(WAIT, |f| matches!(f, ServerFrame::Pong))
        .await
        .unwrap()
        .unwrap();
    a.send_text(&conv.id, "v1", "you are looking at this")
        .await
        .unwrap();
    settle().await;
    assert_eq!(svc.count("b1"), 0, "in view: no push");
    // Online, but the app shows something else: push.
    bws.send_frame(ClientFrame::View {
        conversation_id: None,
    })
    .await
    .unwrap();
    bws.send_frame(ClientFrame::Ping).await.unwrap();
    bws.next_matching(WAIT, |f| matches!(f, ServerFrame::Pong))
        .await
        .unwrap()
        .unwrap();
    a.send_text(&conv.id, "v2", "now you are not")
        .await
        .unwrap();
    svc.wait_for("b1", 1).await;
}

#[tokio::test]
async fn a_muted_conversation_gets_none_and_previews_can_be_hidden() {
    let server = push_server().await;
    let (svc, base) = Service::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let browser = Browser::new(&base, "b1");
    browser.subscribe(&b).await;
    let key = server_key(&a).await;
    let (status, v) = b
        .raw(
            Method::PUT,
            &format!("/conversations/{}/mute", conv.id),
            Some(json!({})),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{v}");
    assert!(v["muted_until"].as_str().unwrap().starts_with("9999"));
    assert!(
        b.conversation(&conv.id)
            .await
            .unwrap()
            .muted_until
            .is_some()
    );
    a.send_text(&conv.id, "m1", "shh").await.unwrap();
    settle().await;
    assert_eq!(svc.count("b1"), 0, "muted: no push");
    let (status, _) = b
        .raw(
            Method::DELETE,
            &format!("/conversations/{}/mute", conv.id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    // Previews off: the push says who, not what.
    let (status, me) = b
        .raw(
            Method::PATCH,
            "/users/me",
            Some(json!({"notification_previews": false})),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, me["notification_previews"].as_bool()),
        (200, Some(false))
    );
    a.send_text(&conv.id, "m2", "secret text").await.unwrap();
    svc.wait_for("b1", 1).await;
    let got = svc.received.lock().unwrap().remove("b1").unwrap();
    match browser.open(&got[0], &key) {
        PushPayload::Message { body, sender, .. } => {
            assert_eq!((body, sender.as_str()), (None, "ann"))
        }
        other => panic!("{other:?}"),
    }
    // Mute for a while; bad input is refused.
    let until = "2999-01-01T00:00:00Z";
    let (status, v) = b
        .raw(
            Method::PUT,
            &format!("/conversations/{}/mute", conv.id),
            Some(json!({"until": until})),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, v["muted_until"].as_str()),
        (200, Some("2999-01-01T00:00:00Z"))
    );
    for bad in [
        json!({"until": "yesterday"}),
        json!({"until": "2001-01-01T00:00:00Z"}),
    ] {
        let (status, _) = b
            .raw(
                Method::PUT,
                &format!("/conversations/{}/mute", conv.id),
                Some(bad),
            )
            .await
            .unwrap();
        assert_eq!(status, 400);
    }
    let (s, _) = register(&server, "stranger").await;
    let (status, _) = s
        .raw(
            Method::PUT,
            &format!("/conversations/{}/mute", conv.id),
            Some(json!({})),
        )
        .await
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn reading_on_another_device_sends_the_clearing_update() {
    let server = push_server().await;
    let (svc, base) = Service::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let browser = Browser::new(&base, "b1");
    browser.subscribe(&b).await;
    let key = server_key(&a).await;
    a.send_text(&conv.id, "r1", "read me elsewhere")
        .await
        .unwrap();
    svc.wait_for("b1", 1).await;
    // Bob reads it on his laptop: the phone's notification is cleared.
    b.mark_read(&conv.id, 1).await.unwrap();
    svc.wait_for("b1", 2).await;
    let got = svc.received.lock().unwrap().remove("b1").unwrap();
    assert_eq!(
        got[0].headers["topic"], got[1].headers["topic"],
        "same topic replaces or clears"
    );
    match browser.open(&got[1], &key) {
        PushPayload::Clear {
            conversation_id,
            seq,
        } => assert_eq!((conversation_id, seq), (conv.id.clone(), 1)),
        other => panic!("{other:?}"),
    }
    // A message read before the delay passed is never pushed at all.
    a.send_text(&conv.id, "r2", "quick").await.unwrap();
    b.mark_read(&conv.id, 2).await.unwrap();
    settle().await;
    assert_eq!(svc.count("b1"), 0);
}

#[tokio::test]
async fn gone_subscriptions_are_removed_and_429_is_retried() {
    let server = push_server().await;
    let (svc, base) = Service::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    svc.modes.lock().unwrap().insert("gone".into(), Mode::Gone);
    svc.modes
        .lock()
        .unwrap()
        .insert("busy".into(), Mode::TooManyOnce);
    Browser::new(&base, "gone").subscribe(&b).await;
    Browser::new(&base, "busy").subscribe(&b).await;
    assert_eq!(
        b.raw(Method::GET, "/push/subscriptions", None)
            .await
            .unwrap()
            .1["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    a.send_text(&conv.id, "g1", "anyone there?").await.unwrap();
    svc.wait_for("gone", 1).await;
    svc.wait_for("busy", 2).await;
    let statuses: Vec<u16> = svc.received.lock().unwrap()["busy"]
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![429, 201], "retried after 429");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, v) = b
            .raw(Method::GET, "/push/subscriptions", None)
            .await
            .unwrap();
        let subs = v["subscriptions"].as_array().unwrap().clone();
        if subs.len() == 1 {
            assert!(subs[0]["endpoint"].as_str().unwrap().ends_with("/busy"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "410 did not remove the subscription: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settle().await;
    assert_eq!(svc.count("gone"), 1, "a gone endpoint is not retried");
}

#[tokio::test]
async fn a_hanging_push_service_does_not_delay_chat_delivery() {
    let server = push_server().await;
    let (svc, base) = Service::start().await;
    let (a, au, b, bu, _conv) = friends_with_direct(&server).await;
    let (c, cu) = register(&server, "carl").await;
    befriend(&a, &au, &c, &cu).await;
    let g = group(&a, "hang", &[&bu, &cu]).await;
    svc.modes.lock().unwrap().insert("hang".into(), Mode::Hang);
    Browser::new(&base, "hang").subscribe(&b).await;
    let mut cws = c.connect_ws().await.unwrap();
    let mut aws = a.connect_ws().await.unwrap();
    for round in 0..3 {
        for i in 0..10 {
            aws.send_message(&g.id, &format!("h{round}-{i}"), "still flowing")
                .await
                .unwrap();
        }
        let mut got = 0;
        while got < 10 {
            match cws.next_frame(WAIT).await.unwrap() {
                Some(ServerFrame::Message { .. }) => got += 1,
                Some(_) => {}
                None => panic!(
                    "chat delivery stalled behind the push service (round {round}, {got} of 10)"
                ),
            }
        }
        // Let pushes for this round start and hang.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert!(
        svc.count("hang") >= 1,
        "the hanging push service was really being called"
    );
    let _ = b;
}

#[tokio::test]
async fn subscriptions_are_validated() {
    let server = push_server().await;
    let (a, _) = register(&server, "val").await;
    for bad in [
        json!({"endpoint": "http://push.example.com/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}),
        json!({"endpoint": "https://push.example.com/x", "keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}),
        json!({"endpoint": "not a url", "keys": {"p256dh": "x", "auth": "y"}}),
        json!({"endpoint": "https://push.example.com/x"}),
    ] {
        let (status, v) = a
            .raw(Method::POST, "/push/subscriptions", Some(bad))
            .await
            .unwrap();
        assert_eq!(status, 400, "{v}");
    }
    let (status, _) = a
        .raw(
            Method::DELETE,
            "/push/subscriptions",
            Some(json!({"endpoint": "https://nope.example/x"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 404);
    // The VAPID key is stable across restarts (kept in the data dir, 0600).
    let key = server_key(&a).await;
    assert_eq!(URL_SAFE_NO_PAD.decode(&key).unwrap().len(), 65);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.data_dir().join("vapid_private_key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// How long after its `--push-delay-ms` (300 ms here) the push for a message sent at `sent`
/// reached the push service.
fn lag_after_delay(sent: Instant, arrived: Instant) -> Duration {
    arrived.saturating_duration_since(sent + Duration::from_millis(300))
}

#[tokio::test]
async fn retry_after_is_honoured_and_waiting_for_it_holds_no_worker() {
    // One worker: a sender that slept through a Retry-After in its worker would stall
    // everyone else's pushes for that long.
    let server = TestServer::start_with(&[
        "--push-delay-ms",
        "300",
        "--push-timeout-secs",
        "2",
        "--push-concurrency",
        "1",
    ])
    .await;
    let (svc, base) = Service::start().await;
    let (a, au, b, _bu, conv) = friends_with_direct(&server).await;
    let (c, cu) = register(&server, "carl").await;
    befriend(&a, &au, &c, &cu).await;
    let to_carl = a.open_direct(&cu.id).await.unwrap();
    {
        let mut modes = svc.modes.lock().unwrap();
        modes.insert(
            "secs".into(),
            Mode::RetryAfterOnce(429, RetryAfter::Secs(3)),
        );
        modes.insert(
            "date".into(),
            Mode::RetryAfterOnce(503, RetryAfter::DateIn(4)),
        );
        // Longer than the sender's patience: given up, not retried.
        modes.insert(
            "long".into(),
            Mode::RetryAfterOnce(429, RetryAfter::Secs(3600)),
        );
    }
    for id in ["secs", "date", "long"] {
        Browser::new(&base, id).subscribe(&b).await;
    }
    Browser::new(&base, "carl").subscribe(&c).await;
    a.send_text(&conv.id, "ra1", "later, please").await.unwrap();
    for id in ["secs", "date", "long"] {
        svc.wait_for(id, 1).await;
    }
    // While those wait to be retried, the only worker is free for Carl's push.
    let sent = Instant::now();
    a.send_text(&to_carl.id, "ra2", "meanwhile").await.unwrap();
    svc.wait_for("carl", 1).await;
    let lag = lag_after_delay(sent, svc.arrivals("carl")[0]);
    assert!(
        lag < Duration::from_secs(1),
        "a push waited {lag:?} behind retries that were waiting for their Retry-After"
    );
    svc.wait_for("secs", 2).await;
    svc.wait_for("date", 2).await;
    let gap = |id: &str| {
        let at = svc.arrivals(id);
        at[1] - at[0]
    };
    assert!(
        gap("secs") >= Duration::from_secs(3),
        "Retry-After: 3 retried after {:?}",
        gap("secs")
    );
    // An HTTP-date has whole seconds: 4 s from the answer, less up to 1 s of rounding.
    assert!(
        gap("date") >= Duration::from_millis(2900),
        "Retry-After: <HTTP-date in 4 s> retried after {:?}",
        gap("date")
    );
    settle().await;
    assert_eq!(
        svc.count("long"),
        1,
        "a Retry-After past the sender's patience is given up, not retried early"
    );
}

#[tokio::test]
async fn a_hanging_push_service_does_not_delay_pushes_to_another_one() {
    // Default concurrency (16 workers); the hanging origin gets 50 requests.
    let server = push_server().await;
    let (hung, hung_base) = Service::start().await;
    let (healthy, healthy_base) = Service::start().await;
    let (a, au, b, _bu, to_bob) = friends_with_direct(&server).await;
    let (c, cu) = register(&server, "carl").await;
    befriend(&a, &au, &c, &cu).await;
    let to_carl = a.open_direct(&cu.id).await.unwrap();
    for i in 0..10 {
        let id = format!("h{i}");
        hung.modes.lock().unwrap().insert(id.clone(), Mode::Hang);
        Browser::new(&hung_base, &id).subscribe(&b).await;
    }
    Browser::new(&healthy_base, "carl").subscribe(&c).await;
    for i in 0..5 {
        a.send_text(&to_bob.id, &format!("hang{i}"), "into the void")
            .await
            .unwrap();
    }
    let sent = Instant::now();
    a.send_text(&to_carl.id, "healthy", "are you there?")
        .await
        .unwrap();
    healthy
        .wait_for_within("carl", 1, Duration::from_secs(60))
        .await;
    let lag = lag_after_delay(sent, healthy.arrivals("carl")[0]);
    let hanging: usize = (0..10).map(|i| hung.count(&format!("h{i}"))).sum();
    println!("push to a healthy origin left {lag:?} after its delay ({hanging} requests hanging)");
    assert!(
        hanging >= 1,
        "the hanging push service was really being called"
    );
    assert!(
        lag < Duration::from_secs(1),
        "a push to a healthy push service waited {lag:?} behind a hanging one"
    );
}

#[tokio::test]
async fn an_eleventh_subscription_replaces_the_oldest() {
    let server = push_server().await;
    let (svc, base) = Service::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let browsers: Vec<Browser> = (0..11)
        .map(|i| Browser::new(&base, &format!("s{i}")))
        .collect();
    let listed = || async {
        let (_, v) = b
            .raw(Method::GET, "/push/subscriptions", None)
            .await
            .unwrap();
        v["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let e = s["endpoint"].as_str().unwrap();
                e.rsplit('/').next().unwrap().to_owned()
            })
            .collect::<Vec<_>>()
    };
    for browser in &browsers[..10] {
        browser.subscribe(&b).await;
    }
    assert_eq!(listed().await.len(), 10);
    // A browser subscribing again is the same subscription, renewed: nothing is dropped.
    browsers[0].subscribe(&b).await;
    let now = listed().await;
    assert_eq!(now.len(), 10, "{now:?}");
    assert!(now.contains(&"s0".to_owned()));
    // The eleventh drops the oldest: s1 (s0 was renewed after it).
    browsers[10].subscribe(&b).await;
    let now = listed().await;
    assert_eq!(now.len(), 10, "{now:?}");
    assert!(!now.contains(&"s1".to_owned()), "{now:?}");
    assert!(now.contains(&"s0".to_owned()) && now.contains(&"s10".to_owned()));
    a.send_text(&conv.id, "cap", "to every kept browser")
        .await
        .unwrap();
    for i in (0..11).filter(|i| *i != 1) {
        svc.wait_for(&format!("s{i}"), 1).await;
    }
    settle().await;
    assert_eq!(svc.count("s1"), 0, "the dropped subscription gets no push");
}

#[tokio::test]
async fn an_account_subscribed_at_many_hanging_services_cannot_take_every_worker() {
    // 16 workers, at most 4 per origin: five hanging origins could hold all of them.
    let server =
        TestServer::start_with(&["--push-delay-ms", "300", "--push-timeout-secs", "3"]).await;
    let mut hung = Vec::new();
    for _ in 0..5 {
        hung.push(Service::start().await);
    }
    let (healthy, healthy_base) = Service::start().await;
    let (a, au, b, _bu, to_bob) = friends_with_direct(&server).await;
    let (c, cu) = register(&server, "carl").await;
    befriend(&a, &au, &c, &cu).await;
    let to_carl = a.open_direct(&cu.id).await.unwrap();
    // Bob's ten subscriptions, two at each of five hanging push services.
    for i in 0..10 {
        let (svc, base) = &hung[i % 5];
        let id = format!("h{i}");
        svc.modes.lock().unwrap().insert(id.clone(), Mode::Hang);
        Browser::new(base, &id).subscribe(&b).await;
    }
    Browser::new(&healthy_base, "carl").subscribe(&c).await;
    for i in 0..5 {
        a.send_text(&to_bob.id, &format!("many{i}"), "into the void")
            .await
            .unwrap();
    }
    let hanging = || -> usize {
        hung.iter()
            .map(|(svc, _)| (0..10).map(|i| svc.count(&format!("h{i}"))).sum::<usize>())
            .sum()
    };
    // The first wave (every worker) times out and the next starts: by then the sender has
    // seen those services go unanswered.
    let deadline = Instant::now() + Duration::from_secs(15);
    while hanging() <= 16 {
        assert!(Instant::now() < deadline, "{} requests", hanging());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = Instant::now();
    a.send_text(&to_carl.id, "healthy", "are you there?")
        .await
        .unwrap();
    healthy
        .wait_for_within("carl", 1, Duration::from_secs(30))
        .await;
    let lag = lag_after_delay(sent, healthy.arrivals("carl")[0]);
    println!(
        "push to a healthy origin left {lag:?} after its delay ({} requests to 5 hanging origins)",
        hanging()
    );
    assert!(
        lag < Duration::from_secs(1),
        "a push to a healthy push service waited {lag:?} behind five hanging ones"
    );
}
