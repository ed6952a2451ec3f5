//! Bots, incoming webhooks, service notifications and single sign-on (contract additions of
//! 2026-12-07).

use chatnode_protocol::{
    AuthResponse, BotCreated, BotList, BotToken, CreateBotRequest, CreateWebhookRequest, CreatedId,
    HookAccepted, NotificationList, NotificationsReadRequest, NotifyRequest, OidcExchangeRequest,
    ProviderList, WebhookCreated, WebhookList,
};
use reqwest::Method;
use serde_json::Value;

use super::{Auth, Client, push_opt, seg, to_value};
use crate::error::{ClientError, Result};

impl Client {
    /// A client that authenticates with a bot's token (REST and the WebSocket `auth` frame).
    /// Bots have no refresh token: a refused token ends a reconnecting session.
    pub fn for_bot(base_url: &str, token: &str) -> Client {
        let c = Client::new(base_url);
        c.set_access_token(token);
        c
    }

    /// `POST /bots` `{username, display_name}`: the bot and its token (shown only here).
    pub async fn create_bot(
        &self,
        username: &str,
        display_name: Option<&str>,
    ) -> Result<BotCreated> {
        let body = to_value(&CreateBotRequest {
            username: username.to_owned(),
            display_name: display_name.map(str::to_owned),
        })?;
        Ok(self.json(Method::POST, "/bots", &[], Some(body)).await?.1)
    }

    /// `GET /bots`: the caller's bots.
    pub async fn bots(&self) -> Result<BotList> {
        Ok(self.json(Method::GET, "/bots", &[], None).await?.1)
    }

    /// `POST /bots/{id}/token`: a new token; the old one stops working.
    pub async fn rotate_bot_token(&self, bot_id: &str) -> Result<String> {
        let path = format!("/bots/{}/token", seg(bot_id));
        let (_, t): (u16, BotToken) = self.json(Method::POST, &path, &[], None).await?;
        Ok(t.token)
    }

    /// `DELETE /bots/{id}`.
    pub async fn delete_bot(&self, bot_id: &str) -> Result<()> {
        let path = format!("/bots/{}", seg(bot_id));
        self.empty(Method::DELETE, &path, None).await
    }

    /// `POST /conversations/{id}/webhooks` `{name}`: the webhook and its URL (shown only
    /// here).
    pub async fn create_webhook(
        &self,
        conversation_id: &str,
        name: &str,
    ) -> Result<WebhookCreated> {
        let path = format!("/conversations/{}/webhooks", seg(conversation_id));
        let body = to_value(&CreateWebhookRequest {
            name: name.to_owned(),
        })?;
        Ok(self.json(Method::POST, &path, &[], Some(body)).await?.1)
    }

    /// `GET /conversations/{id}/webhooks`.
    pub async fn webhooks(&self, conversation_id: &str) -> Result<WebhookList> {
        let path = format!("/conversations/{}/webhooks", seg(conversation_id));
        Ok(self.json(Method::GET, &path, &[], None).await?.1)
    }

    /// `DELETE /conversations/{id}/webhooks/{webhook_id}`.
    pub async fn delete_webhook(&self, conversation_id: &str, webhook_id: &str) -> Result<()> {
        let path = format!(
            "/conversations/{}/webhooks/{}",
            seg(conversation_id),
            seg(webhook_id)
        );
        self.empty(Method::DELETE, &path, None).await
    }

    /// `POST` a Slack-style payload to a webhook's URL (absolute, as the server gave it; no
    /// token is sent).
    pub async fn post_hook(&self, url: &str, payload: &Value) -> Result<HookAccepted> {
        let resp = self
            .send_url(Method::POST, url, Some(payload.clone()), Auth::Never)
            .await?;
        super::decode(url, &resp.body)
    }

    /// `POST /notify` with a service token (not this client's token): the notification's ID.
    pub async fn notify(&self, service_token: &str, req: &NotifyRequest) -> Result<String> {
        let c = self.with_token(service_token);
        let (status, r): (u16, CreatedId) = c
            .json(Method::POST, "/notify", &[], Some(to_value(req)?))
            .await?;
        if status != 202 {
            return Err(ClientError::Decode(format!(
                "POST /notify answered {status}, not 202"
            )));
        }
        Ok(r.id)
    }

    /// `GET /notifications?before=&limit=`: newest first.
    pub async fn notifications(
        &self,
        before: Option<&str>,
        limit: Option<u32>,
    ) -> Result<NotificationList> {
        let mut query = Vec::new();
        push_opt(&mut query, "before", before);
        push_opt(&mut query, "limit", limit);
        Ok(self
            .json(Method::GET, "/notifications", &query, None)
            .await?
            .1)
    }

    /// `POST /notifications/read` (extension): all, or up to (and with) `up_to`.
    pub async fn mark_notifications_read(&self, up_to: Option<&str>) -> Result<()> {
        let body = to_value(&NotificationsReadRequest {
            up_to: up_to.map(str::to_owned),
        })?;
        self.empty(Method::POST, "/notifications/read", Some(body))
            .await
    }

    /// `GET /auth/providers` (no auth).
    pub async fn providers(&self) -> Result<ProviderList> {
        let resp = self
            .send(Method::GET, "/auth/providers", &[], None, Auth::Never)
            .await?;
        super::decode("/auth/providers", &resp.body)
    }

    /// `POST /auth/oidc/exchange` `{code}` (no auth): logs in like `login`, storing the
    /// tokens.
    pub async fn oidc_exchange(&self, code: &str) -> Result<AuthResponse> {
        let body = to_value(&OidcExchangeRequest {
            code: code.to_owned(),
        })?;
        let resp = self
            .send(
                Method::POST,
                "/auth/oidc/exchange",
                &[],
                Some(body),
                Auth::Never,
            )
            .await?;
        let auth: AuthResponse = super::decode("/auth/oidc/exchange", &resp.body)?;
        self.set_tokens(&auth.access_token, &auth.refresh_token);
        Ok(auth)
    }
}
