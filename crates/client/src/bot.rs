//! [`BotSession`]: what a bot author needs. Connect with the bot's token, receive the
//! messages sent to the bot (in direct chats and in its groups), and reply.
//!
//! The session reconnects on its own and resumes with `sync`, so no message is missed
//! across a disconnect. A bot has no refresh token: when the server refuses its token (it
//! was rotated, or the bot deleted) the session ends and [`BotSession::next_message`]
//! returns `None`.

use chatnode_protocol::{Message, MessageKind, SendMessageRequest, ServerFrame, User};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::resilient::ResilientWs;

pub struct BotSession {
    client: Client,
    ws: ResilientWs,
    me: User,
}

impl BotSession {
    /// Connects as the bot whose token this is (`POST /bots` gave it). Returns once the
    /// WebSocket is up: from then on no message for the bot is missed.
    pub async fn connect(base_url: &str, token: &str) -> Result<BotSession> {
        let client = Client::for_bot(base_url, token);
        let me = client.me().await?.user;
        let ws = client.resilient_ws(None);
        let deadline = tokio::time::Instant::now() + crate::ws::CONNECT_TIMEOUT;
        while !ws.is_connected() {
            if ws.is_finished() || tokio::time::Instant::now() > deadline {
                return Err(ClientError::Closed {
                    code: None,
                    reason: ws
                        .last_error()
                        .unwrap_or_else(|| "the bot's WebSocket did not connect".into()),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(BotSession { client, ws, me })
    }

    /// The bot's own account.
    pub fn me(&self) -> &User {
        &self.me
    }

    /// The REST client, authenticated as the bot.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The next message someone else sent where the bot is a member (system messages and
    /// the bot's own are skipped); `None` once the session ended.
    pub async fn next_message(&mut self) -> Option<Message> {
        loop {
            match self.ws.recv().await? {
                ServerFrame::Message { message, .. }
                    if message.sender_id != self.me.id
                        && message.kind != MessageKind::System
                        && !message.deleted =>
                {
                    return Some(message);
                }
                _ => continue,
            }
        }
    }

    /// Answers `to` in its conversation, as a reply to it. Idempotent: the same answer to
    /// the same message is never posted twice (its `client_id` comes from the message).
    pub async fn reply(&self, to: &Message, text: &str) -> Result<Message> {
        let req = SendMessageRequest {
            client_id: format!("reply-{}", to.id),
            body: text.to_owned(),
            reply_to_seq: Some(to.seq),
            ..Default::default()
        };
        Ok(self.client.send_message(&to.conversation_id, &req).await?.0)
    }
}
