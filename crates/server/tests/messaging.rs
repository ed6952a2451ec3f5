//! Reactions, mentions and search (contract additions of 2026-12-07), against the real
//! server over HTTP and WebSocket.

mod common;

use std::time::Duration;

use chatnode_client::Method;
use chatnode_client::protocol::{ErrorCode, Role, ServerFrame};
use common::*;

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn reactions_are_idempotent_counted_live_and_replayed() {
    let server = TestServer::start().await;
    let (a, au, b, bu, conv) = friends_with_direct(&server).await;
    let m = a.send_text(&conv.id, "r1", "react to me").await.unwrap();
    assert!(m.reactions.is_empty());
    let mut bws = b.connect_ws().await.unwrap();
    let since = bws.last_stream_pos();

    a.react(&conv.id, m.seq, "👍").await.unwrap();
    a.react(&conv.id, m.seq, "👍").await.unwrap(); // idempotent
    b.react(&conv.id, m.seq, "👍").await.unwrap();
    b.react(&conv.id, m.seq, "❤️").await.unwrap();

    // Live to members, with stream positions.
    let f = bws
        .next_matching(T, |f| matches!(f, ServerFrame::Reaction { .. }))
        .await
        .unwrap()
        .expect("reaction event");
    match f {
        ServerFrame::Reaction {
            conversation_id,
            seq,
            user_id,
            emoji,
            added,
            stream_pos,
        } => {
            assert_eq!(
                (
                    conversation_id.as_str(),
                    seq,
                    user_id.as_str(),
                    emoji.as_str(),
                    added
                ),
                (conv.id.as_str(), m.seq, au.id.as_str(), "👍", true)
            );
            assert!(stream_pos.is_some());
        }
        _ => unreachable!(),
    }

    // Counts, `me` per caller, emoji in the order first used.
    let page = a.messages(&conv.id, None, None, None).await.unwrap();
    let got = &page.messages[0].reactions;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].emoji.as_str(), got[0].count, got[0].me),
        ("👍", 2, true)
    );
    assert_eq!(
        (got[1].emoji.as_str(), got[1].count, got[1].me),
        ("❤️", 1, false)
    );
    let page = b.messages(&conv.id, None, None, None).await.unwrap();
    assert!(page.messages[0].reactions[1].me);

    // Who reacted.
    let who = a.reactors(&conv.id, m.seq).await.unwrap();
    assert_eq!(who.reactions[0].users.len(), 2);
    assert_eq!(who.reactions[1].users[0].id, bu.id);

    // Taking back twice is fine; the event says added: false.
    a.unreact(&conv.id, m.seq, "👍").await.unwrap();
    a.unreact(&conv.id, m.seq, "👍").await.unwrap();
    let page = a.messages(&conv.id, None, None, None).await.unwrap();
    assert_eq!(page.messages[0].reactions[0].count, 1);
    assert!(!page.messages[0].reactions[0].me);

    // `sync` replays the durable events: 3 adds and 1 removal (the repeats wrote nothing).
    let mut bws2 = b.connect_ws().await.unwrap();
    let (frames, _) = bws2.sync(since).await.unwrap();
    let reactions: Vec<(String, bool)> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Reaction { emoji, added, .. } => Some((emoji.clone(), *added)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reactions,
        vec![
            ("👍".to_string(), true),
            ("👍".to_string(), true),
            ("❤️".to_string(), true),
            ("👍".to_string(), false)
        ]
    );
}

#[tokio::test]
async fn reactions_are_checked() {
    let server = TestServer::start().await;
    let (a, _au, _b, _bu, conv) = friends_with_direct(&server).await;
    let (outsider, _) = register(&server, "out").await;
    let m = a.send_text(&conv.id, "r1", "hi").await.unwrap();
    let path = |e: &str| {
        format!(
            "/conversations/{}/messages/{}/reactions/{e}",
            conv.id, m.seq
        )
    };

    for bad in ["a", "ok", "%F0%9F%91%8D%F0%9F%91%8D", "1"] {
        let (status, body) = a.raw(Method::PUT, &path(bad), None).await.unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(error_code(&body), Some(ErrorCode::InvalidEmoji), "{bad}");
    }
    // Percent-encoded emoji work.
    let (status, _) = a
        .raw(Method::PUT, &path("%F0%9F%8E%89"), None)
        .await
        .unwrap();
    assert_eq!(status, 204);
    // Members only; unknown messages are 404 too.
    let err = outsider.react(&conv.id, m.seq, "👍").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = a.react(&conv.id, 999, "👍").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    // Not on deleted messages.
    let gone = a.send_text(&conv.id, "r2", "bye").await.unwrap();
    a.delete_message(
        &conv.id,
        gone.seq,
        chatnode_client::protocol::DeleteScope::Everyone,
    )
    .await
    .unwrap();
    let err = a.react(&conv.id, gone.seq, "👍").await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(400), Some(ErrorCode::InvalidRequest))
    );
    // At most 20 different emoji per user and message.
    let many = [
        "😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰",
        "😗", "😙", "😚", "🙂", "🤗",
    ];
    let m2 = a.send_text(&conv.id, "r3", "many").await.unwrap();
    for e in many {
        a.react(&conv.id, m2.seq, e).await.unwrap();
    }
    let err = a.react(&conv.id, m2.seq, "🤩").await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(400), Some(ErrorCode::TooManyReactions))
    );
    // Putting one already there is still fine at the limit.
    a.react(&conv.id, m2.seq, "😀").await.unwrap();
}

