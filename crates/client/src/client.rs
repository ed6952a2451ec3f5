//! [`Client`]: the REST half of the SDK, and the token store the WebSocket half uses.
//!
//! One method per REST endpoint of the contract (media upload/download aside), each returning
//! the wire types of `chatnode-protocol`. Non-2xx answers become [`ClientError::Api`] with the
//! contract's status and code. Nothing here retries or refreshes on its own: a 401 is returned
//! as is, so tests see exactly what the server said. Call [`Client::refresh`] yourself (the
//! reconnecting WebSocket session does so on 4001).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chatnode_protocol::{
    AuthResponse, BlockList, Conversation, ConversationList, CreateGroupRequest,
    CreateInviteRequest, DeleteScope, EditMessageRequest, FriendAdded, FriendList, FriendRequest,
    FriendRequestList, GroupDirectory, Invite, LoginRequest, Me, Media, MemberList, Message,
    MessageList, ReadMarker, ReadRequest, RefreshRequest, RegisterRequest, Role, RoleRequest,
    SendMessageRequest, TokenPair, UpdateGroupRequest, UpdateProfileRequest, User, UserIdRequest,
    UserIdsRequest, UserList,
};
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ClientError, Result, snippet};

// More endpoints, by area, in `client/`: they use this module's plumbing.
mod features;
mod integrations;
mod operators;

/// Prefix of every REST path of the contract.
pub const API_PREFIX: &str = "/api/v1";
/// Paths served outside [`API_PREFIX`].
const ROOT_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// Per-request timeout of the HTTP client (a hung server must not hang a test forever).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer to `POST /friends/requests`.
#[derive(Debug, Clone, PartialEq)]
pub enum FriendRequestOutcome {
    /// 201: a pending request was created.
    Requested(FriendRequest),
    /// 200: the other user had already asked, so you are friends now.
    Friends(User),
}

/// A response as it came, for tests that check exact statuses, headers and bodies.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A header's value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Decode(format!("JSON body ({e}): {}", snippet(&self.body))))
    }
}

#[derive(Default, Clone)]
struct Tokens {
    access: Option<String>,
    refresh: Option<String>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    base: String,
    tokens: Mutex<Tokens>,
}

/// Whether a request carries the stored access token.
#[derive(Clone, Copy, PartialEq)]
enum Auth {
    /// Fail with [`ClientError::NoToken`] if there is none.
    Required,
    /// Send it if there is one.
    IfAny,
    /// Never.
    Never,
}

