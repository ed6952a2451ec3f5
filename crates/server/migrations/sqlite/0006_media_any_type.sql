-- no-transaction
-- Files of any type, and voice messages (contract additions of 2026-11-29): `media.kind`
-- gains 'audio', and audio uploads carry their duration. SQLite cannot change a CHECK
-- constraint in place, so the table is rebuilt (the documented 12-step procedure: foreign
-- keys off outside the transaction, checked before the commit, back on after).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE media_new (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users(id),
    kind          TEXT NOT NULL CHECK (kind IN ('image', 'video', 'audio', 'file')),
    mime          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    name          TEXT NOT NULL,
    storage_key   TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    width         INTEGER,
    height        INTEGER,
    thumb_key     TEXT,
    thumb_size    INTEGER,
    thumb_mime    TEXT,
    thumb_sha256  TEXT,
    avatar        BOOLEAN NOT NULL DEFAULT FALSE,
    attached_at   INTEGER,
    created_at    INTEGER NOT NULL,
    duration_ms   INTEGER                          -- audio: length, when known
);
INSERT INTO media_new (id, owner_id, kind, mime, size, name, storage_key, sha256, width, height,
                       thumb_key, thumb_size, thumb_mime, thumb_sha256, avatar, attached_at, created_at)
    SELECT id, owner_id, kind, mime, size, name, storage_key, sha256, width, height,
           thumb_key, thumb_size, thumb_mime, thumb_sha256, avatar, attached_at, created_at
    FROM media;
DROP TABLE media;
ALTER TABLE media_new RENAME TO media;
CREATE INDEX media_unattached ON media(created_at) WHERE attached_at IS NULL AND NOT avatar;
COMMIT;
PRAGMA foreign_keys = ON;