#[tokio::test]
async fn mentions_name_members_and_count_unread() {
    let server = TestServer::start().await;
    let (owner, ou) = register(&server, "own").await;
    let (b, bu) = register(&server, "bee").await;
    let (c, cu) = register(&server, "cee").await;
    let (d, du) = register(&server, "dee").await;
    befriend(&owner, &ou, &b, &bu).await;
    befriend(&owner, &ou, &c, &cu).await;
    let g = group(&owner, "mentions", &[&bu, &cu]).await;

    // @username, case-insensitive, only for members; not inside an address.
    let text = format!(
        "hi @{} and @{}, mail x@{}.com, @{}",
        bu.username.to_uppercase(),
        cu.username,
        bu.username,
        du.username
    );
    let m = owner.send_text(&g.id, "m1", &text).await.unwrap();
    assert_eq!(m.mentions, vec![bu.id.clone(), cu.id.clone()]);
    let conv_b = b.conversation(&g.id).await.unwrap();
    assert_eq!(conv_b.unread_mentions, 1);
    // Reading moves it to zero.
    b.mark_read(&g.id, m.seq).await.unwrap();
    assert_eq!(b.conversation(&g.id).await.unwrap().unread_mentions, 0);

    // @all: from a member it is plain text; from an admin it names everyone.
    let m = c.send_text(&g.id, "m2", "@all look").await.unwrap();
    assert!(m.mentions.is_empty(), "{:?}", m.mentions);
    owner.set_role(&g.id, &cu.id, Role::Admin).await.unwrap();
    let m = c.send_text(&g.id, "m3", "@all look").await.unwrap();
    let mut all = m.mentions.clone();
    all.sort();
    let mut expected = vec![ou.id.clone(), bu.id.clone(), cu.id.clone()];
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(b.conversation(&g.id).await.unwrap().unread_mentions, 1);

    // An edit changes whom it mentions.
    let m = owner
        .send_text(&g.id, "m4", &format!("@{} ping", bu.username))
        .await
        .unwrap();
    assert_eq!(b.conversation(&g.id).await.unwrap().unread_mentions, 2);
    let edited = owner
        .edit_message(&g.id, m.seq, "ping nobody")
        .await
        .unwrap();
    assert!(edited.mentions.is_empty());
    assert_eq!(b.conversation(&g.id).await.unwrap().unread_mentions, 1);
    drop(d);

    // Mute with mentions off is reported back.
    let st = b.mute(&g.id, None, Some(false)).await.unwrap();
    assert!(!st.mentions);
    assert_eq!(
        b.conversation(&g.id).await.unwrap().mute_mentions,
        Some(true),
        "muted with mentions: false, so mentions are muted too"
    );
    let st = b.mute(&g.id, None, None).await.unwrap();
    assert!(st.mentions);
}

