-- Uploaded media. Files live in the blob store under `storage_key` (random); the original
-- file name is metadata only.
CREATE TABLE media (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users(id),
    kind          TEXT NOT NULL CHECK (kind IN ('image', 'video', 'file')),
    mime          TEXT NOT NULL,
    size          BIGINT NOT NULL,
    name          TEXT NOT NULL,
    storage_key   TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    width         BIGINT,
    height        BIGINT,
    thumb_key     TEXT,
    thumb_size    BIGINT,
    thumb_mime    TEXT,
    thumb_sha256  TEXT,
    avatar        BOOLEAN NOT NULL DEFAULT FALSE,   -- used as an avatar: readable by anyone
    attached_at   BIGINT,                          -- first sent in a message
    created_at    BIGINT NOT NULL
);
CREATE INDEX media_unattached ON media(created_at) WHERE attached_at IS NULL AND NOT avatar;

CREATE TABLE message_media (
    message_id      TEXT NOT NULL REFERENCES messages(id),
    media_id        TEXT NOT NULL REFERENCES media(id),
    conversation_id TEXT NOT NULL,
    position        BIGINT NOT NULL,
    PRIMARY KEY (message_id, media_id)
);
CREATE INDEX message_media_media ON message_media(media_id);
