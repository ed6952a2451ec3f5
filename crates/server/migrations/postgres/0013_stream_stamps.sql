-- Writes without a global lock (see docs/decisions.md, "Stream positions in a cluster").
-- `events.pos` is now only the order in which events were written (a sequence value taken
-- before commit); `stream_pos` is the position clients resume from, stamped after commit in
-- commit order by whichever node stamps next (`store/postgres.rs`). Positions are dense:
-- `stream_head` holds the last one given, and each stamp takes the next ones.
ALTER TABLE events ADD COLUMN stream_pos BIGINT;
UPDATE events SET stream_pos = pos;
CREATE UNIQUE INDEX events_stream_pos ON events(stream_pos);
-- The events still waiting for a position: found without reading the others.
CREATE INDEX events_unstamped ON events(pos) WHERE stream_pos IS NULL;
CREATE TABLE stream_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    pos BIGINT NOT NULL
);
INSERT INTO stream_head (id, pos) SELECT 1, COALESCE(MAX(pos), 0) FROM events;
