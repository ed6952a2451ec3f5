//! The embedded web client is served precompressed: Brotli or gzip by `Accept-Encoding`
//! (with `Vary`), as is when nothing is accepted; the manifest with its own type.

mod common;

use common::*;

async fn get(
    server: &TestServer,
    path: &str,
    accept: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut req = reqwest::Client::new().get(format!("{}{path}", server.url()));
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn assets_are_served_precompressed() {
    let server = TestServer::start().await;
    let (_, _, page) = get(&server, "/", None).await;
    let page = String::from_utf8_lossy(&page).into_owned();
    if page.contains("was not built into this binary") {
        println!("SKIPPED web_assets: this binary has no web client (npm was unavailable)");
        return;
    }
    let enc = |h: &reqwest::header::HeaderMap| {
        h.get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (s, h, _) = get(&server, "/", Some("gzip, deflate, br")).await;
    assert_eq!((s, enc(&h).as_deref()), (200, Some("br")));
    assert_eq!(h["vary"], "Accept-Encoding");
    let (_, h, _) = get(&server, "/", Some("gzip")).await;
    assert_eq!(enc(&h).as_deref(), Some("gzip"));
    let (_, h, _) = get(&server, "/", Some("br;q=0, gzip")).await;
    assert_eq!(enc(&h).as_deref(), Some("gzip"), "q=0 refuses br");
    let (_, h, body) = get(&server, "/", Some("identity")).await;
    assert_eq!(enc(&h), None);
    assert!(
        String::from_utf8_lossy(&body)
            .to_lowercase()
            .starts_with("<!doctype html")
    );
    // A hashed script, as the page names it.
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a script in the page")
        .to_owned();
    let (s, h, small) = get(&server, &script, Some("br")).await;
    assert_eq!((s, enc(&h).as_deref()), (200, Some("br")));
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    let (_, _, plain) = get(&server, &script, None).await;
    assert!(
        small.len() * 2 < plain.len(),
        "{} vs {}",
        small.len(),
        plain.len()
    );
    let (s, h, _) = get(&server, "/manifest.webmanifest", None).await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "application/manifest+json");
    let (s, _, _) = get(&server, "/assets/missing.js", Some("br")).await;
    assert_eq!(s, 404);
}
