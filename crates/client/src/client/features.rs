//! Reactions, search and mute (contract additions of 2026-12-07, "Reactions", "Search",
//! "Mentions").

use chatnode_protocol::{MuteRequest, MuteState, ReactionUsersList, SearchResults};
use reqwest::Method;

use super::{Client, push_opt, seg, to_value};
use crate::error::Result;

impl Client {
    /// `PUT /conversations/{id}/messages/{seq}/reactions/{emoji}` (idempotent).
    pub async fn react(&self, conversation_id: &str, seq: i64, emoji: &str) -> Result<()> {
        let path = format!(
            "/conversations/{}/messages/{seq}/reactions/{}",
            seg(conversation_id),
            seg(emoji)
        );
        self.empty(Method::PUT, &path, None).await
    }

    /// `DELETE /conversations/{id}/messages/{seq}/reactions/{emoji}` (idempotent).
    pub async fn unreact(&self, conversation_id: &str, seq: i64, emoji: &str) -> Result<()> {
        let path = format!(
            "/conversations/{}/messages/{seq}/reactions/{}",
            seg(conversation_id),
            seg(emoji)
        );
        self.empty(Method::DELETE, &path, None).await
    }

    /// `GET /conversations/{id}/messages/{seq}/reactions` (extension): who reacted with what.
    pub async fn reactors(&self, conversation_id: &str, seq: i64) -> Result<ReactionUsersList> {
        let path = format!(
            "/conversations/{}/messages/{seq}/reactions",
            seg(conversation_id)
        );
        Ok(self.json(Method::GET, &path, &[], None).await?.1)
    }

    /// `GET /search/messages?q=&conversation_id=&limit=&before=`.
    pub async fn search_messages(
        &self,
        q: &str,
        conversation_id: Option<&str>,
        limit: Option<u32>,
        before: Option<&str>,
    ) -> Result<SearchResults> {
        let mut query = vec![("q", q.to_owned())];
        push_opt(&mut query, "conversation_id", conversation_id);
        push_opt(&mut query, "limit", limit);
        push_opt(&mut query, "before", before);
        Ok(self
            .json(Method::GET, "/search/messages", &query, None)
            .await?
            .1)
    }

    /// `PUT /conversations/{id}/mute` (extension): `until` None mutes forever; `mentions`
    /// false mutes mentions too.
    pub async fn mute(
        &self,
        conversation_id: &str,
        until: Option<&str>,
        mentions: Option<bool>,
    ) -> Result<MuteState> {
        let path = format!("/conversations/{}/mute", seg(conversation_id));
        let body = to_value(&MuteRequest {
            until: until.map(str::to_owned),
            mentions,
        })?;
        Ok(self.json(Method::PUT, &path, &[], Some(body)).await?.1)
    }
}