/// An async client of one ChatNode server.
///
/// Cheap to clone; clones share the connection pool **and the token store**, so a login or a
/// refresh through one clone is seen by all. Use [`Client::with_token`] or a new
/// [`Client::new`] for an independent identity.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.tokens();
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .field("access_token", &t.access.as_ref().map(|_| "<redacted>"))
            .field("refresh_token", &t.refresh.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`), not logged in.
    /// A bad URL is reported by the first call that uses it.
    pub fn new(base_url: &str) -> Client {
        // reqwest may be built with `rustls-no-provider` when this crate shares a build with
        // the server (feature unification); make sure a crypto provider exists either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client::from_parts(
            http,
            base_url.trim_end_matches('/').to_owned(),
            Tokens::default(),
        )
    }

    fn from_parts(http: reqwest::Client, base: String, tokens: Tokens) -> Client {
        Client {
            inner: Arc::new(Inner {
                http,
                base,
                tokens: Mutex::new(tokens),
            }),
        }
    }

    /// A new client of the same server (sharing the connection pool) with its own token
    /// store holding only this access token.
    pub fn with_token(&self, access_token: impl Into<String>) -> Client {
        Client::from_parts(
            self.inner.http.clone(),
            self.inner.base.clone(),
            Tokens {
                access: Some(access_token.into()),
                refresh: None,
            },
        )
    }

    /// A new client of the same server (sharing the connection pool) with no tokens.
    pub fn anonymous(&self) -> Client {
        Client::from_parts(
            self.inner.http.clone(),
            self.inner.base.clone(),
            Tokens::default(),
        )
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The WebSocket URL of this server: `http`→`ws`, `https`→`wss`, path `/api/v1/ws`.
    pub fn ws_url(&self) -> Result<String> {
        ws_url(&self.inner.base)
    }

    fn tokens(&self) -> MutexGuard<'_, Tokens> {
        // A panic while holding this lock cannot leave the tokens half-written.
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored access token.
    pub fn access_token(&self) -> Option<String> {
        self.tokens().access.clone()
    }

    /// The stored refresh token.
    pub fn refresh_token(&self) -> Option<String> {
        self.tokens().refresh.clone()
    }

    /// Replaces both stored tokens.
    pub fn set_tokens(&self, access_token: impl Into<String>, refresh_token: impl Into<String>) {
        let mut t = self.tokens();
        t.access = Some(access_token.into());
        t.refresh = Some(refresh_token.into());
    }

    /// Replaces only the stored access token.
    pub fn set_access_token(&self, access_token: impl Into<String>) {
        self.tokens().access = Some(access_token.into());
    }

    /// Forgets both tokens.
    pub fn clear_tokens(&self) {
        *self.tokens() = Tokens::default();
    }

    // -----------------------------------------------------------------------------------------
    // Plumbing
    // -----------------------------------------------------------------------------------------

    /// `base + path + ?query` as a URL.
    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url> {
        let full = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{}", self.inner.base, path)
        };
        let mut url =
            Url::parse(&full).map_err(|e| ClientError::InvalidUrl(format!("{full}: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    fn builder(&self, method: Method, url: Url, auth: Auth) -> Result<reqwest::RequestBuilder> {
        let rb = self.inner.http.request(method, url);
        let token = match auth {
            Auth::Never => None,
            Auth::IfAny => self.access_token(),
            Auth::Required => Some(self.access_token().ok_or(ClientError::NoToken("access"))?),
        };
        Ok(match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        })
    }

    async fn execute(rb: reqwest::RequestBuilder) -> Result<RawResponse> {
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Sends a JSON request to an `/api/v1` path; a non-2xx answer becomes an error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        auth: Auth,
    ) -> Result<RawResponse> {
        let url = self.url(&format!("{API_PREFIX}{path}"), query)?;
        let mut rb = self.builder(method, url, auth)?;
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = Self::execute(rb).await?;
        if !(200..300).contains(&resp.status) {
            return Err(ClientError::from_response(resp.status, &resp.body));
        }
        Ok(resp)
    }

    /// Like [`send`](Self::send), to a full URL (or a path outside `/api/v1`).
    async fn send_url(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
        auth: Auth,
    ) -> Result<RawResponse> {
        let url = self.url(url, &[])?;
        let mut rb = self.builder(method, url, auth)?;
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = Self::execute(rb).await?;
        if !(200..300).contains(&resp.status) {
            return Err(ClientError::from_response(resp.status, &resp.body));
        }
        Ok(resp)
    }

    /// [`send`](Self::send) with the access token, decoding the 2xx body as `T`.
    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<(u16, T)> {
        let resp = self.send(method, path, query, body, Auth::Required).await?;
        Ok((resp.status, decode(path, &resp.body)?))
    }

    /// Like [`json`](Self::json), but `None` when the server answered 2xx with no body
    /// (used where the contract does not fix the response).
    async fn json_opt<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<T>> {
        let resp = self.send(method, path, &[], body, Auth::Required).await?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        decode(path, &resp.body).map(Some)
    }

    /// [`send`](Self::send) with the access token, ignoring any 2xx body.
    async fn empty(&self, method: Method, path: &str, body: Option<Value>) -> Result<()> {
        self.send(method, path, &[], body, Auth::Required)
            .await
            .map(|_| ())
    }

    fn store_pair(&self, access: &str, refresh: &str) {
        self.set_tokens(access, refresh);
    }

    // -----------------------------------------------------------------------------------------
    // Raw access (tests of exact statuses and malformed input)
    // -----------------------------------------------------------------------------------------

    /// Sends `body` (if any) as JSON with the stored access token (if any) and returns the
    /// status and the body as JSON — whatever the status. An empty body gives `Value::Null`,
    /// a body that is not JSON gives `Value::String` of its text.
    ///
    /// `path` is taken as is when it starts with `/api/`, is `/healthz`, `/readyz` or
    /// `/metrics`, or is a full `http(s)://` URL; any other path is under `/api/v1`
    /// (so `raw(GET, "/users/me", None)` works).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let url = self.url(&resolve_raw_path(path), &[])?;
        let mut rb = self.builder(method, url, Auth::IfAny)?;
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = Self::execute(rb).await?;
        let value = if resp.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&resp.body).unwrap_or_else(|_| Value::String(resp.text()))
        };
        Ok((resp.status, value))
    }

    /// Sends `body` as is, with `content_type` (no `Content-Type` header when `None`) and the
    /// stored access token when `with_auth`. Path rules as in [`raw`](Self::raw).
    pub async fn raw_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        with_auth: bool,
    ) -> Result<RawResponse> {
        let url = self.url(&resolve_raw_path(path), &[])?;
        let auth = if with_auth {
            Auth::Required
        } else {
            Auth::Never
        };
        let mut rb = self.builder(method, url, auth)?;
        if let Some(ct) = content_type {
            rb = rb.header(CONTENT_TYPE, ct);
        }
        Self::execute(rb.body(body)).await
    }

    /// A request with extra headers (e.g. `Range`, `If-None-Match`, `Cookie`), for tests and
    /// tools that need the exact response.
    pub async fn raw_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        with_auth: bool,
    ) -> Result<RawResponse> {
        let url = self.url(&resolve_raw_path(path), &[])?;
        let auth = if with_auth {
            Auth::Required
        } else {
            Auth::Never
        };
        let mut rb = self.builder(method, url, auth)?;
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        Self::execute(rb).await
    }

    // -----------------------------------------------------------------------------------------
    // Media
    // -----------------------------------------------------------------------------------------

    /// `POST /media` with the raw bytes; the server decides the type from the content.
    pub async fn upload(&self, bytes: Vec<u8>, content_type: &str, name: &str) -> Result<Media> {
        let url = self.url(&format!("{API_PREFIX}/media"), &[("name", name.to_owned())])?;
        let rb = self
            .builder(Method::POST, url, Auth::Required)?
            .header(CONTENT_TYPE, content_type)
            .body(bytes);
        let resp = Self::execute(rb).await?;
        if resp.status != 201 {
            return Err(ClientError::from_response(resp.status, &resp.body));
        }
        serde_json::from_slice(&resp.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Downloads a media URL (`Media::url` or `thumbnail_url`) with the bearer token.
    pub async fn download(&self, url_path: &str) -> Result<Vec<u8>> {
        let resp = self
            .raw_with_headers(Method::GET, url_path, &[], true)
            .await?;
        if resp.status != 200 {
            return Err(ClientError::from_response(resp.status, &resp.body));
        }
        Ok(resp.body.to_vec())
    }

    // -----------------------------------------------------------------------------------------
    // Operations
    // -----------------------------------------------------------------------------------------

    async fn text(&self, path: &str) -> Result<String> {
        let url = self.url(path, &[])?;
        let resp = Self::execute(self.builder(Method::GET, url, Auth::Never)?).await?;
        if !(200..300).contains(&resp.status) {
            return Err(ClientError::from_response(resp.status, &resp.body));
        }
        Ok(resp.text())
    }

    /// `GET /healthz`: the body text of a 2xx answer.
    pub async fn healthz(&self) -> Result<String> {
        self.text("/healthz").await
    }

    /// `GET /readyz`: the body text of a 2xx answer (a 503 is an [`ClientError::Api`]).
    pub async fn readyz(&self) -> Result<String> {
        self.text("/readyz").await
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        self.text("/metrics").await
    }

    // -----------------------------------------------------------------------------------------
    // Accounts
    // -----------------------------------------------------------------------------------------

    /// `POST /auth/register` → 201. Stores the returned tokens.
    pub async fn register(&self, req: &RegisterRequest) -> Result<AuthResponse> {
        let resp = self
            .send(
                Method::POST,
                "/auth/register",
                &[],
                Some(to_value(req)?),
                Auth::Never,
            )
            .await?;
        let auth: AuthResponse = decode("/auth/register", &resp.body)?;
        self.store_pair(&auth.access_token, &auth.refresh_token);
        Ok(auth)
    }

    /// `POST /auth/login` (`login` is an email, phone or username). Stores the tokens.
    pub async fn login(&self, login: &str, password: &str) -> Result<AuthResponse> {
        let req = LoginRequest {
            login: login.to_owned(),
            password: password.to_owned(),
        };
        let resp = self
            .send(
                Method::POST,
                "/auth/login",
                &[],
                Some(to_value(&req)?),
                Auth::Never,
            )
            .await?;
        let auth: AuthResponse = decode("/auth/login", &resp.body)?;
        self.store_pair(&auth.access_token, &auth.refresh_token);
        Ok(auth)
    }

    /// `POST /auth/refresh` with the stored refresh token; stores the rotated pair.
    pub async fn refresh(&self) -> Result<TokenPair> {
        let token = self
            .refresh_token()
            .ok_or(ClientError::NoToken("refresh"))?;
        self.refresh_with(&token).await
    }

    /// `POST /auth/refresh` with an explicit refresh token (e.g. a spent one, to test reuse
    /// detection); stores the new pair on success.
    pub async fn refresh_with(&self, refresh_token: &str) -> Result<TokenPair> {
        let req = RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        let resp = self
            .send(
                Method::POST,
                "/auth/refresh",
                &[],
                Some(to_value(&req)?),
                Auth::Never,
            )
            .await?;
        let pair: TokenPair = decode("/auth/refresh", &resp.body)?;
        self.store_pair(&pair.access_token, &pair.refresh_token);
        Ok(pair)
    }

    /// `POST /auth/logout` with the stored refresh token → 204; forgets both tokens.
    pub async fn logout(&self) -> Result<()> {
        let token = self
            .refresh_token()
            .ok_or(ClientError::NoToken("refresh"))?;
        let req = RefreshRequest {
            refresh_token: token,
        };
        // Send the access token too, if any: the contract lists logout as authenticated-
        // or-not, and a server that wants it finds it.
        self.send(
            Method::POST,
            "/auth/logout",
            &[],
            Some(to_value(&req)?),
            Auth::IfAny,
        )
        .await?;
        self.clear_tokens();
        Ok(())
    }

    /// `GET /users/me`.
    pub async fn me(&self) -> Result<Me> {
        Ok(self.json(Method::GET, "/users/me", &[], None).await?.1)
    }

    /// `PATCH /users/me`; the updated profile (fetched again if the server answers with no
    /// body).
    pub async fn update_me(&self, req: &UpdateProfileRequest) -> Result<Me> {
        match self
            .json_opt(Method::PATCH, "/users/me", Some(to_value(req)?))
            .await?
        {
            Some(me) => Ok(me),
            None => self.me().await,
        }
    }

    /// `GET /users/{id}`.
    pub async fn get_user(&self, user_id: &str) -> Result<User> {
        let path = format!("/users/{}", seg(user_id));
        Ok(self.json(Method::GET, &path, &[], None).await?.1)
    }

    /// `GET /users?q=&limit=&cursor=`.
    pub async fn search_users(
        &self,
        q: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<UserList> {
        let mut query = vec![("q", q.to_owned())];
        push_opt(&mut query, "limit", limit);
        push_opt(&mut query, "cursor", cursor);
        Ok(self.json(Method::GET, "/users", &query, None).await?.1)
    }

    // -----------------------------------------------------------------------------------------
    // Friends and blocks
    // -----------------------------------------------------------------------------------------

    /// `POST /friends/requests` `{user_id}`: 201 with a request, or 200 `{friend}` when the
    /// other user had already asked.
    pub async fn send_friend_request(&self, user_id: &str) -> Result<FriendRequestOutcome> {
        let path = "/friends/requests";
        let body = to_value(&UserIdRequest {
            user_id: user_id.to_owned(),
        })?;
        let resp = self
            .send(Method::POST, path, &[], Some(body), Auth::Required)
            .await?;
        let friends = match resp.status {
            201 => false,
            200 => true,
            // Any other 2xx: go by the shape.
            _ => decode::<Value>(path, &resp.body)?.get("friend").is_some(),
        };
        if friends {
            let added: FriendAdded = decode(path, &resp.body)?;
            Ok(FriendRequestOutcome::Friends(added.friend))
        } else {
            Ok(FriendRequestOutcome::Requested(decode(path, &resp.body)?))
        }
    }

    /// `GET /friends/requests` → `{incoming, outgoing}`.
    pub async fn friend_requests(&self) -> Result<FriendRequestList> {
        Ok(self
            .json(Method::GET, "/friends/requests", &[], None)
            .await?
            .1)
    }

    /// `POST /friends/requests/{id}/accept`.
    pub async fn accept_request(&self, request_id: &str) -> Result<()> {
        let path = format!("/friends/requests/{}/accept", seg(request_id));
        self.empty(Method::POST, &path, None).await
    }

    /// `POST /friends/requests/{id}/decline`.
    pub async fn decline_request(&self, request_id: &str) -> Result<()> {
        let path = format!("/friends/requests/{}/decline", seg(request_id));
        self.empty(Method::POST, &path, None).await
    }

    /// `DELETE /friends/requests/{id}` (cancel your own request).
    pub async fn cancel_request(&self, request_id: &str) -> Result<()> {
        let path = format!("/friends/requests/{}", seg(request_id));
        self.empty(Method::DELETE, &path, None).await
    }

    /// `GET /friends`.
    pub async fn friends(&self) -> Result<FriendList> {
        Ok(self.json(Method::GET, "/friends", &[], None).await?.1)
    }

    /// `DELETE /friends/{user_id}`.
    pub async fn remove_friend(&self, user_id: &str) -> Result<()> {
        let path = format!("/friends/{}", seg(user_id));
        self.empty(Method::DELETE, &path, None).await
    }

    /// `PUT /blocks/{user_id}`.
    pub async fn block(&self, user_id: &str) -> Result<()> {
        let path = format!("/blocks/{}", seg(user_id));
        self.empty(Method::PUT, &path, None).await
    }

    /// `DELETE /blocks/{user_id}`.
    pub async fn unblock(&self, user_id: &str) -> Result<()> {
        let path = format!("/blocks/{}", seg(user_id));
        self.empty(Method::DELETE, &path, None).await
    }

    /// `GET /blocks`.
    pub async fn blocks(&self) -> Result<BlockList> {
        Ok(self.json(Method::GET, "/blocks", &[], None).await?.1)
    }

    // -----------------------------------------------------------------------------------------
    // Conversations and groups
    // -----------------------------------------------------------------------------------------

    /// `POST /conversations/direct` `{user_id}`: the one direct conversation with a friend.
    pub async fn open_direct(&self, user_id: &str) -> Result<Conversation> {
        let body = to_value(&UserIdRequest {
            user_id: user_id.to_owned(),
        })?;
        Ok(self
            .json(Method::POST, "/conversations/direct", &[], Some(body))
            .await?
            .1)
    }

    /// `POST /groups` → 201 Conversation (the caller is `owner`).
    pub async fn create_group(&self, req: &CreateGroupRequest) -> Result<Conversation> {
        Ok(self
            .json(Method::POST, "/groups", &[], Some(to_value(req)?))
            .await?
            .1)
    }

    /// `GET /conversations` (first page, most recent activity first).
    pub async fn conversations(&self) -> Result<ConversationList> {
        self.conversations_page(None, None).await
    }

    /// `GET /conversations?limit=&cursor=`.
    pub async fn conversations_page(
        &self,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<ConversationList> {
        let mut query = Vec::new();
        push_opt(&mut query, "limit", limit);
        push_opt(&mut query, "cursor", cursor);
        Ok(self
            .json(Method::GET, "/conversations", &query, None)
            .await?
            .1)
    }

    /// `GET /conversations/{id}`.
    pub async fn conversation(&self, conversation_id: &str) -> Result<Conversation> {
        let path = format!("/conversations/{}", seg(conversation_id));
        Ok(self.json(Method::GET, &path, &[], None).await?.1)
    }

    /// `PATCH /groups/{id}` (admin or owner); the updated conversation (fetched again if the
    /// server answers with no body).
    pub async fn update_group(
        &self,
        group_id: &str,
        req: &UpdateGroupRequest,
    ) -> Result<Conversation> {
        let path = format!("/groups/{}", seg(group_id));
        match self
            .json_opt(Method::PATCH, &path, Some(to_value(req)?))
            .await?
        {
            Some(c) => Ok(c),
            None => self.conversation(group_id).await,
        }
    }

    /// `GET /groups?q=`: the directory of public groups (`q: None` lists them all).
    pub async fn group_directory(&self, q: Option<&str>) -> Result<GroupDirectory> {
        let mut query = Vec::new();
        push_opt(&mut query, "q", q);
        Ok(self.json(Method::GET, "/groups", &query, None).await?.1)
    }

    /// `POST /groups/{id}/join` (public groups); the conversation (fetched if the server
    /// answers with no body).
    pub async fn join_group(&self, group_id: &str) -> Result<Conversation> {
        let path = format!("/groups/{}/join", seg(group_id));
        match self.json_opt(Method::POST, &path, None).await? {
            Some(c) => Ok(c),
            None => self.conversation(group_id).await,
        }
    }

    /// `POST /groups/{id}/invites` → `{code, expires_at}` (admin or owner). `expires_in` is a
    /// lifetime in seconds (server default when `None`).
    pub async fn create_invite(&self, group_id: &str, expires_in: Option<i64>) -> Result<Invite> {
        let path = format!("/groups/{}/invites", seg(group_id));
        let body = to_value(&CreateInviteRequest { expires_in })?;
        Ok(self.json(Method::POST, &path, &[], Some(body)).await?.1)
    }

    /// `POST /invites/{code}/accept` → Conversation.
    pub async fn accept_invite(&self, code: &str) -> Result<Conversation> {
        let path = format!("/invites/{}/accept", seg(code));
        Ok(self.json(Method::POST, &path, &[], None).await?.1)
    }

    /// `GET /groups/{id}/members`.
    pub async fn members(&self, group_id: &str) -> Result<MemberList> {
        let path = format!("/groups/{}/members", seg(group_id));
        Ok(self.json(Method::GET, &path, &[], None).await?.1)
    }

    /// `POST /groups/{id}/members` `{user_ids}` (admin or owner; friends of the caller).
    pub async fn add_members<I, S>(&self, group_id: &str, user_ids: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let path = format!("/groups/{}/members", seg(group_id));
        let body = to_value(&UserIdsRequest {
            user_ids: user_ids.into_iter().map(Into::into).collect(),
        })?;
        self.empty(Method::POST, &path, Some(body)).await
    }

    /// `DELETE /groups/{id}/members/{user_id}`; with your own id, this is leaving the group.
    pub async fn remove_member(&self, group_id: &str, user_id: &str) -> Result<()> {
        let path = format!("/groups/{}/members/{}", seg(group_id), seg(user_id));
        self.empty(Method::DELETE, &path, None).await
    }

    /// `PATCH /groups/{id}/members/{user_id}` `{role}` (owner only).
    pub async fn set_role(&self, group_id: &str, user_id: &str, role: Role) -> Result<()> {
        let path = format!("/groups/{}/members/{}", seg(group_id), seg(user_id));
        let body = to_value(&RoleRequest { role })?;
        self.empty(Method::PATCH, &path, Some(body)).await
    }

    /// `POST /groups/{id}/transfer` `{user_id}` (owner only; the old owner becomes admin).
    pub async fn transfer(&self, group_id: &str, user_id: &str) -> Result<()> {
        let path = format!("/groups/{}/transfer", seg(group_id));
        let body = to_value(&UserIdRequest {
            user_id: user_id.to_owned(),
        })?;
        self.empty(Method::POST, &path, Some(body)).await
    }

    // -----------------------------------------------------------------------------------------
    // Messages
    // -----------------------------------------------------------------------------------------

    /// `GET /conversations/{id}/messages?before_seq=&after_seq=&limit=` (newest first with
    /// `before_seq`, oldest first with `after_seq`).
    pub async fn messages(
        &self,
        conversation_id: &str,
        before_seq: Option<i64>,
        after_seq: Option<i64>,
        limit: Option<u32>,
    ) -> Result<MessageList> {
        let path = format!("/conversations/{}/messages", seg(conversation_id));
        let mut query = Vec::new();
        push_opt(&mut query, "before_seq", before_seq);
        push_opt(&mut query, "after_seq", after_seq);
        push_opt(&mut query, "limit", limit);
        Ok(self.json(Method::GET, &path, &query, None).await?.1)
    }

    /// `POST /conversations/{id}/messages`: the message and whether it was created now
    /// (201, `true`) or is the original of a repeated `client_id` (200, `false`).
    pub async fn send_message(
        &self,
        conversation_id: &str,
        req: &SendMessageRequest,
    ) -> Result<(Message, bool)> {
        let path = format!("/conversations/{}/messages", seg(conversation_id));
        let (status, msg) = self
            .json(Method::POST, &path, &[], Some(to_value(req)?))
            .await?;
        Ok((msg, status == 201))
    }

    /// [`send_message`](Self::send_message) of a plain text body.
    pub async fn send_text(
        &self,
        conversation_id: &str,
        client_id: &str,
        body: &str,
    ) -> Result<Message> {
        let req = SendMessageRequest {
            client_id: client_id.to_owned(),
            body: body.to_owned(),
            ..Default::default()
        };
        Ok(self.send_message(conversation_id, &req).await?.0)
    }

    /// `PATCH /conversations/{id}/messages/{seq}` `{body}` (author only); the edited message
    /// (fetched if the server answers with no body).
    pub async fn edit_message(
        &self,
        conversation_id: &str,
        seq: i64,
        body: &str,
    ) -> Result<Message> {
        let path = format!("/conversations/{}/messages/{seq}", seg(conversation_id));
        let req = to_value(&EditMessageRequest {
            body: body.to_owned(),
        })?;
        if let Some(m) = self.json_opt(Method::PATCH, &path, Some(req)).await? {
            return Ok(m);
        }
        let page = self
            .messages(conversation_id, None, Some(seq - 1), Some(1))
            .await?;
        page.messages
            .into_iter()
            .find(|m| m.seq == seq)
            .ok_or_else(|| ClientError::Decode(format!("message {seq} missing after edit")))
    }

    /// `DELETE /conversations/{id}/messages/{seq}?for=everyone|me`.
    pub async fn delete_message(
        &self,
        conversation_id: &str,
        seq: i64,
        scope: DeleteScope,
    ) -> Result<()> {
        let path = format!("/conversations/{}/messages/{seq}", seg(conversation_id));
        self.send(
            Method::DELETE,
            &path,
            &[("for", scope.as_str().to_owned())],
            None,
            Auth::Required,
        )
        .await
        .map(|_| ())
    }

    /// `POST /conversations/{id}/read` `{seq}` (moves the marker forward only); the new
    /// marker (built from the conversation if the server answers with no body).
    pub async fn mark_read(&self, conversation_id: &str, seq: i64) -> Result<ReadMarker> {
        let path = format!("/conversations/{}/read", seg(conversation_id));
        let body = to_value(&ReadRequest { seq })?;
        if let Some(m) = self.json_opt(Method::POST, &path, Some(body)).await? {
            return Ok(m);
        }
        let c = self.conversation(conversation_id).await?;
        Ok(ReadMarker {
            conversation_id: c.id,
            last_read_seq: c.last_read_seq,
            unread_count: c.unread_count,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| ClientError::Decode(format!("request body: {e}")))
}

fn decode<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| ClientError::Decode(format!("response of {what} ({e}): {}", snippet(body))))
}

fn push_opt<T: ToString>(query: &mut Vec<(&'static str, String)>, key: &'static str, v: Option<T>) {
    if let Some(v) = v {
        query.push((key, v.to_string()));
    }
}

/// Percent-encodes one path segment (IDs are opaque, so never trust them to be URL-safe).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The server-root path of a [`Client::raw`] path (see there for the rules).
pub(crate) fn resolve_raw_path(path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_owned();
    }
    let bare = path.split(['?', '#']).next().unwrap_or(path);
    if path.starts_with("/api/") || path == "/api" || ROOT_PATHS.contains(&bare) {
        path.to_owned()
    } else if path.starts_with('/') {
        format!("{API_PREFIX}{path}")
    } else {
        format!("{API_PREFIX}/{path}")
    }
}

/// The WebSocket URL for a base URL: `http`→`ws`, `https`→`wss`, any base path kept, then
/// `/api/v1/ws`.
pub(crate) fn ws_url(base: &str) -> Result<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(r) = base.strip_prefix("http://") {
        format!("ws://{r}")
    } else if let Some(r) = base.strip_prefix("https://") {
        format!("wss://{r}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        return Err(ClientError::InvalidUrl(format!(
            "{base}: expected an http:// or https:// base URL"
        )));
    };
    let url = format!("{rest}{API_PREFIX}/ws");
    Url::parse(&url).map_err(|e| ClientError::InvalidUrl(format!("{url}: {e}")))?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_derivation() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/api/v1/ws"
        );
        assert_eq!(
            ws_url("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/api/v1/ws"
        );
        assert_eq!(
            ws_url("https://chat.example").unwrap(),
            "wss://chat.example/api/v1/ws"
        );
        assert_eq!(
            ws_url("http://host:1/prefix").unwrap(),
            "ws://host:1/prefix/api/v1/ws"
        );
        assert!(ws_url("ftp://host").is_err());
        assert!(ws_url("127.0.0.1:8080").is_err());
        assert_eq!(
            Client::new("http://localhost:9/").ws_url().unwrap(),
            "ws://localhost:9/api/v1/ws"
        );
    }

    #[test]
    fn raw_path_resolution() {
        assert_eq!(resolve_raw_path("/users/me"), "/api/v1/users/me");
        assert_eq!(resolve_raw_path("users/me"), "/api/v1/users/me");
        assert_eq!(resolve_raw_path("/api/v1/users/me"), "/api/v1/users/me");
        assert_eq!(resolve_raw_path("/api/v2/nope"), "/api/v2/nope");
        assert_eq!(resolve_raw_path("/healthz"), "/healthz");
        assert_eq!(resolve_raw_path("/metrics?x=1"), "/metrics?x=1");
        assert_eq!(resolve_raw_path("http://h/"), "http://h/");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("0192-abc_DEF.~"), "0192-abc_DEF.~");
        assert_eq!(seg("../x"), "..%2Fx");
        assert_eq!(seg("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(seg("é"), "%C3%A9");
    }

    #[test]
    fn urls_carry_encoded_queries() {
        let c = Client::new("http://127.0.0.1:1/");
        assert_eq!(c.base_url(), "http://127.0.0.1:1");
        let u = c
            .url(
                "/api/v1/users",
                &[("q", "a&b c".into()), ("limit", "5".into())],
            )
            .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:1/api/v1/users?q=a%26b+c&limit=5"
        );
        assert!(Client::new("not a url").url("/x", &[]).is_err());
    }

    #[test]
    fn tokens_are_shared_by_clones_not_by_with_token() {
        let a = Client::new("http://127.0.0.1:1");
        assert_eq!(a.access_token(), None);
        let b = a.clone();
        a.set_tokens("acc", "ref");
        assert_eq!(b.access_token().as_deref(), Some("acc"));
        assert_eq!(b.refresh_token().as_deref(), Some("ref"));
        let c = a.with_token("other");
        assert_eq!(c.access_token().as_deref(), Some("other"));
        assert_eq!(c.refresh_token(), None);
        assert_eq!(a.access_token().as_deref(), Some("acc"));
        assert_eq!(a.anonymous().access_token(), None);
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("acc\"") && dbg.contains("redacted"), "{dbg}");
        a.clear_tokens();
        assert_eq!(b.access_token(), None);
    }

    #[tokio::test]
    async fn authenticated_calls_need_a_token() {
        let c = Client::new("http://127.0.0.1:1");
        let e = c.me().await.unwrap_err();
        assert!(matches!(e, ClientError::NoToken("access")), "{e:?}");
        let e = c.refresh().await.unwrap_err();
        assert!(matches!(e, ClientError::NoToken("refresh")), "{e:?}");
    }
}
