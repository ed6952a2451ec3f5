-- Integrations (contract additions of 2026-12-07): bots, incoming webhooks, service
-- notifications, single sign-on. Every token and secret is stored as its SHA-256.

-- A bot is a user with an owner.
ALTER TABLE users ADD COLUMN bot_owner_id TEXT;
CREATE INDEX users_bot_owner ON users(bot_owner_id);

-- A bot's token: it authenticates as the bot, in the bot's login session (so rotating or
-- deleting ends that session and closes its sockets like a logout).
CREATE TABLE bot_tokens (
    token_hash  TEXT PRIMARY KEY,
    bot_id      TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX bot_tokens_bot ON bot_tokens(bot_id);

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    creator_id      TEXT NOT NULL,
    name            TEXT NOT NULL,
    secret_hash     TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);
CREATE INDEX webhooks_conversation ON webhooks(conversation_id);

CREATE TABLE service_tokens (
    name        TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Service notifications; title and body sealed like message bodies.
CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    service     TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    url         TEXT,
    created_at  INTEGER NOT NULL,
    read_at     INTEGER
);
CREATE INDEX notifications_user ON notifications(user_id, id);

-- Single sign-on: an account found by its provider's `sub`.
CREATE TABLE oidc_identities (
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
-- A sign-in under way (between /start and /callback), kept in the database so the callback
-- may reach another node of a cluster.
CREATE TABLE oidc_logins (
    state_hash  TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    verifier    TEXT NOT NULL,
    redirect_to TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
-- One-time codes handed to the browser after a sign-in (`POST /auth/oidc/exchange`).
CREATE TABLE oidc_codes (
    code_hash   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
