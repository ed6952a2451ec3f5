//! The search scenario (ChatNode only): with a large history stored (`--history`, bodies of
//! chat-like words from `bench-seed`), one user who is a member of many conversations runs
//! `GET /api/v1/search/messages` queries one after the other, and the latency of each is
//! recorded. The queries are taken from the user's own history (so they find something):
//! the most common word, mid-frequency words, rare words (seen once in the sample), 3- and
//! 4-letter prefixes, two-word queries, a word that is nowhere, and the same within one
//! conversation.

use std::collections::HashMap;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::report::Row;
use crate::target::{Fixture, Spec, Target};

/// `pairs` two-person conversations, and user 0 also in `extra` more (with users 1, 3, 5…):
/// user 0 searches `extra + 1` conversations.
pub fn spec(pairs: usize, extra: usize) -> Spec {
    let mut conversations: Vec<Vec<usize>> = (0..pairs).map(|i| vec![2 * i, 2 * i + 1]).collect();
    for j in 1..=extra.min(pairs.saturating_sub(1)) {
        conversations.push(vec![0, 2 * j + 1]);
    }
    Spec {
        users: pairs * 2,
        conversations,
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

pub async fn run(target: &Target, fx: &Fixture, rounds: usize) -> anyhow::Result<Row> {
    let base = format!("http://{}/api/v1", target.addrs[0]);
    let token = &fx.users[0].token;
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).bearer_auth(token).send().await?;
            let status = r.status();
            let v: Value = r.json().await?;
            anyhow::ensure!(status.is_success(), "{status}: {v}");
            anyhow::Ok(v)
        }
    };
    let mine: Vec<&str> = fx
        .conversations
        .iter()
        .filter(|c| c.members.contains(&0))
        .map(|c| c.id.as_str())
        .collect();
    // A sample of the user's history to draw queries from.
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut pairs: Vec<String> = Vec::new();
    for conv in mine.iter().take(10) {
        let page = get(format!("{base}/conversations/{conv}/messages?limit=200")).await?;
        for m in page["messages"].as_array().into_iter().flatten() {
            let ws = words(m["body"].as_str().unwrap_or(""));
            if ws.len() >= 2 && pairs.len() < 20 {
                pairs.push(format!("{} {}", ws[ws.len() - 1], ws[0]));
            }
            for w in ws {
                *counts.entry(w).or_default() += 1;
            }
        }
    }
    let mut by_freq: Vec<(String, usize)> = counts.into_iter().collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    anyhow::ensure!(by_freq.len() > 20, "the history is too small to search");
    let mut queries: Vec<(&str, String)> = Vec::new();
    queries.push(("common", by_freq[0].0.clone()));
    for (w, _) in by_freq.iter().skip(by_freq.len() / 4).step_by(7).take(6) {
        queries.push(("mid", w.clone()));
    }
    for (w, _) in by_freq.iter().rev().filter(|(w, _)| w.len() >= 5).take(6) {
        queries.push(("rare", w.clone()));
    }
    for (w, _) in by_freq.iter().filter(|(w, _)| w.len() >= 6).skip(3).take(4) {
        queries.push(("prefix", w.chars().take(3).collect()));
        queries.push(("prefix", w.chars().take(4).collect()));
    }
    for p in pairs.iter().take(4) {
        queries.push(("two words", p.clone()));
    }
    queries.push(("absent", "zzqqxxvv".into()));
    let one = mine[0];
    let mut hist = Histogram::<u64>::new(3)?;
    let mut per_kind: HashMap<&str, Histogram<u64>> = HashMap::new();
    let mut results = 0u64;
    let started = Instant::now();
    for round in 0..rounds {
        for (kind, q) in &queries {
            let scoped = round % 4 == 3;
            let mut url = reqwest::Url::parse(&format!("{base}/search/messages"))?;
            url.query_pairs_mut().append_pair("q", q);
            if scoped {
                url.query_pairs_mut().append_pair("conversation_id", one);
            }
            let t = Instant::now();
            let v = get(url.to_string()).await?;
            let us = t.elapsed().as_micros() as u64;
            results += v["messages"].as_array().map_or(0, |a| a.len()) as u64;
            hist.record(us.max(1))?;
            per_kind
                .entry(if scoped { "in one chat" } else { kind })
                .or_insert_with(|| Histogram::new(3).expect("histogram"))
                .record(us.max(1))?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mut row = Row::new(target.kind.name(), "search");
    row.int("conversations", mine.len() as u64)
        .int("queries", hist.len())
        .num("per_sec", hist.len() as f64 / secs)
        .num("p50_ms", ms(&hist, 0.5))
        .num("p95_ms", ms(&hist, 0.95))
        .num("p99_ms", ms(&hist, 0.99))
        .num("max_ms", hist.max() as f64 / 1000.0)
        .num(
            "results_per_query",
            results as f64 / hist.len().max(1) as f64,
        );
    let mut kinds: Vec<_> = per_kind.into_iter().collect();
    kinds.sort_by(|a, b| a.0.cmp(b.0));
    for (k, h) in kinds {
        row.num(&format!("p95_ms {k}"), ms(&h, 0.95));
    }
    Ok(row)
}