#[tokio::test]
async fn search_finds_words_and_prefixes_the_caller_can_read() {
    let server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let (outsider, _) = register(&server, "out").await;
    let m1 = a
        .send_text(&conv.id, "s1", "Dinner on Friday?")
        .await
        .unwrap();
    b.send_text(&conv.id, "s2", "The meeting is at CAFÉ Crème")
        .await
        .unwrap();
    let m3 = a.send_text(&conv.id, "s3", "Привет мир").await.unwrap();
    a.send_text(&conv.id, "s4", "dinner again friday")
        .await
        .unwrap();
    let hidden = a.send_text(&conv.id, "s5", "secret dinner").await.unwrap();

    let bodies = |r: &chatnode_client::protocol::SearchResults| {
        r.messages
            .iter()
            .map(|m| m.body.clone())
            .collect::<Vec<_>>()
    };
    let r = b
        .search_messages("dinner friday", None, None, None)
        .await
        .unwrap();
    assert_eq!(bodies(&r), vec!["dinner again friday", "Dinner on Friday?"]);
    let r = b.search_messages("meet", None, None, None).await.unwrap();
    assert_eq!(bodies(&r), vec!["The meeting is at CAFÉ Crème"]);
    let r = b
        .search_messages("cafe creme", None, None, None)
        .await
        .unwrap();
    assert_eq!(r.messages.len(), 1);
    let r = b.search_messages("МИР", None, None, None).await.unwrap();
    assert_eq!(r.messages[0].seq, m3.seq);
    // Hidden for me: not found by me, still by the other.
    b.delete_message(
        &conv.id,
        hidden.seq,
        chatnode_client::protocol::DeleteScope::Me,
    )
    .await
    .unwrap();
    let r = b.search_messages("secret", None, None, None).await.unwrap();
    assert!(r.messages.is_empty());
    let r = a.search_messages("secret", None, None, None).await.unwrap();
    assert_eq!(r.messages.len(), 1);
    // Edited: only the current text matches.
    a.edit_message(&conv.id, m1.seq, "Lunch on Saturday")
        .await
        .unwrap();
    let r = a.search_messages("friday", None, None, None).await.unwrap();
    assert_eq!(bodies(&r), vec!["dinner again friday"]);
    let r = a.search_messages("lunch", None, None, None).await.unwrap();
    assert_eq!(r.messages[0].seq, m1.seq);
    // Deleted for everyone: gone.
    a.delete_message(
        &conv.id,
        m3.seq,
        chatnode_client::protocol::DeleteScope::Everyone,
    )
    .await
    .unwrap();
    assert!(
        a.search_messages("привет", None, None, None)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    // Others' conversations are not searched; naming one is 404.
    assert!(
        outsider
            .search_messages("dinner", None, None, None)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    let err = outsider
        .search_messages("dinner", Some(&conv.id), None, None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    // Bad queries.
    for q in ["", "   ", &"x".repeat(201)] {
        let (status, _) = a
            .raw(Method::GET, &format!("/search/messages?q={q}"), None)
            .await
            .unwrap();
        assert_eq!(status, 400, "{q:?}");
    }
    let (status, _) = a.raw(Method::GET, "/search/messages", None).await.unwrap();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn search_pages_newest_first() {
    let server = TestServer::start().await;
    let (a, _au, b, bu, conv) = friends_with_direct(&server).await;
    let g = group(&a, "paging", &[&bu]).await;
    for i in 0..7 {
        let (c, body) = if i % 2 == 0 {
            (&conv.id, format!("report number {i}"))
        } else {
            (&g.id, format!("Reporting in {i}"))
        };
        a.send_text(c, &format!("p{i}"), &body).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let r = b
            .search_messages("rep", None, Some(3), before.as_deref())
            .await
            .unwrap();
        assert!(r.messages.len() <= 3);
        seen.extend(r.messages.iter().map(|m| m.body.clone()));
        match r.next_cursor {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7)
        .rev()
        .map(|i| {
            if i % 2 == 0 {
                format!("report number {i}")
            } else {
                format!("Reporting in {i}")
            }
        })
        .collect();
    assert_eq!(seen, expected);
    // Within one conversation.
    let r = b
        .search_messages("report", Some(&g.id), None, None)
        .await
        .unwrap();
    assert_eq!(r.messages.len(), 3);
}

#[tokio::test]
async fn search_index_survives_a_restart_and_holds_no_text() {
    let mut server = TestServer::start().await;
    let (a, _au, _b, _bu, conv) = friends_with_direct(&server).await;
    a.send_text(&conv.id, "x1", "zebra crossing tonight")
        .await
        .unwrap();
    server.restart().await;
    let a = server.client().with_token(a.access_token().unwrap());
    let r = a.search_messages("zeb", None, None, None).await.unwrap();
    assert_eq!(r.messages.len(), 1);
    if server.database_url().starts_with("sqlite") {
        let db = std::fs::read(server.data_dir().join("chatnode.db")).unwrap();
        let wal = std::fs::read(server.data_dir().join("chatnode.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            assert!(
                !bytes.windows(5).any(|w| w == b"zebra"),
                "plaintext in the database"
            );
        }
    }
}

/// One integer the server's database itself answers to `sql` (bound to `binds`, if any):
/// its SQLite file, read-only, or its PostgreSQL schema.
async fn db_i64(server: &TestServer, sql: &str, binds: Option<(&str, i64)>) -> i64 {
    let url = server.database_url();
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=ro"))
            .await
            .unwrap();
        let mut q = sqlx::query_scalar::<_, i64>(sql);
        if let Some((a, b)) = binds {
            q = q.bind(a.to_owned()).bind(b);
        }
        let n = q.fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let mut q = sqlx::query_scalar::<_, i64>(sql);
        if let Some((a, b)) = binds {
            q = q.bind(a.to_owned()).bind(b);
        }
        let n = q.fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

/// The search index's horizon, the last message's stream position and the index's size.
async fn index_horizon(server: &TestServer) -> (i64, i64, i64) {
    let stream = if server.database_url().starts_with("sqlite:") {
        "pos"
    } else {
        "stream_pos"
    };
    let through = "SELECT indexed_through FROM search_state WHERE id = 1";
    let head = format!("SELECT COALESCE(MAX({stream}), 0) FROM events WHERE seq IS NOT NULL");
    (
        db_i64(server, through, None).await,
        db_i64(server, &head, None).await,
        db_i64(server, "SELECT COUNT(*) FROM search_terms", None).await,
    )
}

/// How many search-index rows a message has.
async fn terms_of(server: &TestServer, conversation_id: &str, seq: i64) -> i64 {
    let sql = "SELECT COUNT(*) FROM search_terms t JOIN messages m ON m.pos = t.pos
               WHERE m.conversation_id = $1 AND m.seq = $2";
    db_i64(server, sql, Some((conversation_id, seq))).await
}

/// New messages are indexed off the send path: a search finds them before the indexer has
/// (in the unindexed tail), edits and deletions included, and gives the same pages once the
/// index holds them.
#[tokio::test]
async fn search_is_exact_before_and_after_the_indexer_catches_up() {
    let mut server =
        TestServer::start_with_env(&[], &[("CHATNODE_FAILPOINTS", "search-index-off=always")])
            .await;
    let (a, _au, b, bu, conv) = friends_with_direct(&server).await;
    let g = group(&a, "tail", &[&bu]).await;
    let mut expected = Vec::new();
    for i in 0..24 {
        let c = if i % 3 == 0 { &g.id } else { &conv.id };
        let body = format!("harbour lights {i}");
        let m = a.send_text(c, &format!("t{i}"), &body).await.unwrap();
        b.send_text(c, &format!("u{i}"), &format!("unrelated words {i}"))
            .await
            .unwrap();
        expected.push((c.clone(), m.seq, body));
    }
    // One edited away, one edited in, one deleted for everyone.
    let (c5, s5, _) = expected.remove(5);
    a.edit_message(&c5, s5, "nothing to see").await.unwrap();
    let (c7, s7, _) = expected[7].clone();
    a.edit_message(&c7, s7, "harbour lights edited")
        .await
        .unwrap();
    expected[7].2 = "harbour lights edited".into();
    let (c9, s9, _) = expected.remove(9);
    a.delete_message(&c9, s9, chatnode_client::protocol::DeleteScope::Everyone)
        .await
        .unwrap();
    expected.reverse();
    let want: Vec<String> = expected.iter().map(|e| e.2.clone()).collect();

    let pages = |client: chatnode_client::Client| async move {
        let mut seen = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let r = client
                .search_messages("harb lig", None, Some(5), before.as_deref())
                .await
                .unwrap();
            seen.extend(r.messages.iter().map(|m| m.body.clone()));
            match r.next_cursor {
                Some(c) => before = Some(c),
                None => break,
            }
        }
        seen
    };
    let (through, head, _) = index_horizon(&server).await;
    assert!(
        through < head,
        "nothing new is indexed yet ({through} / {head})"
    );
    assert_eq!(pages(b.clone()).await, want, "from the unindexed tail");

    // Without the failpoint the indexer catches up, and the pages are the same.
    server.set_envs(&[]);
    server.restart().await;
    let b = server.client().with_token(b.access_token().unwrap());
    let started = std::time::Instant::now();
    loop {
        let (through, head, terms) = index_horizon(&server).await;
        if through >= head && terms > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the indexer did not catch up ({through} / {head})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pages(b.clone()).await, want, "from the index");
    // The indexer skipped the message deleted for everyone, and indexed the others.
    assert_eq!(
        terms_of(&server, &c9, s9).await,
        0,
        "a deleted message has no terms"
    );
    assert!(terms_of(&server, &c7, s7).await > 0);
    let r = b
        .search_messages("harbour", Some(&g.id), None, None)
        .await
        .unwrap();
    assert!(r.messages.iter().all(|m| m.conversation_id == g.id));
    assert_eq!(
        r.messages.len(),
        expected.iter().filter(|e| e.0 == g.id).count()
    );
}
