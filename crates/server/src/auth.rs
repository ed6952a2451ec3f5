//! Credentials: argon2id password hashes, JWT access tokens, opaque refresh tokens.
//!
//! Owns the secrets and the crypto. It must never log a token, a password or a hash.
//! Password hashing is CPU-heavy (about 19 MiB and tens of milliseconds each), so it runs on
//! the blocking pool behind a semaphore: a burst of logins queues instead of starving the
//! async runtime or exhausting memory.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm as JwtAlg, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::domain::{SessionId, UserId};
use crate::error::{Error, Result};
use crate::store::Accounts;

const ISSUER: &str = "chatnode";
const AUDIENCE: &str = "chatnode";
const ACCESS_TYPE: &str = "access";
const MEDIA_TYPE: &str = "media";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    typ: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// The caller of a request or a WebSocket: a valid access token of a live login session
/// (see [`authenticate`]). HTTP handlers take it as an extractor (`http`).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: UserId,
    pub session_id: SessionId,
}

/// Bot tokens start with this (then 43 random base64url characters); they never expire.
pub const BOT_TOKEN_PREFIX: &str = "cnb_";
/// Service tokens (`POST /notify`) start with this; they authenticate nothing else.
pub const SERVICE_TOKEN_PREFIX: &str = "cns_";

/// A new opaque token with a prefix that says what it is (bots, services).
pub fn prefixed_token(prefix: &str) -> String {
    format!("{prefix}{}", random_token())
}

/// Verifies an access token and that its login session was not revoked since it was issued;
/// or a bot token (stored as its SHA-256), which authenticates as its bot in the bot's live
/// session.
pub async fn authenticate(auth: &Auth, sessions: &dyn Accounts, token: &str) -> Result<AuthUser> {
    if token.starts_with(BOT_TOKEN_PREFIX) {
        let (user_id, session_id) = sessions
            .bot_session(&hash_refresh_token(token))
            .await?
            .ok_or_else(Error::unauthenticated)?;
        return Ok(AuthUser {
            user_id,
            session_id,
        });
    }
    let id = auth.verify_access(token)?;
    // The token's signature vouches for the IDs in it.
    let user_id = UserId::trusted(id.user_id);
    let session_id = SessionId::trusted(id.session_id);
    if !sessions.session_active(&session_id, &user_id).await? {
        return Err(Error::unauthenticated());
    }
    Ok(AuthUser {
        user_id,
        session_id,
    })
}

/// Who a valid access token speaks for.
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub user_id: String,
    pub session_id: String,
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: i64,
    hash_slots: Arc<Semaphore>,
    argon: Argon2<'static>,
    /// A real hash of a random password, verified against when the login is unknown so that
    /// "no such user" costs the same time as "wrong password".
    dummy_hash: String,
}

impl Auth {
    /// Loads the JWT secret from `DATA_DIR/jwt_secret`, creating it (mode 0600) on first run.
    pub fn load_or_create(
        data_dir: &Path,
        access_ttl: i64,
        hash_concurrency: usize,
    ) -> anyhow::Result<Auth> {
        let secret = load_or_create_secret(&data_dir.join("jwt_secret"))?;
        Ok(Auth::new(&secret, access_ttl, hash_concurrency))
    }

    pub fn new(secret: &[u8], access_ttl: i64, hash_concurrency: usize) -> Auth {
        // Pinned algorithm: a token claiming any other `alg` (including `none`) is rejected.
        let mut validation = Validation::new(JwtAlg::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        // OWASP's argon2id baseline: m = 19 MiB, t = 2, p = 1.
        let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 params");
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon
            .hash_password(random_token().as_bytes())
            .expect("argon2 hashing a random password")
            .to_string();
        Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            hash_slots: Arc::new(Semaphore::new(hash_concurrency)),
            argon,
            dummy_hash,
        }
    }

    pub fn access_ttl(&self) -> i64 {
        self.access_ttl
    }

    pub fn issue_access(&self, user_id: &str, session_id: &str) -> Result<String> {
        self.issue(user_id, session_id, ACCESS_TYPE)
    }

