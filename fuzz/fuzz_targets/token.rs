//! Access and media tokens through `Auth::verify_access` / `Auth::verify_media` (the
//! server's only token check: HS256 pinned, signature, `exp`, `iss`, `aud`, `typ`). The first
//! byte picks how the rest is used:
//! - 0..=99:  the rest, as text, is a token from an attacker without the key: never accepted.
//! - 100..=199: edits (position, byte) applied to a real access token: accepted only if the
//!   edits changed nothing.
//! - 200..=255: a header and claims of the fuzzer's choosing (split at the first 0 byte),
//!   signed with the server's key (as if the key had signed anything): accepted only when
//!   they say exactly what a token of that kind must say.
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatnode_server::fuzzing::Auth;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";
/// Long-lived, so the real token of mode 2 stays valid however long the fuzzer runs.
const TTL: i64 = 10 * 365 * 86_400;

static AUTH: LazyLock<Auth> = LazyLock::new(|| Auth::new(SECRET, TTL, 1));
static ACCESS: LazyLock<String> = LazyLock::new(|| AUTH.issue_access("u1", "s1").expect("a token"));
static KEY: LazyLock<EncodingKey> = LazyLock::new(|| EncodingKey::from_secret(SECRET));

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// What the claims of an accepted token must say (`typ` is `access` or `media`).
fn assert_acceptable(header: &[u8], claims: &[u8], typ: &str, token: &str) {
    let header: Value = serde_json::from_slice(header).expect("accepted with a bad header");
    assert_eq!(header["alg"], "HS256", "accepted {token}");
    let c: Value = serde_json::from_slice(claims).expect("accepted with bad claims");
    assert_eq!(c["typ"], typ, "accepted {token}");
    assert_eq!(c["iss"], "chatnode", "accepted {token}");
    let aud_ok = match &c["aud"] {
        Value::String(a) => a == "chatnode",
        Value::Array(a) => a.iter().any(|a| a == "chatnode"),
        _ => false,
    };
    assert!(aud_ok, "accepted {token}");
    let exp = c["exp"].as_f64().expect("accepted without a numeric exp");
    assert!(
        exp >= (now() - 60) as f64,
        "accepted an expired token {token}"
    );
    assert!(c["sub"].is_string(), "accepted {token}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0..=99 => {
            let token = String::from_utf8_lossy(rest);
            assert!(AUTH.verify_access(&token).is_err(), "accepted {token:?}");
            assert!(AUTH.verify_media(&token).is_err(), "accepted {token:?}");
        }
        100..=199 => {
            let mut token = ACCESS.as_bytes().to_vec();
            for edit in rest.chunks(2) {
                let pos = edit[0] as usize % (token.len() + 1);
                match edit.get(1) {
                    Some(&b) if pos < token.len() => token[pos] = b,
                    Some(&b) => token.push(b),
                    None => token.truncate(pos),
                }
            }
            let token = String::from_utf8_lossy(&token);
            if token != ACCESS.as_str() {
                assert!(
                    AUTH.verify_access(&token).is_err(),
                    "accepted edited {token:?}"
                );
            } else {
                assert!(AUTH.verify_access(&token).is_ok());
            }
            assert!(
                AUTH.verify_media(&token).is_err(),
                "an access token passed as media"
            );
        }
        _ => {
            let (header, claims) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
            };
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &KEY, Algorithm::HS256)
                .expect("signing");
            let token = format!("{input}.{sig}");
            for (typ, ok) in [
                ("access", AUTH.verify_access(&token)),
                ("media", AUTH.verify_media(&token)),
            ] {
                if let Ok(id) = ok {
                    assert_acceptable(header, claims, typ, &token);
                    let c: Value = serde_json::from_slice(claims).expect("claims");
                    assert_eq!(c["sub"], id.user_id.as_str());
                }
            }
        }
    }
});
