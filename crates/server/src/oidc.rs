//! Single sign-on with OpenID Connect providers (the authorization code flow with PKCE):
//! discovery, the authorization request, the code exchange and full ID token validation.
//!
//! What this module checks of an ID token: the signature, with a key from the issuer's JWKS
//! (asymmetric algorithms only, never `none` or a shared secret), `iss` equal to the
//! configured issuer, `aud` holding our client ID, `exp` and `nbf` (when present) with a
//! minute of leeway, `iat` (when present) not in the future, and `nonce` equal to the one sent with this sign-in. The `state` and
//! the PKCE verifier are checked by the flow itself (the state is looked up and spent; the
//! provider checks the verifier). Discovery documents and key sets are cached for an hour; a
//! token signed with a key the cache does not know makes one fresh fetch of the key set
//! (providers rotate keys), at most once a minute.
//!
//! Accounts are the store's business (`SingleSignOn::oidc_account`); HTTP is `http/sso.rs`.
//! Nothing here logs a code, a token or a secret.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::OidcProviderConfig;
use crate::store::OidcClaims;

/// How long a discovery document or a key set is trusted before it is fetched again.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// Fresh key-set fetches for an unknown `kid`, at most one per this long.
const REFETCH_EVERY: Duration = Duration::from_secs(60);
/// Requests to a provider give up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The parts of a discovery document this flow uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

struct Cached {
    discovery: Option<(Discovery, Instant)>,
    keys: Option<(JwkSet, Instant)>,
    last_refetch: Option<Instant>,
}

