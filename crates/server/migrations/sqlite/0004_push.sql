-- Web Push: browser subscriptions, per-conversation mute, notification previews.
CREATE TABLE push_subscriptions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    endpoint    TEXT NOT NULL UNIQUE,
    p256dh      TEXT NOT NULL,              -- the browser's public key (base64url)
    auth        TEXT NOT NULL,              -- the browser's auth secret (base64url)
    created_at  INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);

-- NULL: not muted; a time in ms: muted until then (a far-future value means "forever").
ALTER TABLE members ADD COLUMN muted_until INTEGER;
ALTER TABLE users ADD COLUMN notification_previews BOOLEAN NOT NULL DEFAULT TRUE;
