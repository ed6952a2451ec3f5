//! A test Web Push service on loopback (playing the browser vendor's service) and a
//! browser's side of a subscription: each request's VAPID JWT is verified and its payload
//! decrypted with the subscription's private key, exactly as a browser would.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatnode_client::protocol::PushPayload;
use chatnode_client::{Client, Method};
use serde_json::json;
use web_push_native::jwt_simple::prelude::*;
use web_push_native::p256::SecretKey;
use web_push_native::p256::elliptic_curve::rand_core::OsRng;

#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Accept,
    Gone,
    TooManyOnce,
    Hang,
    /// The first request gets this status with a `Retry-After`; later ones are accepted.
    RetryAfterOnce(u16, RetryAfter),
}

#[derive(Clone, Copy, PartialEq)]
pub enum RetryAfter {
    /// `Retry-After: <delta-seconds>`
    Secs(u64),
    /// `Retry-After: <HTTP-date>`, this many seconds from the moment of the answer.
    DateIn(u64),
}

pub struct Received {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub status: u16,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct Service {
    pub received: Arc<Mutex<HashMap<String, Vec<Received>>>>,
    pub modes: Arc<Mutex<HashMap<String, Mode>>>,
}

async fn push_endpoint(
    State(s): State<Service>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let mode = s
        .modes
        .lock()
        .unwrap()
        .get(&id)
        .copied()
        .unwrap_or(Mode::Accept);
    let earlier = s.received.lock().unwrap().get(&id).map_or(0, Vec::len);
    let status = match mode {
        Mode::Accept => 201,
        Mode::Gone => 410,
        Mode::TooManyOnce if earlier == 0 => 429,
        Mode::TooManyOnce => 201,
        Mode::Hang => 0,
        Mode::RetryAfterOnce(status, _) if earlier == 0 => status,
        Mode::RetryAfterOnce(..) => 201,
    };
    s.received
        .lock()
        .unwrap()
        .entry(id)
        .or_default()
        .push(Received {
            headers,
            body: body.to_vec(),
            status,
            at: Instant::now(),
        });
    if mode == Mode::Hang {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    let status = StatusCode::from_u16(status.max(201)).unwrap();
    match mode {
        Mode::RetryAfterOnce(_, after) if earlier == 0 => {
            let value = match after {
                RetryAfter::Secs(s) => s.to_string(),
                RetryAfter::DateIn(s) => {
                    httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(s))
                }
            };
            (status, [("retry-after", value)]).into_response()
        }
        _ => status.into_response(),
    }
}

impl Service {
    pub async fn start() -> (Service, String) {
        let s = Service::default();
        let app = axum::Router::new()
            .route("/push/{id}", axum::routing::post(push_endpoint))
            .with_state(s.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (s, base)
    }

    pub fn count(&self, id: &str) -> usize {
        self.received.lock().unwrap().get(id).map_or(0, Vec::len)
    }

    /// When each request for `id` arrived.
    pub fn arrivals(&self, id: &str) -> Vec<Instant> {
        self.received
            .lock()
            .unwrap()
            .get(id)
            .map_or_else(Vec::new, |r| r.iter().map(|r| r.at).collect())
    }

    pub async fn wait_for(&self, id: &str, n: usize) {
        self.wait_for_within(id, n, Duration::from_secs(10)).await;
    }

    pub async fn wait_for_within(&self, id: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.count(id) < n {
            assert!(
                Instant::now() < deadline,
                "{id}: {} of {n} pushes arrived",
                self.count(id)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A browser's side of a subscription: the key pair and auth secret the payload is for.
pub struct Browser {
    secret: SecretKey,
    auth: [u8; 16],
    endpoint: String,
}

impl Browser {
    pub fn new(base: &str, id: &str) -> Browser {
        let mut auth = [0u8; 16];
        rand::fill(&mut auth);
        Browser {
            secret: SecretKey::random(&mut OsRng),
            auth,
            endpoint: format!("{base}/push/{id}"),
        }
    }

    pub async fn subscribe(&self, c: &Client) {
        let body = json!({
            "endpoint": self.endpoint,
            "keys": {
                "p256dh": URL_SAFE_NO_PAD.encode(self.secret.public_key().to_sec1_bytes()),
                "auth": URL_SAFE_NO_PAD.encode(self.auth),
            }
        });
        let (status, v) = c
            .raw(Method::POST, "/push/subscriptions", Some(body))
            .await
            .unwrap();
        assert_eq!(status, 201, "{v}");
    }

    /// Checks the VAPID header against the server's key and decrypts the payload.
    pub fn open(&self, r: &Received, server_key: &str) -> PushPayload {
        let auth = r.headers["authorization"].to_str().unwrap();
        let rest = auth.strip_prefix("vapid t=").expect("VAPID authorization");
        let (token, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, server_key, "signed with the server's VAPID key");
        let public = ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(k).unwrap()).unwrap();
        let claims = public
            .verify_token::<NoCustomClaims>(token, None)
            .expect("valid VAPID JWT");
        // RFC 8292 §2: the origin of the push resource, port included (it is not 80 here).
        let origin = self.endpoint.split("/push/").next().unwrap();
        assert!(origin.starts_with("http://127.0.0.1:"), "{origin}");
        let audiences = claims.audiences.unwrap().into_set();
        assert_eq!(
            audiences,
            HashSet::from([origin.to_owned()]),
            "the VAPID aud is the push service's origin"
        );
        let exp = claims.expires_at.unwrap().as_secs();
        assert!(exp <= Clock::now_since_epoch().as_secs() + 24 * 3600);
        assert!(claims.subject.unwrap().starts_with("mailto:"));
        assert_eq!(r.headers["content-encoding"], "aes128gcm");
        assert!(r.headers.contains_key("ttl"));
        let mut auth = web_push_native::Auth::default();
        auth.copy_from_slice(&self.auth);
        let plain =
            web_push_native::decrypt(r.body.clone(), &self.secret, &auth).expect("decrypts");
        serde_json::from_slice(&plain).unwrap()
    }
}

pub async fn server_key(c: &Client) -> String {
    let (_, v) = c
        .raw(Method::GET, "/push/vapid-public-key", None)
        .await
        .unwrap();
    v["public_key"].as_str().unwrap().to_owned()
}
