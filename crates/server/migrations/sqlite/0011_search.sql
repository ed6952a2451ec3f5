-- Message search under encryption at rest (see docs/security.md, "Search"). No text is
-- stored: `term` is a keyed hash (HMAC under a key derived from the encryption key) of the
-- conversation's ID and a normalized word prefix, so the same word in two conversations has
-- two unrelated terms. A message has one row per distinct term; `pos` is its stream
-- position (newest first), `seq` finds the message in its conversation.
CREATE TABLE search_terms (
    term    INTEGER NOT NULL,
    pos     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (term, pos)
) WITHOUT ROWID;

-- One row: the key the terms were made with, and how far the index has been built through
-- the messages that existed before it (messages sent since are indexed as they are sent).
CREATE TABLE search_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_id      TEXT NOT NULL,
    unindexed_below INTEGER NOT NULL    -- messages with pos < this are not indexed yet (a backfill goes down to 0)
);
