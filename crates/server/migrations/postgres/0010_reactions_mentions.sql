-- Reactions and mentions (contract additions of 2026-12-07), and messages posted through an
-- incoming webhook.

-- One row per (message, emoji, user). `pos` is the position of the reaction's event, so
-- emoji are listed in the order they were first used.
CREATE TABLE reactions (
    conversation_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    emoji           TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    pos             BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq, emoji, user_id)
);

-- The users a message mentions, as written on the message (space-separated IDs, NULL for
-- none), and one row per mention so unread mentions are counted from an index.
ALTER TABLE messages ADD COLUMN mentions TEXT;
CREATE TABLE mentions (
    user_id         TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id, seq)
);

-- A mute set with {"mentions": false}: mentions do not push either.
ALTER TABLE members ADD COLUMN mute_mentions BOOLEAN NOT NULL DEFAULT FALSE;

-- Messages posted through an incoming webhook: which one, and the name it posted under.
ALTER TABLE messages ADD COLUMN webhook_id TEXT;
ALTER TABLE messages ADD COLUMN webhook_name TEXT;
