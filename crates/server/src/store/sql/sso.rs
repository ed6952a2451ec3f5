//! Single sign-on with OpenID Connect, the database side: sign-ins under way (so the
//! provider's callback may reach any node), accounts found by `(provider, sub)`, linked by a
//! verified email or made new, and the one-time codes that hand a finished sign-in to the
//! browser. State, nonce, verifier and codes are random; state and codes are stored as
//! SHA-256. The protocol itself (discovery, the token exchange, ID token validation) is
//! `crate::oidc`'s.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::{Backend, Conn, SqlStore};
use crate::crypto::column;
use crate::domain::UserId;
use crate::error::Result;
use crate::store::{OidcClaims, OidcLogin, OidcOutcome, SingleSignOn};
use crate::time::{new_id, now_ms};

/// A sign-in not finished within this long is forgotten.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// A username for a new account from what the provider says: `preferred_username`, else the
/// email's local part, else "user"; only the characters a username may have, 3 to 28 of
/// them (room for a suffix that makes it unique).
pub(crate) fn username_base(claims: &OidcClaims) -> String {
    let raw = claims
        .preferred_username
        .clone()
        .or_else(|| {
            claims
                .email
                .as_deref()
                .and_then(|e| e.split('@').next())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(28)
        .collect();
    if name.len() < 3 {
        name = format!("user{name}");
    }
    name
}

impl<B: Backend> SqlStore<B>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> Option<bool>: Encode<'q, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'n> &'n str: ColumnIndex<<B::Db as Database>::Row>,
{
    async fn username_free(c: &mut Conn<B>, key: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username_key = $1")
            .bind(key)
            .fetch_one(&mut *c)
            .await?;
        Ok(n == 0)
    }
}

#[async_trait]
impl<B: Backend> SingleSignOn for SqlStore<B>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> Option<bool>: Encode<'q, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'n> &'n str: ColumnIndex<<B::Db as Database>::Row>,
{
    async fn begin_oidc_login(&self, login: OidcLogin) -> Result<()> {
        let mut c = self.write.acquire().await?;
        let now = now_ms();
        // Sign-ins nobody finished go as new ones come.
        sqlx::query("DELETE FROM oidc_logins WHERE created_at < $1")
            .bind(now - LOGIN_TTL_MS)
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_logins (state_hash, provider, nonce, verifier, redirect_to, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&login.state_hash)
        .bind(&login.provider)
        .bind(&login.nonce)
        .bind(&login.verifier)
        .bind(&login.redirect_to)
        .bind(now)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn take_oidc_login(&self, state_hash: &str) -> Result<Option<OidcLogin>> {
        let mut c = self.write.acquire().await?;
        let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
            "DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING provider, nonce, verifier, redirect_to, created_at",
        )
        .bind(state_hash)
        .fetch_optional(&mut *c)
        .await?;
        Ok(row.filter(|r| r.4 >= now_ms() - LOGIN_TTL_MS).map(
            |(provider, nonce, verifier, redirect_to, _)| OidcLogin {
                state_hash: state_hash.to_owned(),
                provider,
                nonce,
                verifier,
                redirect_to,
            },
        ))
    }

    async fn oidc_account(
        &self,
        provider: &str,
        claims: &OidcClaims,
        may_register: bool,
    ) -> Result<OidcOutcome> {
        let mut w = self.write_tx().await?;
        let out: Result<OidcOutcome> = async {
            let known: Option<String> = sqlx::query_scalar(
                "SELECT user_id FROM oidc_identities WHERE provider = $1 AND subject = $2",
            )
            .bind(provider)
            .bind(&claims.subject)
            .fetch_optional(w.conn())
            .await?;
            if let Some(id) = known {
                return Ok(OidcOutcome::User(UserId::trusted(id)));
            }
            let email = claims.email.as_deref().map(str::to_lowercase);
            let email_hash = email
                .as_deref()
                .map(|e| self.keys().lookup_hash(column::USER_EMAIL, e));
            // Linked only on the provider's word that the email is the person's.
            let same_email: Option<String> = match (&email_hash, claims.email_verified) {
                (Some(h), true) => {
                    sqlx::query_scalar("SELECT id FROM users WHERE email_hash = $1 AND bot_owner_id IS NULL")
                        .bind(h)
                        .fetch_optional(w.conn())
                        .await?
                }
                _ => None,
            };
            let user = match same_email {
                Some(id) => id,
                None if !may_register => return Ok(OidcOutcome::RegistrationClosed),
                None => {
                    let base = username_base(claims);
                    let mut username = base.clone();
                    let mut n = 1;
                    while !Self::username_free(w.conn(), &username.to_ascii_lowercase()).await? {
                        n += 1;
                        username = format!("{base}-{n}");
                    }
                    let display: String = claims
                        .name
                        .as_deref()
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .unwrap_or(&username)
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(crate::domain::MAX_DISPLAY_NAME)
                        .collect();
                    // The email is kept only when verified and nobody has it.
                    let (email, email_hash) = match (claims.email_verified, email, email_hash) {
                        (true, Some(e), Some(h)) => {
                            let taken: i64 = sqlx::query_scalar(
                                "SELECT COUNT(*) FROM users WHERE email_hash = $1",
                            )
                            .bind(&h)
                            .fetch_one(w.conn())
                            .await?;
                            if taken == 0 {
                                (Some(self.keys().encrypt(column::USER_EMAIL, &e)), Some(h))
                            } else {
                                (None, None)
                            }
                        }
                        _ => (None, None),
                    };
                    let id = new_id();
                    // '!oidc' is no argon2 hash: the account has no password.
                    sqlx::query(
                        "INSERT INTO users (id, username, username_key, email, email_hash, display_name, display_key, password_hash, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, '!oidc', $8)",
                    )
                    .bind(&id)
                    .bind(&username)
                    .bind(username.to_ascii_lowercase())
                    .bind(email)
                    .bind(email_hash)
                    .bind(&display)
                    .bind(display.to_lowercase())
                    .bind(now_ms())
                    .execute(w.conn())
                    .await?;
                    id
                }
            };
            sqlx::query(
                "INSERT INTO oidc_identities (provider, subject, user_id, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(provider)
            .bind(&claims.subject)
            .bind(&user)
            .bind(now_ms())
            .execute(w.conn())
            .await?;
            Ok(OidcOutcome::User(UserId::trusted(user)))
        }
        .await;
        w.finish(out).await
    }

    async fn create_oidc_code(
        &self,
        code_hash: &str,
        user_id: &UserId,
        expires_ms: i64,
    ) -> Result<()> {
        let mut c = self.write.acquire().await?;
        sqlx::query("DELETE FROM oidc_codes WHERE expires_at < $1")
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
        sqlx::query("INSERT INTO oidc_codes (code_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(code_hash)
            .bind(user_id.as_str())
            .bind(expires_ms)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn take_oidc_code(&self, code_hash: &str) -> Result<Option<UserId>> {
        let mut c = self.write.acquire().await?;
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM oidc_codes WHERE code_hash = $1 RETURNING user_id, expires_at",
        )
        .bind(code_hash)
        .fetch_optional(&mut *c)
        .await?;
        Ok(row
            .filter(|(_, exp)| *exp > now_ms())
            .map(|(u, _)| UserId::trusted(u)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_come_from_the_provider_cleaned() {
        let c = |pu: Option<&str>, email: Option<&str>| OidcClaims {
            subject: "s".into(),
            preferred_username: pu.map(str::to_owned),
            email: email.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(username_base(&c(Some("Ann Lee!"), None)), "AnnLee");
        assert_eq!(username_base(&c(None, Some("bob.s@x.org"))), "bob.s");
        assert_eq!(username_base(&c(Some("é"), None)), "user");
        assert_eq!(username_base(&c(None, None)), "user");
        assert_eq!(username_base(&c(Some(&"a".repeat(50)), None)).len(), 28);
    }
}
