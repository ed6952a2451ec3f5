-- ChatNode schema, PostgreSQL (mirrors migrations/sqlite). Times are UTC milliseconds since the epoch.
-- IDs are UUIDv7 strings. Never edit a migration that has shipped: add a new one.

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL,
    username_key    TEXT NOT NULL UNIQUE,       -- lower-cased username
    email           TEXT UNIQUE,                -- lower-cased
    phone           TEXT UNIQUE,                -- E.164
    display_name    TEXT NOT NULL,
    display_key     TEXT NOT NULL,              -- lower-cased display name, for search
    bio             TEXT,
    avatar_media_id TEXT,
    password_hash   TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT
);
CREATE INDEX users_display_key ON users(display_key);

-- A login session: one per login, holds a chain of single-use refresh tokens.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,               -- SHA-256 of the token; the token is never stored
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT                         -- set when rotated; a second use is theft
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

CREATE TABLE friend_requests (
    id          TEXT PRIMARY KEY,
    from_id     TEXT NOT NULL REFERENCES users(id),
    to_id       TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    UNIQUE (from_id, to_id)
);
CREATE INDEX friend_requests_to ON friend_requests(to_id);

-- Both directions are stored, so "my friends" is one index range.
CREATE TABLE friendships (
    user_id     TEXT NOT NULL REFERENCES users(id),
    friend_id   TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE blocks (
    blocker_id  TEXT NOT NULL REFERENCES users(id),
    blocked_id  TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks(blocked_id);

CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    name             TEXT,
    name_key         TEXT,                      -- lower-cased name, for the directory
    description      TEXT,
    avatar_media_id  TEXT,
    public           BOOLEAN NOT NULL DEFAULT FALSE,
    direct_key       TEXT UNIQUE,               -- "smaller_id:larger_id" for direct conversations
    created_at       BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL DEFAULT 0,
    last_activity_at BIGINT NOT NULL
);
CREATE INDEX conversations_public ON conversations(public, name_key);

CREATE TABLE members (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    user_id         TEXT NOT NULL REFERENCES users(id),
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at       BIGINT NOT NULL,
    joined_pos      BIGINT NOT NULL,           -- stream position when they joined (sync window)
    last_read_seq   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user ON members(user_id);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    seq             BIGINT NOT NULL,
    sender_id       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    reply_to_seq    BIGINT,
    created_at      BIGINT NOT NULL,
    edited_at       BIGINT,
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (conversation_id, seq),
    UNIQUE (sender_id, client_id)               -- idempotent sends survive restarts
);

-- "Delete for me".
CREATE TABLE hidden_messages (
    user_id     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    PRIMARY KEY (user_id, message_id)
);

CREATE TABLE invites (
    code            TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    created_by      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);

-- The durable event stream. `pos` is the stream position clients resume from with `sync`.
-- A row is addressed either to a conversation's members or to one user.
CREATE TABLE events (
    pos             BIGSERIAL PRIMARY KEY,
    conversation_id TEXT,
    user_id         TEXT,
    payload         TEXT NOT NULL,              -- the frame's JSON, without stream_pos
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_conversation ON events(conversation_id, pos);
CREATE INDEX events_user ON events(user_id, pos);