/// The configured providers and what was learned about them.
pub struct Sso {
    providers: Vec<OidcProviderConfig>,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

/// A fresh sign-in's secrets: `state` and `nonce` go to the provider, the PKCE `verifier`
/// stays here (its S256 challenge goes).
pub struct Secrets {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl Secrets {
    pub fn new() -> Secrets {
        Secrets {
            state: crate::auth::random_token(),
            nonce: crate::auth::random_token(),
            verifier: crate::auth::random_token(),
        }
    }
}

/// `BASE64URL(SHA256(verifier))`, the S256 code challenge (RFC 7636).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl Sso {
    pub fn new(providers: Vec<OidcProviderConfig>) -> anyhow::Result<Sso> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot make the single sign-on HTTP client")?;
        Ok(Sso {
            providers,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn providers(&self) -> &[OidcProviderConfig] {
        &self.providers
    }

    pub fn provider(&self, id: &str) -> Option<&OidcProviderConfig> {
        self.providers.iter().find(|p| p.id == id)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The provider's discovery document (cached).
    pub async fn discovery(&self, p: &OidcProviderConfig) -> anyhow::Result<Discovery> {
        if let Some((d, at)) = self.cache().get(&p.id).and_then(|c| c.discovery.clone())
            && at.elapsed() < CACHE_FOR
        {
            return Ok(d);
        }
        let url = format!("{}/.well-known/openid-configuration", p.issuer);
        let d: Discovery = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?
            .error_for_status()
            .with_context(|| format!("{url} answered an error"))?
            .json()
            .await
            .with_context(|| format!("{url} is not a discovery document"))?;
        // OpenID Connect Discovery §4.3: the document must be the configured issuer's.
        if d.issuer.trim_end_matches('/') != p.issuer {
            bail!("{url} names issuer {}, not {}", d.issuer, p.issuer);
        }
        self.cache()
            .entry(p.id.clone())
            .or_insert(Cached {
                discovery: None,
                keys: None,
                last_refetch: None,
            })
            .discovery = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    /// Where to send the browser to sign in.
    pub async fn authorization_url(
        &self,
        p: &OidcProviderConfig,
        redirect_uri: &str,
        s: &Secrets,
    ) -> anyhow::Result<String> {
        let d = self.discovery(p).await?;
        let mut url = url::Url::parse(&d.authorization_endpoint)
            .context("the provider's authorization_endpoint is not a URL")?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &p.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &s.state)
            .append_pair("nonce", &s.nonce)
            .append_pair("code_challenge", &challenge(&s.verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges the code and validates the ID token it brings; its claims.
    pub async fn finish(
        &self,
        p: &OidcProviderConfig,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
    ) -> anyhow::Result<OidcClaims> {
        let d = self.discovery(p).await?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier)
            .finish();
        // client_secret_basic (the default of RFC 6749 and OpenID Connect) unless the
        // provider says it takes only client_secret_post. Basic credentials are
        // form-encoded first (RFC 6749 §2.3.1).
        let post_only = d
            .token_endpoint_auth_methods_supported
            .as_ref()
            .is_some_and(|m| {
                !m.iter().any(|x| x == "client_secret_basic")
                    && m.iter().any(|x| x == "client_secret_post")
            });
        let mut req = self
            .http
            .post(&d.token_endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json");
        let body = if post_only {
            let extra = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &p.client_id)
                .append_pair("client_secret", &p.client_secret)
                .finish();
            format!("{form}&{extra}")
        } else {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", enc(&p.client_id), enc(&p.client_secret)));
            req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"));
            form
        };
        let resp = req
            .body(body)
            .send()
            .await
            .context("cannot reach the provider's token endpoint")?;
        let status = resp.status();
        if !status.is_success() {
            bail!("the provider refused the code ({status})");
        }
        let tokens: TokenResponse = resp
            .json()
            .await
            .context("the token endpoint's answer is not JSON")?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| anyhow!("the token endpoint gave no id_token"))?;
        self.validate(p, &d, &id_token, nonce).await
    }

    /// The ID token's claims, if every check passes (see the module doc).
    async fn validate(
        &self,
        p: &OidcProviderConfig,
        d: &Discovery,
        id_token: &str,
        nonce: &str,
    ) -> anyhow::Result<OidcClaims> {
        let header = jsonwebtoken::decode_header(id_token).context("the ID token is malformed")?;
        let alg = header.alg;
        if !matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            bail!("the ID token is signed with {alg:?}, which is not accepted");
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&p.issuer, &d.issuer]);
        validation.set_audience(&[&p.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        let mut fresh = false;
        loop {
            let keys = self.keys(p, d, fresh).await?;
            let jwk = match &header.kid {
                Some(kid) => keys.find(kid).cloned(),
                None => keys.keys.first().cloned(),
            };
            let verified = match jwk {
                Some(jwk) => {
                    let key =
                        DecodingKey::from_jwk(&jwk).context("the provider's key is unusable")?;
                    jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
                        .map_err(|e| anyhow!("the ID token does not validate: {e}"))
                }
                None => Err(anyhow!(
                    "the ID token's key is not in the provider's key set"
                )),
            };
            match verified {
                Ok(data) => {
                    let c = data.claims;
                    // Issued in the future (past the leeway): a provider's clock or a forgery.
                    if c.iat.is_some_and(|iat| iat > crate::time::now_secs() + 60) {
                        bail!("the ID token was issued in the future");
                    }
                    if c.nonce.as_deref() != Some(nonce) {
                        bail!("the ID token's nonce is not this sign-in's");
                    }
                    let verified_email = match c.email_verified {
                        Some(serde_json::Value::Bool(b)) => b,
                        // Some providers send "true" as a string.
                        Some(serde_json::Value::String(s)) => s == "true",
                        _ => false,
                    };
                    return Ok(OidcClaims {
                        subject: c.sub,
                        email: c.email.filter(|e| e.contains('@') && e.len() <= 254),
                        email_verified: verified_email,
                        preferred_username: c.preferred_username,
                        name: c.name,
                    });
                }
                // Keys rotate: once, fetch the key set again and retry.
                Err(_) if !fresh && self.may_refetch(p) => fresh = true,
                Err(e) => return Err(e),
            }
        }
    }

    fn may_refetch(&self, p: &OidcProviderConfig) -> bool {
        let mut cache = self.cache();
        let Some(c) = cache.get_mut(&p.id) else {
            return true;
        };
        if c.last_refetch.is_some_and(|t| t.elapsed() < REFETCH_EVERY) {
            return false;
        }
        c.last_refetch = Some(Instant::now());
        true
    }

    async fn keys(
        &self,
        p: &OidcProviderConfig,
        d: &Discovery,
        fresh: bool,
    ) -> anyhow::Result<JwkSet> {
        if !fresh
            && let Some((k, at)) = self.cache().get(&p.id).and_then(|c| c.keys.clone())
            && at.elapsed() < CACHE_FOR
        {
            return Ok(k);
        }
        let keys: JwkSet = self
            .http
            .get(&d.jwks_uri)
            .send()
            .await
            .context("cannot reach the provider's key set")?
            .error_for_status()
            .context("the provider's key set answered an error")?
            .json()
            .await
            .context("the provider's key set is not a JWK set")?;
        if let Some(c) = self.cache().get_mut(&p.id) {
            c.keys = Some((keys.clone(), Instant::now()));
        }
        Ok(keys)
    }
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_challenges_follow_rfc_7636() {
        // base64url(sha256(verifier)) without padding, as Python's hashlib and base64 give it.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mJ92K1rcQi5HqzQw9DVK8Y2wSUc9bZ8"),
            "CpG1gi93hAfK9YWF32zBqKNMzUWHkkS03GcNaM9aA4g"
        );
    }
}
