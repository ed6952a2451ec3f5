-- Running a server (contract additions of 2026-12-07, "Operators"): system admins,
-- suspensions, reports, the audit log, registration invites, upload quotas.
ALTER TABLE users ADD COLUMN system_admin BOOLEAN NOT NULL DEFAULT FALSE;
-- NULL: not suspended; a time in ms: suspended until then (a far-future value: until lifted).
ALTER TABLE users ADD COLUMN suspended_until BIGINT;
ALTER TABLE users ADD COLUMN suspension_reason TEXT;

-- A report of a user, or of a message (conversation_id + seq; user_id is then its author).
CREATE TABLE reports (
    id              TEXT PRIMARY KEY,
    reporter_id     TEXT NOT NULL REFERENCES users(id),
    user_id         TEXT,
    conversation_id TEXT,
    seq             BIGINT,
    reason          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    resolved_by     TEXT,
    resolved_at     BIGINT,
    note            TEXT
);
CREATE INDEX reports_by_state ON reports(resolved_at, created_at);

-- Every admin action: who (NULL: the server's command line), what, when. `id` is a UUIDv7,
-- so its order is the order of the actions.
CREATE TABLE audit_log (
    id              TEXT PRIMARY KEY,
    actor_id        TEXT,
    action          TEXT NOT NULL,
    target_user_id  TEXT,
    conversation_id TEXT,
    seq             BIGINT,
    details         TEXT,
    created_at      BIGINT NOT NULL
);

-- Registration invite codes (`--registration invite`): stored as their SHA-256; `hint` is
-- the code's first characters, so admins can tell them apart in a list.
CREATE TABLE registration_invites (
    code_hash   TEXT PRIMARY KEY,
    hint        TEXT NOT NULL,
    uses_left   BIGINT NOT NULL,
    expires_at  BIGINT,
    created_by  TEXT,
    created_at  BIGINT NOT NULL
);

-- Upload quotas add up an owner's uploads, all of them and those of the last day.
CREATE INDEX media_owner ON media(owner_id, created_at);