    /// A token that only reads media (it rides in the media cookie); same lifetime.
    pub fn issue_media(&self, user_id: &str, session_id: &str) -> Result<String> {
        self.issue(user_id, session_id, MEDIA_TYPE)
    }

    fn issue(&self, user_id: &str, session_id: &str, typ: &str) -> Result<String> {
        let now = crate::time::now_secs();
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            typ: typ.to_owned(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + self.access_ttl,
        };
        jsonwebtoken::encode(&Header::new(JwtAlg::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("signing a token")))
    }

    /// Checks signature, algorithm, expiry, issuer, audience and token type.
    pub fn verify_access(&self, token: &str) -> Result<TokenIdentity> {
        self.verify(token, ACCESS_TYPE)
    }

    pub fn verify_media(&self, token: &str) -> Result<TokenIdentity> {
        self.verify(token, MEDIA_TYPE)
    }

    fn verify(&self, token: &str, typ: &str) -> Result<TokenIdentity> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| Error::unauthenticated())?;
        if data.claims.typ != typ {
            return Err(Error::unauthenticated());
        }
        Ok(TokenIdentity {
            user_id: data.claims.sub,
            session_id: data.claims.sid,
        })
    }

    pub async fn hash_password(self: &Arc<Self>, password: String) -> Result<String> {
        let _slot = self
            .hash_slots
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.argon
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(Error::Internal)
    }

    /// Verifies `password` against `hash`, or against a dummy hash when `hash` is `None`, so
    /// that both outcomes take the same time. Returns whether it matched.
    pub async fn verify_password(
        self: &Arc<Self>,
        password: String,
        hash: Option<String>,
    ) -> Result<bool> {
        let _slot = self
            .hash_slots
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        let me = self.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            me.argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
                && known
        })
        .await
        .map_err(|e| Error::Internal(e.into()))
    }
}

/// 32 random bytes, base64url: refresh tokens, secrets, invite codes.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Refresh tokens are stored only as their SHA-256: a leaked database cannot be replayed.
/// (They are 256-bit random values, so a fast hash is enough; no salt or KDF is needed.)
pub fn hash_refresh_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest)
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(text.trim())
                .with_context(|| format!("{} is not a valid secret file", path.display()))?;
            anyhow::ensure!(
                bytes.len() >= 32,
                "{} holds a secret shorter than 32 bytes",
                path.display()
            );
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = vec![0u8; 64];
            rand::rng().fill_bytes(&mut bytes);
            crate::secrets::write_private(path, URL_SAFE_NO_PAD.encode(&bytes).as_bytes())?;
            Ok(bytes)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(b"0123456789abcdef0123456789abcdef", 900, 1)
    }

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() {
        let a = auth();
        let t = a.issue_access("u1", "s1").unwrap();
        let id = a.verify_access(&t).unwrap();
        assert_eq!((id.user_id.as_str(), id.session_id.as_str()), ("u1", "s1"));
        let mut bad = t.clone();
        bad.pop();
        assert!(a.verify_access(&bad).is_err());
        let other = Auth::new(b"another-secret-another-secret-xx", 900, 1);
        assert!(other.verify_access(&t).is_err());
    }

    #[test]
    fn rejects_alg_none_and_wrong_type() {
        let a = auth();
        // {"alg":"none"} header with valid-looking claims.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let now = crate::time::now_secs();
        let claims = format!(
            r#"{{"sub":"u","sid":"s","typ":"access","iss":"chatnode","aud":"chatnode","iat":{now},"exp":{}}}"#,
            now + 100
        );
        let token = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims));
        assert!(a.verify_access(&token).is_err());
        let refresh_like = Claims {
            sub: "u".into(),
            sid: "s".into(),
            typ: "refresh".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + 100,
        };
        let t =
            jsonwebtoken::encode(&Header::new(JwtAlg::HS256), &refresh_like, &a.encoding).unwrap();
        assert!(a.verify_access(&t).is_err());
    }

    #[test]
    fn expired_tokens_fail() {
        let a = Auth::new(b"0123456789abcdef0123456789abcdef", -60, 1);
        let t = a.issue_access("u", "s").unwrap();
        assert!(a.verify_access(&t).is_err());
    }
}
