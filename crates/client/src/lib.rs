//! `chatnode-client`: the async Rust SDK of a ChatNode server (`shared/api-contract.md`).
//!
//! This crate owns the client side of the contract and nothing else:
//! - [`Client`]: one method per REST endpoint (media aside), a token store shared by clones,
//!   raw escape hatches ([`Client::raw`], [`Client::raw_bytes`]) for tests that need exact
//!   statuses or malformed bodies, and the health endpoints;
//! - [`WsConnection`]: one WebSocket connection (`auth` → `ready`, `send` → `ack`, `sync` →
//!   `synced`, close codes as errors), with no reconnection;
//! - [`ResilientWs`]: a session that reconnects with bounded exponential [`Backoff`] and
//!   jitter, refreshes the access token when the server refuses it, resumes with `sync`, and
//!   delivers frames through a channel with durable events deduplicated by `stream_pos`;
//! - [`BotSession`]: a bot's connection (its token, the messages sent to it, replies);
//! - [`ClientError`]: what the server said (HTTP status + contract code, `error` frames, close
//!   codes) kept apart from transport failures.
//!
//! Wire shapes come from [`chatnode_protocol`] (re-exported as [`protocol`]); this crate never
//! redefines them. It holds no server logic and does not retry REST calls: what the server
//! answers is what the caller sees.
//!
//! ```no_run
//! # async fn demo() -> chatnode_client::Result<()> {
//! use chatnode_client::{Client, protocol::RegisterRequest};
//! let alice = Client::new("http://127.0.0.1:8080");
//! alice.register(&RegisterRequest {
//!     email: Some("alice@example.com".into()),
//!     username: "alice".into(),
//!     password: "correct horse battery".into(),
//!     ..Default::default()
//! }).await?;
//! let group = alice.create_group(&chatnode_client::protocol::CreateGroupRequest {
//!     name: "team".into(),
//!     ..Default::default()
//! }).await?;
//! let mut ws = alice.connect_ws().await?;
//! let msg = ws.send_message(&group.id, "c-1", "hello").await?;
//! assert_eq!(msg.seq, 1);
//! # Ok(()) }
//! ```

mod bot;
mod client;
mod error;
mod resilient;
mod ws;

pub use bot::BotSession;
pub use chatnode_protocol as protocol;
pub use client::{API_PREFIX, Client, FriendRequestOutcome, RawResponse};
pub use error::{ClientError, Result};
pub use reqwest::Method;
pub use resilient::{Backoff, ResilientConfig, ResilientWs};
pub use ws::{AUTH_TIMEOUT, CONNECT_TIMEOUT, CloseInfo, DEFAULT_WAIT, Ready, WsConnection};

#[cfg(test)]
mod mock_tests;
